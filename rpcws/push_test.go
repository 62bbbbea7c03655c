package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// eventLog collects a client's events.
type eventLog struct {
	mu     sync.Mutex
	events []string
	signal chan struct{}
}

func newEventLog() *eventLog { return &eventLog{signal: make(chan struct{}, 1)} }

func (l *eventLog) onEvent(typ string, data json.RawMessage) {
	l.mu.Lock()
	l.events = append(l.events, typ+" "+string(data))
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// wait waits until n events have arrived and returns them.
func (l *eventLog) wait(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		got := append([]string(nil), l.events...)
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-l.signal:
		case <-timeout:
			t.Fatalf("got %d events, want %d: %v", len(got), n, got)
		}
	}
}

// A method pushes events to its caller after its reply; the Go client gets
// them through OnEvent, in order.
func TestPushAfterReply(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	log := newEventLog()
	c := s.dial(t, &rpcws.DialOptions{OnEvent: log.onEvent})
	var n int
	if err := c.Call("Test.Push", &PushArgs{Count: 100}, &n); err != nil || n != 100 {
		t.Fatalf("got %d, %v; want 100, nil", n, err)
	}
	got := log.wait(t, 100)
	for i, e := range got {
		if want := fmt.Sprintf("test.event %d", i+1); e != want {
			t.Fatalf("event %d: got %q, want %q", i, e, want)
		}
	}
}

// Broadcast reaches every open connection, and the handler counts them.
func TestBroadcast(t *testing.T) {
	t.Parallel()
	const conns = 100
	s := newServer(t, nil)
	logs := make([]*eventLog, conns)
	for i := range logs {
		logs[i] = newEventLog()
		s.dial(t, &rpcws.DialOptions{OnEvent: logs[i].onEvent})
	}
	if got := s.h.NumConns(); got != conns {
		t.Fatalf("NumConns: got %d, want %d", got, conns)
	}
	// A client's Dial returns once it has the server's 101 response, a
	// moment before the server has set the connection up for pushes.
	testutil.WaitFor(t, "every connection to be set up", func() bool { return len(s.h.Peers()) == conns })
	if err := s.h.Broadcast(context.Background(), "news", map[string]string{"headline": "hello"}); err != nil {
		t.Fatal(err)
	}
	for i, l := range logs {
		if got := l.wait(t, 1); got[0] != `news {"headline":"hello"}` {
			t.Fatalf("connection %d: got %q", i, got[0])
		}
	}
}

// A client that reads as fast as it can is never taken for a slow one: 64
// requests on one connection each push 1000 events with no pause between
// them, and every reply and every event arrives, on an open connection.
func TestFastReaderGetsEveryEvent(t *testing.T) {
	t.Parallel()
	flow := &Flow{pushed: make(chan error, 64)}
	s, _ := newServerWith(t, &rpcws.HandlerOptions{MaxQueuedBytes: 4 << 10}, flow)
	ws := dialRaw(t, s.url, nil)
	const requests, events = 64, 1000
	for i := range requests {
		writeText(t, ws, fmt.Sprintf(`{"id":%d,"type":"flow.push","data":{"Size":100,"Count":%d}}`, i, events))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replies, got := 0, 0
	for replies < requests || got < requests*events {
		_, p, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("after %d replies and %d events: %v", replies, got, err)
		}
		switch {
		case strings.Contains(string(p), `"type":"flow.event"`):
			got++
		case strings.Contains(string(p), `"type":"flow.push.response"`):
			replies++
		default:
			t.Fatalf("unexpected frame %s", p)
		}
	}
	for range requests {
		select {
		case err := <-flow.pushed:
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a pusher did not finish")
		}
	}
	if n := s.h.NumConns(); n != 1 {
		t.Fatalf("NumConns: got %d, want 1", n)
	}
}

// 1000 calls in flight, half of them cancelled: the cancelled ones return
// context.Canceled at once and their replies, which come later, are dropped
// and counted; the rest are all answered; nothing is left behind.
func TestCancellationUnderLoad(t *testing.T) {
	base := testutil.CountGoroutines()
	func() {
		const n = 1000
		s := newServer(t, &rpcws.HandlerOptions{MaxInFlight: n})
		c := s.dial(t, nil)
		var answered, cancelled sync.WaitGroup
		cancels := make([]context.CancelFunc, n)
		for i := range n {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			wg := &answered
			if i%2 == 1 {
				wg = &cancelled
			}
			wg.Go(func() {
				defer cancel()
				reply := -1
				err := c.CallContext(ctx, "Test.Gate", i, &reply)
				switch {
				case i%2 == 0 && (err != nil || reply != i):
					t.Errorf("call %d: got %d, %v; want %d, nil", i, reply, err, i)
				case i%2 == 1 && (!errors.Is(err, context.Canceled) || reply != -1):
					t.Errorf("cancelled call %d: got %d, %v; want -1, context.Canceled", i, reply, err)
				}
			})
		}
		s.waitArrived(t, n) // all n are in flight
		for i := 1; i < n; i += 2 {
			cancels[i]()
		}
		cancelled.Wait() // before any reply was sent
		for i := range n {
			s.release(i)
		}
		answered.Wait()

		// The late replies are dropped and counted; the connection is fine.
		var got int
		if err := c.CallContext(context.Background(), "Test.Multiply", &Args{5, 5}, &got); err != nil || got != 25 {
			t.Fatalf("after the load: got %d, %v", got, err)
		}
		// The late replies may still be on their way: the last ones were
		// written as their gates opened, whatever came after.
		testutil.WaitFor(t, "the late replies", func() bool { return c.Stats().LateReplies >= n/2 })
		if got := c.Stats().LateReplies; got != n/2 {
			t.Fatalf("late replies: got %d, want %d", got, n/2)
		}
		c.Close()
		s.h.Shutdown(context.Background())
	}()
	testutil.CheckGoroutines(t, base+2)
}
