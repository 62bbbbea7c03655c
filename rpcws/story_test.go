package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/rpc"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// storyServer is a WebSocket server inside a synctest bubble that answers
// each request as its data says: "error" with NotFound, "bad" with a reply
// whose type is a number, "string" with a string for an int reply, "close"
// by closing the connection, anything else never.
func storyServer(t *testing.T) *websocket.DialOptions {
	ln := testutil.NewListener(64 << 10)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, frame, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var req struct {
				ID   json.RawMessage
				Data string
			}
			json.Unmarshal(frame, &req)
			var reply string
			switch req.Data {
			case "error":
				reply = fmt.Sprintf(`{"id":%s,"type":"error","code":"NotFound","message":"no"}`, req.ID)
			case "bad":
				reply = fmt.Sprintf(`{"id":%s,"type":5}`, req.ID)
			case "string":
				reply = fmt.Sprintf(`{"id":%s,"type":"user.get.response","data":"s"}`, req.ID)
			case "close":
				return
			default:
				continue
			}
			ws.Write(context.Background(), websocket.MessageText, []byte(reply))
		}
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); ln.Close() })
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.Dial}}}
}

// clientAPI makes one call through one of rpcws.Client's APIs.
type clientAPI struct {
	name string
	ctx  bool // takes a context
	call func(c *rpcws.Client, ctx context.Context, data string) error
}

var clientAPIs = []clientAPI{
	{"Call", false, func(c *rpcws.Client, _ context.Context, data string) error {
		return c.Call("User.Get", data, new(int))
	}},
	{"Go", false, func(c *rpcws.Client, _ context.Context, data string) error {
		return (<-c.Go("User.Get", data, new(int), nil).Done).Error
	}},
	{"CallContext", true, func(c *rpcws.Client, ctx context.Context, data string) error {
		return c.CallContext(ctx, "User.Get", data, new(int))
	}},
}

// clientCase is one way a call ends, against storyServer.
type clientCase struct {
	name  string
	data  string // what storyServer does
	ctx   string // "deadline" (2 s), "cancel" (after 1 s), or none
	close bool   // Close the client after 1 s
	code  string
	is    []error
	took  time.Duration
}

var clientCases = []clientCase{
	{name: "server error", data: "error", code: "NotFound"},
	{name: "client timeout", code: rpcws.CodeTimeout, took: 3 * time.Second, is: []error{rpcws.ErrTimeout, context.DeadlineExceeded}},
	{name: "context deadline", ctx: "deadline", code: rpcws.CodeTimeout, took: 2 * time.Second, is: []error{rpcws.ErrTimeout, context.DeadlineExceeded}},
	{name: "context cancel", ctx: "cancel", code: rpcws.CodeCanceled, took: time.Second, is: []error{context.Canceled}},
	{name: "disconnect", data: "close", code: rpcws.CodeDisconnected, is: []error{rpcws.ErrDisconnected}},
	{name: "Close", close: true, code: rpcws.CodeDisconnected, took: time.Second, is: []error{rpcws.ErrDisconnected, rpc.ErrShutdown}},
	{name: "bad reply", data: "bad", code: rpcws.CodeBadReply, is: []error{rpcws.ErrBadReply}},
	{name: "decode failure", data: "string", code: rpcws.CodeBadReply, is: []error{rpcws.ErrBadReply}},
}

// Each API of rpcws.Client, each way a call ends: the error is an
// *rpcws.Error with the code of that way, and errors.Is matches the
// sentinels and the context's errors, in the bubble's time.
func TestClientErrorStory(t *testing.T) {
	for _, tc := range clientCases {
		for _, api := range clientAPIs {
			if tc.ctx != "" && !api.ctx {
				continue
			}
			t.Run(tc.name+"/"+api.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { runClientStory(t, api, tc) })
			})
		}
	}
}

