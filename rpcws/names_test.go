package rpcws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// KV is a service whose name is an acronym.
type KV struct{}

func (KV) Get(key string, value *string) error {
	*value = "value of " + key
	return nil
}

// Kv shares KV's spelling in lower case.
type Kv struct{}

func (Kv) Get(key string, value *string) error {
	*value = "Kv's " + key
	return nil
}

// HTTPProxy has an acronym and a word in its name.
type HTTPProxy struct{}

func (HTTPProxy) GetURL(key string, value *string) error {
	*value = "url of " + key
	return nil
}

// Services registered through the handler are reached whatever the case of
// the type: from raw frames as a JavaScript developer spells them, and from
// the Go client, whose default mapping sends that spelling.
func TestNamesBothWays(t *testing.T) {
	t.Parallel()
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	for _, svc := range []any{KV{}, HTTPProxy{}} {
		if err := h.Register(svc); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ws := dialRaw(t, url, nil)
	for _, typ := range []string{"kv.get", "KV.Get", "kV.get", "Kv.GET"} {
		writeText(t, ws, `{"id":1,"type":"`+typ+`","data":"k"}`)
		if got := readReply(t, ws, "1"); got["type"] != typ+".response" || got["data"] != "value of k" {
			t.Errorf("%s: got %v", typ, got)
		}
	}
	writeText(t, ws, `{"id":2,"type":"httpproxy.geturl","data":"k"}`)
	if got := readReply(t, ws, "2"); got["data"] != "url of k" {
		t.Errorf("httpproxy.geturl: got %v", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var sent []string
	c, err := rpcws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"KV.Get", "HTTPProxy.GetURL"} {
		sent = append(sent, codec.TypeName(m))
		var got string
		if err := c.Call(m, "k", &got); err != nil || !strings.HasSuffix(got, " of k") {
			t.Errorf("%s from Go: got %q, %v", m, got, err)
		}
	}
	if want := []string{"kv.get", "httpProxy.getURL"}; strings.Join(sent, " ") != strings.Join(want, " ") {
		t.Errorf("the Go client sends %v, want %v", sent, want)
	}
}

// Where two services share a spelling, the handler does not guess: the type
// maps as it always did. Services registered on the *rpc.Server alone are
// reached by the default mapping and by acronyms in lower case, the
// spellings of the Go client and of most JavaScript.
func TestNamesAmbiguousOrUnregistered(t *testing.T) {
	t.Parallel()
	srv := rpc.NewServer()
	h := rpcws.NewHandler(srv, nil)
	if err := h.Register(KV{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Register(Kv{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Register(HTTPProxy{}); err != nil { // not through the handler
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	ws := dialRaw(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	for _, tt := range []struct{ typ, want string }{
		{"kv.get", "Kv's k"}, // the default mapping: Kv.Get
		{"KV.Get", "value of k"},
		{"hTTPProxy.getURL", "url of k"},
		{"httpProxy.getURL", "url of k"}, // as the Go client sends it
		{"HTTPProxy.getURL", "url of k"},
	} {
		writeText(t, ws, `{"id":1,"type":"`+tt.typ+`","data":"k"}`)
		if got := readReply(t, ws, "1"); got["data"] != tt.want {
			t.Errorf("%s: got %v, want data %q", tt.typ, got, tt.want)
		}
	}
	writeText(t, ws, `{"id":2,"type":"httpproxy.geturl","data":"k"}`)
	if got := readReply(t, ws, "2"); got["code"] != codec.CodeMethodNotFound {
		t.Errorf("an unregistered spelling: got %v, want MethodNotFound", got)
	}
}

// PushTicksArgs is the argument of the README's push example.
type PushTicksArgs struct {
	Count int `json:"count"`
	rpcws.Caller
}

// PushDemo is the README's push example, as written there.
type PushDemo struct{ pushed chan error }

func (tk PushDemo) Ticks(args *PushTicksArgs, reply *int) error {
	*reply = args.Count
	peer := args.Peer()
	args.AfterReply(func() {
		tk.pushed <- peer.Notify(peer.Context(), "demo.tick", 1)
	})
	return nil
}

// A method that pushes is still an ordinary net/rpc method: served by the
// plain codec, its Peer is nil, which is safe to use.
func TestNilPeer(t *testing.T) {
	t.Parallel()
	var p *rpcws.Peer
	if err := p.Notify(context.Background(), "x", 1); !errors.Is(err, rpcws.ErrNoPeer) {
		t.Errorf("Notify: got %v, want ErrNoPeer", err)
	}
	if p.Context().Err() == nil {
		t.Error("Context: not done")
	}
	if p.Identity() != nil || p.RemoteAddr() != "" {
		t.Error("Identity, RemoteAddr: not empty")
	}

	tk := PushDemo{pushed: make(chan error, 1)}
	srv := rpc.NewServer()
	srv.Register(tk)
	a, b := codec.Pipe()
	go srv.ServeCodec(codec.NewServerCodec(a, nil))
	c := rpc.NewClientWithCodec(codec.NewClientCodec(b, nil))
	defer c.Close()
	var n int
	if err := c.Call("PushDemo.Ticks", &PushTicksArgs{Count: 3}, &n); err != nil || n != 3 {
		t.Fatalf("Call: got %d, %v", n, err)
	}
	select {
	case err := <-tk.pushed:
		if !errors.Is(err, rpcws.ErrNoPeer) {
			t.Fatalf("Notify through the plain codec: got %v, want ErrNoPeer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AfterReply never ran")
	}
}

// Wrapped fails with a *codec.Error wrapped in context.
type Wrapped struct{}

func (Wrapped) Get(key string, value *string) error {
	return fmt.Errorf("loading %s: %w", key, &codec.Error{Code: "Forbidden", Message: "not yours"})
}

// An error that wraps a *codec.Error goes out with its code, and its
// context in the message.
func TestWrappedErrorKeepsItsCode(t *testing.T) {
	t.Parallel()
	s, _ := newServerWith(t, nil, Wrapped{})
	c := s.dial(t, nil)
	var got string
	err := c.CallContext(context.Background(), "Wrapped.Get", "ada", &got)
	var e *codec.Error
	if !errors.As(err, &e) || e.Code != "Forbidden" || e.Message != "loading ada: not yours" {
		t.Fatalf("got %#v (%v), want Forbidden: loading ada: not yours", e, err)
	}
}
