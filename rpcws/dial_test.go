package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// rawServer is a WebSocket server that plays a hostile or broken server:
// serve runs on each accepted connection, which is closed after it returns.
func rawServer(t *testing.T, serve func(ws *websocket.Conn)) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(-1)
		serve(ws)
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func dialURL(t *testing.T, url string, opts *rpcws.DialOptions) *rpcws.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Close returns promptly against a server that never reads, and so never
// answers the close frame: coder/websocket alone would wait 5 s for it.
// Pending calls fail with rpc.ErrShutdown.
func TestCloseServerNotReading(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{})
	url := rawServer(t, func(ws *websocket.Conn) {
		close(arrived)
		<-release // reads nothing until the test ends
	})
	defer close(release)
	c := dialURL(t, url, &rpcws.DialOptions{Timeout: -1})
	<-arrived
	call := c.Go("X.Y", nil, nil, nil)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(4 * time.Second): // below coder/websocket's 5 s
		t.Fatal("Close waited out the closing handshake")
	}
	if err := waitCall(t, call); !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("pending call: got %v, want rpc.ErrShutdown", err)
	}
}

// The default read limit takes every frame a Handler with default options
// writes (both are DefaultMaxFrameSize): up to its own read limit, exactly.
func TestDialReadLimitCoversServer(t *testing.T) {
	t.Parallel()
	// The server answers each request with a reply of exactly the size the
	// request's data asks for.
	url := rawServer(t, func(ws *websocket.Conn) {
		for {
			_, frame, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var req struct {
				ID   json.RawMessage
				Data int
			}
			json.Unmarshal(frame, &req)
			head := fmt.Sprintf(`{"id":%s,"type":"x.y.response","data":"`, req.ID)
			reply := head + strings.Repeat("x", req.Data-len(head)-2) + `"}`
			if ws.Write(context.Background(), websocket.MessageText, []byte(reply)) != nil {
				return
			}
		}
	})
	c := dialURL(t, url, nil)
	var got string
	if err := c.CallContext(context.Background(), "X.Y", rpcws.DefaultMaxFrameSize, &got); err != nil {
		t.Fatalf("a reply of %d bytes: %v", rpcws.DefaultMaxFrameSize, err)
	}
	err := c.CallContext(context.Background(), "X.Y", rpcws.DefaultMaxFrameSize+1, &got)
	if !errors.Is(err, rpcws.ErrDisconnected) {
		t.Fatalf("a reply of %d bytes: got %v, want ErrDisconnected", rpcws.DefaultMaxFrameSize+1, err)
	}
}

// A hostile server that floods events pins at most MaxQueuedEventBytes
// (plus one event) while OnEvent is slow; the rest are dropped and counted.
func TestDialEventBytes(t *testing.T) {
	t.Parallel()
	const sent, size = 50, 100_000
	url := rawServer(t, func(ws *websocket.Conn) {
		event := fmt.Appendf(nil, `{"type":"flood","data":"%s"}`, strings.Repeat("x", size))
		for range sent {
			if ws.Write(context.Background(), websocket.MessageText, event) != nil {
				return
			}
		}
		// Then answer one request: its reply comes after every event.
		_, frame, err := ws.Read(context.Background())
		if err != nil {
			return
		}
		var req struct{ ID json.RawMessage }
		json.Unmarshal(frame, &req)
		ws.Write(context.Background(), websocket.MessageText, fmt.Appendf(nil, `{"id":%s,"type":"x.y.response"}`, req.ID))
		ws.Read(context.Background()) // until the client closes
	})
	unblock := make(chan struct{})
	delivered := make(chan struct{}, sent)
	c := dialURL(t, url, &rpcws.DialOptions{
		MaxQueuedEventBytes: 256 << 10,
		ReadLimit:           -1,
		OnEvent: func(string, json.RawMessage) {
			<-unblock
			delivered <- struct{}{}
		},
	})
	if err := c.CallContext(context.Background(), "X.Y", nil, nil); err != nil {
		t.Fatal(err)
	}
	// One event is in OnEvent, two fit in 256 KiB, 47 were dropped.
	if got := c.Stats().DroppedEvents; got != sent-3 {
		t.Errorf("dropped: got %d, want %d", got, sent-3)
	}
	close(unblock)
	for n := range 3 {
		select {
		case <-delivered:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d events delivered, want 3", n)
		}
	}
}

// A context deadline later than DialOptions.Timeout bounds a call in its
// place: such a call outlives a call of the client's timeout sent after it.
func TestCallOutlivesClientTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"context deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Minute)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, nil)
			c := s.dial(t, &rpcws.DialOptions{Timeout: 50 * time.Millisecond})
			ctx, cancel := tt.ctx()
			defer cancel()
			long := make(chan error, 1)
			var reply int
			go func() { long <- c.CallContext(ctx, "Test.Gate", i+1, &reply) }()
			s.waitArrived(t, 1)
			if err := c.Call("Test.Gate", 100+i, new(int)); codec.ErrorCode(err) != codec.CodeTimeout {
				t.Fatalf("a call of the client's timeout: got %v, want a timeout", err)
			}
			s.release(i + 1)
			s.release(100 + i)
			select {
			case err := <-long:
				if err != nil || reply != i+1 {
					t.Fatalf("got %d, %v; want %d, nil", reply, err, i+1)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the call did not complete")
			}
		})
	}
}

// Client.Call, Client.Go and net/rpc's own client over DialCodec return the
// same replies, and errors with the same text and code. The client's are
// *codec.Error; net/rpc's client turns error replies into rpc.ServerError,
// which AsError reads back. (Client.Call's were rpc.ServerError too, from an
// embedded *rpc.Client.)
func TestClientCallMatchesStock(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	cc, err := rpcws.DialCodec(context.Background(), s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	stock := rpc.NewClientWithCodec(cc)
	defer stock.Close()
	calls := []struct {
		name string
		call func(method string, args, reply any) error
	}{
		{"Client.Call", c.Call},
		{"rpc.Client.Call", stock.Call},
		{"Client.Go", func(method string, args, reply any) error {
			return waitCall(t, c.Go(method, args, reply, make(chan *rpc.Call, 1)))
		}},
	}
	for _, method := range []string{"Test.Multiply", "Test.Plain", "Test.Coded", "Test.Missing"} {
		type result struct {
			reply   int
			code    string
			errText string
		}
		var want result
		for i, call := range calls {
			var got result
			err := call.call(method, &Args{A: 6, B: 7}, &got.reply)
			if err != nil {
				got.code, got.errText = rpcws.ErrorCode(err), err.Error()
				if _, isStock := err.(rpc.ServerError); !isStock && reflect.TypeOf(err) != reflect.TypeOf(&rpcws.Error{}) {
					t.Errorf("%s through %s: error of type %T", method, call.name, err)
				}
			}
			if i == 0 {
				want = got
				t.Logf("%s: %+v", method, got)
				continue
			}
			if got != want {
				t.Errorf("%s through %s: %+v; through %s: %+v", method, call.name, got, calls[0].name, want)
			}
		}
	}
}