func runClientStory(t *testing.T, api clientAPI, tc clientCase) {
	c, err := rpcws.Dial(context.Background(), "ws://mem/rpc", &rpcws.DialOptions{WebSocket: storyServer(t), Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	switch tc.ctx {
	case "deadline":
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	case "cancel":
		time.AfterFunc(time.Second, cancel)
	}
	defer cancel()
	if tc.close {
		time.AfterFunc(time.Second, func() { c.Close() })
	}
	start := time.Now()
	err = api.call(c, ctx, tc.data)
	if got := time.Since(start); got != tc.took {
		t.Errorf("the call ended after %v, want %v", got, tc.took)
	}
	checkError(t, err, tc.code, tc.is...)
}

// checkError checks that err is an *rpcws.Error with code, which errors.Is
// matches with each of is.
func checkError(t *testing.T, err error, code string, is ...error) {
	t.Helper()
	var e *rpcws.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want an *rpcws.Error", err, err)
	}
	if got, ok := rpcws.AsError(err); !ok || got != e {
		t.Errorf("AsError(%v): got %v, %v", err, got, ok)
	}
	if got := rpcws.ErrorCode(err); got != code {
		t.Errorf("ErrorCode(%v): got %q, want %q", err, got, code)
	}
	for _, target := range is {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v): false, want true", err, target)
		}
	}
}

// Notify fails as a call does: its context ended, the connection ended, or
// the client closed.
func TestNotifyErrorStory(t *testing.T) {
	cases := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		end  func(c *rpcws.Client)
		code string
		is   []error
	}{
		{name: "context deadline", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Unix(0, 0))
		}, code: rpcws.CodeTimeout, is: []error{rpcws.ErrTimeout, context.DeadlineExceeded}},
		{name: "context cancel", ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, code: rpcws.CodeCanceled, is: []error{context.Canceled}},
		{name: "disconnect", end: func(c *rpcws.Client) {
			c.Call("User.Get", "close", nil)
		}, code: rpcws.CodeDisconnected, is: []error{rpcws.ErrDisconnected}},
		{name: "Close", end: func(c *rpcws.Client) { c.Close() },
			code: rpcws.CodeDisconnected, is: []error{rpcws.ErrDisconnected, rpc.ErrShutdown}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, err := rpcws.Dial(context.Background(), "ws://mem/rpc", &rpcws.DialOptions{WebSocket: storyServer(t)})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				ctx, cancel := context.Background(), func() {}
				if tc.ctx != nil {
					ctx, cancel = tc.ctx()
				}
				defer cancel()
				if tc.end != nil {
					tc.end(c)
					<-c.Done()
				}
				checkError(t, c.Notify(ctx, "User.Note", "x"), tc.code, tc.is...)
			})
		})
	}
}

// A dial that fails is DialFailed, whatever the cause, and errors.Is finds
// the context's error when the context ended it.
func TestDialErrorStory(t *testing.T) {
	cases := []struct {
		name string
		url  string
		ln   func(ln *testutil.Listener) // what becomes of the listener, which never accepts
		ctx  func() (context.Context, context.CancelFunc)
		is   []error
	}{
		{name: "refused", url: "ws://mem/rpc", ln: func(ln *testutil.Listener) { ln.Close() }},
		{name: "bad URL", url: "ws://[::1/rpc"},
		{name: "context deadline", url: "ws://mem/rpc", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}, is: []error{context.DeadlineExceeded}},
		{name: "context cancel", url: "ws://mem/rpc", ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			return ctx, cancel
		}, is: []error{context.Canceled}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := testutil.NewListener(1 << 10)
				defer ln.Close()
				if tc.ln != nil {
					tc.ln(ln)
				}
				ctx, cancel := context.Background(), func() {}
				if tc.ctx != nil {
					ctx, cancel = tc.ctx()
				}
				defer cancel()
				opts := &rpcws.DialOptions{WebSocket: &websocket.DialOptions{
					HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.Dial}},
				}}
				c, err := rpcws.Dial(ctx, tc.url, opts)
				if err == nil {
					c.Close()
					t.Fatal("the dial succeeded")
				}
				checkError(t, err, rpcws.CodeDialFailed, append(tc.is, rpcws.ErrDialFailed)...)
			})
		})
	}
}
