package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// Args and the Test service are what the tests call.
type Args struct{ A, B int }

// Test is a service whose methods let a test steer replies.
type Test struct {
	mu      sync.Mutex
	gates   map[int]chan struct{} // Gate: released by the test
	arrived chan int              // Gate and Block announce each call here
	noted   chan string           // Note's argument
}

func newTest() *Test {
	return &Test{gates: make(map[int]chan struct{}), arrived: make(chan int, 10000), noted: make(chan string, 100)}
}

func (*Test) Multiply(args *Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

func (*Test) Plain(args *Args, reply *int) error { return errors.New("something broke") }

func (*Test) Coded(args *Args, reply *int) error {
	return &codec.Error{Code: "OutOfRange", Message: "A must be below 10"}
}

// Gate replies n once the test releases gate n.
func (s *Test) Gate(n int, reply *int) error {
	s.mu.Lock()
	g, ok := s.gates[n]
	if !ok {
		g = make(chan struct{})
		s.gates[n] = g
	}
	s.mu.Unlock()
	s.arrived <- n
	<-g
	*reply = n
	return nil
}

// goGates starts calls to Test.Gate with 0..n-1 on c. Each call's reply
// lands in replies[i], and the call on done when it completes.
func goGates(c *rpcws.Client, n int) (done chan *rpc.Call, replies []int) {
	done = make(chan *rpc.Call, n)
	replies = make([]int, n)
	for i := range n {
		c.Go("Test.Gate", i, &replies[i], done)
	}
	return done, replies
}

func (s *Test) release(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gates[n]
	if !ok {
		g = make(chan struct{})
		s.gates[n] = g
	}
	close(g)
}

// Block waits until its connection closes.
type BlockArgs struct {
	N int
	rpcws.Caller
}

func (s *Test) Block(args *BlockArgs, reply *int) error {
	s.arrived <- args.N
	<-args.Peer().Context().Done()
	return nil
}

// Note records its argument: the tests send it as a notification.
func (s *Test) Note(text string, reply *struct{}) error {
	s.noted <- text
	return nil
}

// Push replies, then pushes Count "test.event" events numbered from 1.
type PushArgs struct {
	Count int
	rpcws.Caller
}

func (s *Test) Push(args *PushArgs, reply *int) error {
	peer, n := args.Peer(), args.Count
	*reply = n
	args.AfterReply(func() {
		for i := 1; i <= n; i++ {
			if peer.Notify(context.Background(), "test.event", i) != nil {
				return
			}
		}
	})
	return nil
}

// server is a test server: a Handler serving a Test service on 127.0.0.1.
type server struct {
	*Test
	h   *rpcws.Handler
	url string
}

func newServer(t *testing.T, opts *rpcws.HandlerOptions) *server {
	t.Helper()
	s, _ := newServerWith(t, opts)
	return s
}

func (s *server) dial(t *testing.T, opts *rpcws.DialOptions) *rpcws.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpcws.Dial(ctx, s.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitArrived waits until n calls have announced themselves.
func (s *Test) waitArrived(t *testing.T, n int) []int {
	t.Helper()
	got := make([]int, 0, n)
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case v := <-s.arrived:
			got = append(got, v)
		case <-timeout:
			t.Fatalf("only %d of %d calls arrived", len(got), n)
		}
	}
	return got
}

// waitCall waits for a call to complete, within a bound.
func waitCall(t *testing.T, call *rpc.Call) error {
	t.Helper()
	select {
	case <-call.Done:
		return call.Error
	case <-time.After(10 * time.Second):
		t.Fatalf("call %s did not complete", call.ServiceMethod)
		return nil
	}
}

// newServerWith is newServer with more services registered beside Test, under
// their type names, and with the test HTTP server returned, for tests that
// reach below the handler.
func newServerWith(t *testing.T, opts *rpcws.HandlerOptions, services ...any) (*server, *httptest.Server) {
	t.Helper()
	s := &server{Test: newTest()}
	srv := rpc.NewServer()
	for _, svc := range append([]any{s.Test}, services...) {
		if err := srv.Register(svc); err != nil {
			t.Fatal(err)
		}
	}
	s.h = rpcws.NewHandler(srv, opts)
	hs := httptest.NewServer(s.h)
	s.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.h.Shutdown(ctx)
		hs.Close()
	})
	return s, hs
}

// dialRaw opens a plain WebSocket to url, for tests that write frames of
// their own or misbehave as a client. It is closed at cleanup.
func dialRaw(t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// dialStatus tries an upgrade that should be refused and returns the HTTP
// status of the refusal; it fails t if the upgrade succeeds.
func dialStatus(t *testing.T, url string, opts *websocket.DialOptions) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err == nil {
		ws.CloseNow()
		t.Fatalf("upgrade of %s accepted, want it refused", url)
	}
	if resp == nil {
		t.Fatalf("upgrade of %s: no response: %v", url, err)
	}
	return resp.StatusCode
}

// readClose reads ws until it fails and returns the close error the peer
// sent, within a bound; frames read before it are dropped.
func readClose(t *testing.T, ws *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read: got %v, want a close frame", err)
		}
		return ce
	}
}

// readReply reads frames from ws until one has the given raw id and returns
// it decoded, within a bound.
func readReply(t *testing.T, ws *websocket.Conn, id string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, p, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("reading the reply to %s: %v", id, err)
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("reply %s: %v", p, err)
		}
		if raw, _ := json.Marshal(m["id"]); string(raw) == id {
			return m
		}
	}
}

// writeText writes one text frame to ws, within a bound.
func writeText(t *testing.T, ws *websocket.Conn, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatalf("write %s: %v", frame, err)
	}
}
