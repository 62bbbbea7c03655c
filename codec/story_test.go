package codec_test

import (
	"context"
	"errors"
	"net/rpc"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// storyAPI makes one call of User.Get with args through one of the client's
// APIs and returns its error. ctx is ignored by the APIs that take none.
type storyAPI struct {
	name  string
	ctx   bool // takes a context
	stock bool // net/rpc's own client: errors are rpc.ServerError text
	call  func(client *rpc.Client, cc *codec.ClientCodec, ctx context.Context, args any) error
}

var storyAPIs = []storyAPI{
	{name: "Call", call: func(_ *rpc.Client, cc *codec.ClientCodec, _ context.Context, args any) error {
		return cc.Call(context.Background(), "User.Get", args, new(int)) // rpcws.Client.Call
	}},
	{name: "Go", call: func(_ *rpc.Client, cc *codec.ClientCodec, _ context.Context, args any) error {
		return (<-cc.Go("User.Get", args, new(int), nil).Done).Error
	}},
	{name: "CallContext", ctx: true, call: func(_ *rpc.Client, cc *codec.ClientCodec, ctx context.Context, args any) error {
		return cc.Call(ctx, "User.Get", args, new(int))
	}},
	{name: "rpc.Client", stock: true, call: func(client *rpc.Client, _ *codec.ClientCodec, _ context.Context, args any) error {
		return client.Call("User.Get", args, new(int))
	}},
}

// storyCase is one way a call ends. act runs once the request has arrived
// at the server (r), or at once when nothing is sent.
type storyCase struct {
	name    string
	ctx     bool // needs an API that takes a context
	args    any  // nil: "x"
	timeout time.Duration
	act     func(srv fakeServer, r request, client *rpc.Client, cc *codec.ClientCodec, cancel context.CancelFunc)
	code    string
	is      []error // errors.Is holds for each (not checked for rpc.Client's strings)
	took    time.Duration
	noStock bool // net/rpc's own client makes this error itself
}

var storyCases = []storyCase{
	{name: "server error", code: "NotFound", act: func(srv fakeServer, r request, _ *rpc.Client, _ *codec.ClientCodec, _ context.CancelFunc) {
		srv.send(`{"id":%s,"type":"error","code":"NotFound","message":"no"}`, r.ID)
	}},
	{name: "client timeout", timeout: 3 * time.Second, code: codec.CodeTimeout, took: 3 * time.Second,
		is: []error{codec.ErrTimeout, context.DeadlineExceeded}},
	{name: "context deadline", ctx: true, timeout: time.Hour, code: codec.CodeTimeout, took: 2 * time.Second,
		is: []error{codec.ErrTimeout, context.DeadlineExceeded}},
	{name: "context cancel", ctx: true, code: codec.CodeCanceled, is: []error{context.Canceled},
		act: func(_ fakeServer, _ request, _ *rpc.Client, _ *codec.ClientCodec, cancel context.CancelFunc) {
			cancel()
		}},
	{name: "disconnect", code: codec.CodeDisconnected, is: []error{codec.ErrDisconnected},
		act: func(srv fakeServer, _ request, _ *rpc.Client, _ *codec.ClientCodec, _ context.CancelFunc) {
			srv.conn.Close()
		}},
	{name: "Close", code: codec.CodeDisconnected, is: []error{codec.ErrDisconnected, rpc.ErrShutdown},
		act: func(_ fakeServer, _ request, client *rpc.Client, cc *codec.ClientCodec, _ context.CancelFunc) {
			client.Close() // closes cc, as rpcws.Client.Close does
		}},
	{name: "bad reply", code: codec.CodeBadReply, is: []error{codec.ErrBadReply},
		act: func(srv fakeServer, r request, _ *rpc.Client, _ *codec.ClientCodec, _ context.CancelFunc) {
			srv.send(`{"id":%s,"type":5}`, r.ID)
		}},
	// net/rpc decodes its client's replies itself, and ends the client on
	// a reply that does not fit (see ClientCodec.ReadResponseBody).
	{name: "decode failure", code: codec.CodeBadReply, noStock: true, is: []error{codec.ErrBadReply},
		act: func(srv fakeServer, r request, _ *rpc.Client, _ *codec.ClientCodec, _ context.CancelFunc) {
			srv.reply(r, `"not a number"`)
		}},
	{name: "bad args", args: make(chan int), code: codec.CodeBadArgs},
}

// Every API fails every way with an error that AsError reads, whose code
// tells the client's verdicts from the server's, and which errors.Is matches
// with the sentinels and the context's errors; net/rpc's own client gets the
// same codes through its strings.
func TestErrorStory(t *testing.T) {
	for _, tc := range storyCases {
		for _, api := range storyAPIs {
			if tc.ctx && !api.ctx || tc.noStock && api.stock {
				continue
			}
			t.Run(tc.name+"/"+api.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { runStory(t, api, tc) })
			})
		}
	}
}

