package rpcws_test

import (
	"context"
	"errors"
	"net/http"
	"net/rpc"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// Shutdown with 1000 requests in flight: each gets its reply; requests sent
// during the drain get Unavailable; then the connections close with 1001,
// later calls fail at once, and new upgrades get 503.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const n = 1000
	s := newServer(t, &rpcws.HandlerOptions{MaxInFlight: n})
	c := s.dial(t, nil)
	done := make(chan *rpc.Call, n)
	replies := make([]int, n)
	for i := range n {
		c.Go("Test.Gate", i, &replies[i], done)
	}
	s.waitArrived(t, n)
	// A raw connection with a call in flight too, to read the close frame.
	raw := dialRaw(t, s.url, nil)
	writeText(t, raw, `{"id":"held","type":"test.gate","data":1000}`)
	s.waitArrived(t, 1)

	// One reply frees a slot under c's cap, so that c's requests are read.
	s.release(0)
	if call := <-done; call.Error != nil || replies[0] != 0 {
		t.Fatalf("first call: got %d, %v; want 0, nil", replies[0], call.Error)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.h.Shutdown(ctx)
	}()

	// Calls are served until the drain begins, then refused with Unavailable.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var got int
		err := c.CallContext(ctx, "Test.Multiply", &Args{2, 3}, &got)
		cancel()
		if code := codec.ErrorCode(err); code == codec.CodeUnavailable {
			break
		} else if err != nil || got != 6 {
			t.Fatalf("call before the drain: got %d, %v; want 6, nil or code Unavailable", got, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("calls were not refused with Unavailable")
		}
	}
	// Every connection refuses new requests, and new upgrades are refused.
	writeText(t, raw, `{"id":"late","type":"test.multiply","data":{"A":1,"B":1}}`)
	if got := readReply(t, raw, `"late"`); got["type"] != "error" || got["code"] != codec.CodeUnavailable {
		t.Fatalf("request during the drain: got %v, want an Unavailable error", got)
	}
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade during the drain: got %d, want %d", got, http.StatusServiceUnavailable)
	}
	if got := s.h.NumConns(); got != 2 {
		t.Fatalf("connections during the drain: got %d, want 2", got)
	}

	// The requests in flight end, and each gets its reply.
	for i := 1; i <= n; i++ {
		s.release(i)
	}
	for range n - 1 {
		select {
		case call := <-done:
			if i := call.Args.(int); call.Error != nil || replies[i] != i {
				t.Fatalf("call %d: got %d, %v; want %d, nil", i, replies[i], call.Error, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call in flight got no reply")
		}
	}
	if got := readReply(t, raw, `"held"`); got["data"] != 1000.0 {
		t.Fatalf("raw call in flight: got %v, want data 1000", got)
	}
	// Then the connections close with 1001.
	if ce := readClose(t, raw); ce.Code != websocket.StatusGoingAway {
		t.Fatalf("close status: got %v, want %v", ce.Code, websocket.StatusGoingAway)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection did not close")
	}
	if got := s.h.NumConns(); got != 0 {
		t.Fatalf("connections after Shutdown: got %d, want 0", got)
	}

	// Later calls fail at once.
	start := time.Now()
	err := c.CallContext(context.Background(), "Test.Multiply", &Args{1, 1}, new(int))
	if !errors.Is(err, rpcws.ErrDisconnected) {
		t.Fatalf("call after Shutdown: got %v, want ErrDisconnected", err)
	}
	if err := c.Call("Test.Multiply", &Args{1, 1}, new(int)); codec.ErrorCode(err) != codec.CodeDisconnected {
		t.Fatalf("stock call after Shutdown: got %v, want code Disconnected", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("calls after Shutdown took %v, want them to fail at once", d)
	}
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: got %d, want %d", got, http.StatusServiceUnavailable)
	}
}

// Shutdown with a context that has ended closes every connection at once,
// with 1001, fails the clients' pending calls, and returns the context's
// error, even while a peer that does not read holds up its closing
// handshake.
func TestShutdownExpired(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t, &rpcws.DialOptions{Timeout: 30 * time.Second})
	errc := make(chan error, 1)
	go func() { errc <- c.CallContext(context.Background(), "Test.Block", &BlockArgs{N: 1}, new(int)) }()
	raw := dialRaw(t, s.url, nil)
	writeText(t, raw, `{"id":2,"type":"test.block","data":{"N":2}}`)
	s.waitArrived(t, 2)

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	start := time.Now()
	err := s.h.Shutdown(ctx) // raw is not reading
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Shutdown with an expired context took %v, want it to return at once", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: got %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, rpcws.ErrDisconnected) {
			t.Fatalf("pending call: got %v, want ErrDisconnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pending call did not fail")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the pending call failed after %v, want at once", d)
	}
	if ce := readClose(t, raw); ce.Code != websocket.StatusGoingAway {
		t.Fatalf("close status: got %v, want %v", ce.Code, websocket.StatusGoingAway)
	}
	waitFor(t, "the connections to close", func() bool { return s.h.NumConns() == 0 })
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: got %d, want %d", got, http.StatusServiceUnavailable)
	}
}
