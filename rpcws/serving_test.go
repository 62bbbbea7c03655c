package rpcws_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/rpc"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
	"golang.org/x/sync/errgroup"
)

// Where tells on which goroutine its methods run.
type Where struct {
	gate    chan struct{}
	started chan struct{} // if set, told of every call of Wait
	waiting atomic.Int32  // calls of Wait under way
}

// goroutineID returns the calling goroutine's number, from the first line of
// its stack: "goroutine 42 [running]:".
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	return strings.Fields(string(buf))[1]
}

func (*Where) Here(_ int, reply *string) error {
	*reply = goroutineID()
	return nil
}

// Wait returns once the gate is closed.
func (w *Where) Wait(_ int, reply *string) error {
	w.waiting.Add(1)
	if w.started != nil {
		w.started <- struct{}{}
	}
	<-w.gate
	*reply = goroutineID()
	return nil
}

// dialClient dials an rpcws client to the bubble's handler.
func (b *bubble) dialClient(t *testing.T) *rpcws.Client {
	t.Helper()
	c, err := rpcws.Dial(context.Background(), "ws://mem/rpc", &rpcws.DialOptions{
		WebSocket: &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: b.ln.Dial}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// whereClient serves a gated Where in the bubble and dials a client to it;
// both end at cleanup.
func whereClient(t *testing.T) (*Where, *rpcws.Client) {
	w := &Where{gate: make(chan struct{})}
	b := newBubble(t, nil, w)
	t.Cleanup(b.close)
	c := b.dialClient(t)
	t.Cleanup(func() { c.Close() })
	return w, c
}

// A method that runs long holds up no request behind it: they are read and
// served at once, each on a goroutine of its own, while it runs.
func TestSlowMethodHoldsUpNoOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, c := whereClient(t)

		var slowID string
		slow := c.Go("Where.Wait", 0, &slowID, nil)
		synctest.Wait() // the method runs, and nothing else has arrived
		if w.waiting.Load() != 1 {
			t.Fatal("the slow method has not started")
		}
		start := time.Now()
		var quickID string
		for i := range 3 {
			if err := c.Call("Where.Here", i, &quickID); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("calls behind a slow method took %v of bubble time, want none", took)
		}
		select {
		case <-slow.Done:
			t.Fatal("the slow method returned before its gate opened")
		default:
		}
		close(w.gate)
		if err := waitCall(t, slow); err != nil {
			t.Fatal(err)
		}
		if slowID == quickID {
			t.Errorf("the slow method and the calls behind it all ran on goroutine %s", slowID)
		}
	})
}

// Many methods running long at once each get a goroutine, as with
// rpc.Server.ServeCodec: 64 calls wait on one gate together, and all return
// when it opens. The bubble checks that no goroutine outlives the test.
func TestManySlowMethods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, c := whereClient(t)
		calls := make([]*rpc.Call, 64)
		for i := range calls {
			calls[i] = c.Go("Where.Wait", i, new(string), nil)
		}
		synctest.Wait()
		if n := w.waiting.Load(); n != int32(len(calls)) {
			t.Fatalf("%d of %d methods running", n, len(calls))
		}
		for _, call := range calls {
			select {
			case <-call.Done:
				t.Fatal("a call returned before the gate opened")
			default:
			}
		}
		close(w.gate)
		ids := map[string]bool{}
		for _, call := range calls {
			if err := waitCall(t, call); err != nil {
				t.Fatal(err)
			}
			ids[*call.Reply.(*string)] = true
		}
		if len(ids) != len(calls) {
			t.Errorf("64 waiting methods ran on %d goroutines", len(ids))
		}
	})
}

// Many calls in flight on one connection, over real sockets, with replies
// that complete together leaving in batches: 16 callers sharing the
// connection get every reply right, and a call behind a slow method is then
// served.
func TestPipelinedConnection(t *testing.T) {
	w := &Where{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	s, _ := newServerWith(t, nil, w)
	c := s.dial(t, nil)
	var g errgroup.Group
	for i := range 16 {
		g.Go(func() error {
			for j := range 300 {
				var got int
				if err := c.Call("Test.Multiply", &Args{A: i, B: j}, &got); err != nil {
					return err
				}
				if got != i*j {
					return fmt.Errorf("%d × %d = %d", i, j, got)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	slow := c.Go("Where.Wait", 0, new(string), nil)
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow method did not start within 10 s")
	}
	if err := waitCall(t, c.Go("Test.Multiply", &Args{A: 2, B: 3}, new(int), nil)); err != nil {
		t.Fatal(err)
	}
	close(w.gate)
	if err := waitCall(t, slow); err != nil {
		t.Fatal(err)
	}
}

// ServeConn serves a plain frame transport as ServeHTTP serves a WebSocket:
// a call behind a blocked method is served at once.
func TestServeConnServesLikeServeCodec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &Where{gate: make(chan struct{})}
		srv := rpc.NewServer()
		if err := srv.Register(w); err != nil {
			t.Fatal(err)
		}
		h := rpcws.NewHandler(srv, nil)
		serverEnd, clientEnd := codec.Pipe()
		served := make(chan struct{})
		go func() {
			h.ServeConn(serverEnd)
			close(served)
		}()
		client := rpc.NewClientWithCodec(codec.NewClientCodec(clientEnd, nil))
		slow := client.Go("Where.Wait", 0, new(string), nil)
		synctest.Wait()
		start := time.Now()
		if err := client.Call("Where.Here", 1, new(string)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("a call behind a blocked method took %v of bubble time, want none", took)
		}
		close(w.gate)
		if err := waitCall(t, slow); err != nil {
			t.Fatal(err)
		}
		client.Close()
		<-served
	})
}

// A client may send its first frame as soon as it has sent the upgrade,
// before it reads the 101 response; net/http may then have read the frame
// already when the connection is handed over. The frame is served all the
// same.
func TestFrameWithTheUpgrade(t *testing.T) {
	s := newServer(t, nil)
	req := []byte(`{"id":"1","type":"test.multiply","data":{"A":6,"B":7}}`)
	_, br := rawUpgrade(t, s.url, frame(0x81, req, true)...)
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || head[1] >= 126 {
		t.Fatalf("reply frame header % x, want a short text frame", head)
	}
	reply := make([]byte, head[1])
	if _, err := io.ReadFull(br, reply); err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"1","type":"test.multiply.response","data":42}`; string(reply) != want {
		t.Errorf("reply %s, want %s", reply, want)
	}
}