func runStory(t *testing.T, api storyAPI, tc storyCase) {
	timeout := tc.timeout
	if timeout == 0 {
		timeout = time.Hour
	}
	client, cc, srv := newClient(t, &codec.ClientOptions{Timeout: timeout})
	defer client.Close()
	go func() { <-cc.Done(); srv.conn.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	if tc.name == "context deadline" {
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	}
	defer cancel()
	args := tc.args
	if args == nil {
		args = "x"
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- api.call(client, cc, ctx, args) }()
	var r request
	if tc.code != codec.CodeBadArgs {
		r = srv.next()
	}
	if tc.act != nil {
		tc.act(srv, r, client, cc, cancel)
	}
	err := <-errc
	if got := time.Since(start); got != tc.took {
		t.Errorf("the call ended after %v, want %v", got, tc.took)
	}
	checkStoryError(t, api.stock, err, tc.code, tc.is)
}

// checkStoryError checks err's code, and, unless it is a stock client's,
// that it is an *Error matching each of is.
func checkStoryError(t *testing.T, stock bool, err error, code string, is []error) {
	t.Helper()
	e, ok := codec.AsError(err)
	if !ok && !(stock && errors.Is(err, rpc.ErrShutdown)) {
		t.Fatalf("got %T %v, which AsError does not read", err, err)
	}
	if got := codec.ErrorCode(err); got != code {
		t.Errorf("ErrorCode(%v): got %q, want %q", err, got, code)
	}
	if stock {
		return
	}
	if ok && e != err {
		var direct *codec.Error
		if !errors.As(err, &direct) {
			t.Errorf("got %T, want *codec.Error", err)
		}
	}
	for _, target := range is {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v): false, want true", err, target)
		}
	}
}

// Notify fails before anything is sent, with the codes a call would get.
func TestNotifyErrorStory(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	tests := []struct {
		name  string
		ctx   context.Context
		args  any
		close func(srv fakeServer, client *rpc.Client)
		code  string
		is    []error
	}{
		{name: "context deadline", ctx: expired, code: codec.CodeTimeout, is: []error{codec.ErrTimeout, context.DeadlineExceeded}},
		{name: "context cancel", ctx: cancelled, code: codec.CodeCanceled, is: []error{context.Canceled}},
		{name: "disconnect", close: func(srv fakeServer, _ *rpc.Client) { srv.conn.Close() },
			code: codec.CodeDisconnected, is: []error{codec.ErrDisconnected}},
		{name: "Close", close: func(_ fakeServer, client *rpc.Client) { client.Close() },
			code: codec.CodeDisconnected, is: []error{codec.ErrDisconnected, rpc.ErrShutdown}},
		{name: "bad args", args: func() {}, code: codec.CodeBadArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client, cc, srv := newClient(t, nil)
				defer client.Close()
				if tt.close != nil {
					tt.close(srv, client)
					<-cc.Done()
				}
				ctx := tt.ctx
				if ctx == nil {
					ctx = context.Background()
				}
				args := tt.args
				if args == nil {
					args = "x"
				}
				checkStoryError(t, false, cc.Notify(ctx, "User.Note", args), tt.code, tt.is)
			})
		})
	}
}
