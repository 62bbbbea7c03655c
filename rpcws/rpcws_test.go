package rpcws_test

import (
	"context"
	"errors"
	"net/rpc"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// A stock *rpc.Client calls a stock *rpc.Server over rpcws.
func TestStockClientAndServer(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t, nil)
	var got int
	if err := c.Call("Test.Multiply", &Args{6, 7}, &got); err != nil {
		t.Fatal(err)
	}
	if got != 42 {
		t.Fatalf("got %d, want 42", got)
	}
	cc, err := rpcws.DialCodec(context.Background(), s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	stock := rpc.NewClientWithCodec(cc) // for code that wants an *rpc.Client
	defer stock.Close()
	if err := stock.Call("Test.Multiply", &Args{2, 3}, &got); err != nil || got != 6 {
		t.Fatalf("got %d, %v; want 6, nil", got, err)
	}
}

// 1000 calls in flight at once on one connection, answered in the reverse
// of the order they were sent: each gets its own reply.
func TestConcurrentCallsOutOfOrder(t *testing.T) {
	t.Parallel()
	const n = 1000
	s := newServer(t, &rpcws.HandlerOptions{MaxInFlight: n})
	c := s.dial(t, nil)

	done, replies := goGates(c, n)
	s.waitArrived(t, n) // all n are in flight on the server
	for i := n - 1; i >= 0; i-- {
		s.release(i)
	}
	order := make([]int, 0, n)
	for range n {
		select {
		case call := <-done:
			if call.Error != nil {
				t.Fatalf("call %v: %v", call.Args, call.Error)
			}
			order = append(order, call.Args.(int))
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d calls completed", len(order), n)
		}
	}
	for i, r := range replies {
		if r != i {
			t.Fatalf("reply to call %d: got %d", i, r)
		}
	}
	inOrder := 0
	for i, v := range order {
		if v == i {
			inOrder++
		}
	}
	if inOrder == n {
		t.Fatalf("replies arrived in the order the calls were sent; want them reversed")
	}
}

// Every error code a Go client can meet from a server, and its timeout,
// through Call and CallContext alike: a *codec.Error (Call's was an
// rpc.ServerError, whose code AsError parsed back).
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t, &rpcws.DialOptions{Timeout: 200 * time.Millisecond})
	tests := []struct {
		name    string
		method  string
		args    any
		code    string
		message string
	}{
		{"method not found", "Test.Nope", &Args{}, codec.CodeMethodNotFound, "method not found: test.nope"},
		{"service not found", "Nope.Multiply", &Args{}, codec.CodeMethodNotFound, "method not found: nope.multiply"},
		{"invalid params", "Test.Multiply", "not args", codec.CodeInvalidParams, "data must be an object, not a string"},
		{"plain error", "Test.Plain", &Args{}, codec.CodeServerError, "something broke"},
		{"coded error", "Test.Coded", &Args{}, "OutOfRange", "A must be below 10"},
		{"timeout", "Test.Block", &BlockArgs{N: -1}, codec.CodeTimeout, "timeout: test.block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reply int
			err := c.Call(tt.method, tt.args, &reply)
			if _, ok := err.(*rpcws.Error); !ok {
				t.Fatalf("Call: got %T %v, want an *rpcws.Error", err, err)
			}
			e, ok := codec.AsError(err)
			if !ok || e.Code != tt.code || e.Message != tt.message {
				t.Fatalf("Call: got %+v, want code %q message %q", e, tt.code, tt.message)
			}

			err = c.CallContext(context.Background(), tt.method, tt.args, &reply)
			var ce *codec.Error
			if !errors.As(err, &ce) || ce.Code != tt.code || ce.Message != tt.message {
				t.Fatalf("CallContext: got %v, want code %q message %q", err, tt.code, tt.message)
			}
			if got, want := errors.Is(err, rpcws.ErrTimeout), tt.code == codec.CodeTimeout; got != want {
				t.Fatalf("errors.Is(err, ErrTimeout): got %v, want %v", got, want)
			}
		})
	}
}

// A timeout's text is the lesson's.
func TestTimeoutText(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t, &rpcws.DialOptions{Timeout: 50 * time.Millisecond})
	err := c.Call("Test.Block", &BlockArgs{}, new(int))
	if err == nil || err.Error() != "timeout: test.block" {
		t.Fatalf("got %v, want timeout: test.block", err)
	}
	if codec.ErrorCode(err) != codec.CodeTimeout {
		t.Fatalf("ErrorCode: got %q, want Timeout", codec.ErrorCode(err))
	}
}

// A notification runs on the server and nothing comes back.
func TestNotification(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t, nil)
	if err := c.Notify(context.Background(), "Test.Note", "hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-s.noted:
		if got != "hello" {
			t.Fatalf("got %q, want hello", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the notification did not run")
	}
	// A call after it gets its own reply, and nothing else arrived.
	var got int
	if err := c.Call("Test.Multiply", &Args{3, 3}, &got); err != nil || got != 9 {
		t.Fatalf("got %d, %v; want 9, nil", got, err)
	}
	if st := c.Stats(); st != (codec.ClientStats{}) {
		t.Fatalf("stats: got %+v, want nothing dropped", st)
	}
}

// Closing the client leaves no goroutine behind, on either side.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	base := testutil.CountGoroutines()
	func() {
		s := newServer(t, nil)
		ctx := context.Background()
		c, err := rpcws.Dial(ctx, s.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := c.Call("Test.Multiply", &Args{1, 2}, &got); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := c.Call("Test.Multiply", &Args{1, 2}, &got); !errors.Is(err, rpc.ErrShutdown) {
			t.Fatalf("call after Close: got %v, want rpc.ErrShutdown", err)
		}
		s.h.Shutdown(ctx)
	}()
	testutil.CheckGoroutines(t, base+2) // the test server's listener goroutines go in Cleanup
}
