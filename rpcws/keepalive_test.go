package rpcws_test

import (
	"context"
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

// bubble is a handler serving the Test service and more, over in-memory
// connections that buffer as sockets do, for tests inside a synctest
// bubble: time there is the bubble's, so intervals pass exactly, and at
// once.
type bubble struct {
	h  *rpcws.Handler
	ln *testutil.Listener
	hs *http.Server
}

func newBubble(t *testing.T, opts *rpcws.HandlerOptions, services ...any) *bubble {
	t.Helper()
	srv := rpc.NewServer()
	for _, svc := range append([]any{newTest()}, services...) {
		if err := srv.Register(svc); err != nil {
			t.Fatal(err)
		}
	}
	b := &bubble{h: rpcws.NewHandler(srv, opts), ln: testutil.NewListener(64 << 10)}
	b.hs = &http.Server{Handler: b.h}
	go b.hs.Serve(b.ln)
	return b
}

// dial opens a plain WebSocket to the handler.
func (b *bubble) dial(t *testing.T, opts websocket.DialOptions) *websocket.Conn {
	t.Helper()
	opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: b.ln.Dial}}
	ws, _, err := websocket.Dial(context.Background(), "ws://mem/rpc", &opts)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// listen dials a client that logs the pings it gets, answering them or
// not, and reads on a goroutine of its own (see readFrames). It is closed at
// cleanup.
func (b *bubble) listen(t *testing.T, answer bool) (ws *websocket.Conn, pings *pingLog, frames <-chan string, end <-chan error) {
	t.Helper()
	pings = newPingLog(answer)
	ws = b.dial(t, websocket.DialOptions{OnPingReceived: pings.onPing})
	t.Cleanup(func() { ws.CloseNow() })
	frames, end = readFrames(ws)
	return ws, pings, frames, end
}

// close ends everything the bubble started.
func (b *bubble) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.h.Shutdown(ctx)
	b.hs.Close()
}

// The server pings a connection it heard nothing from for an interval and
// drops it, without a closing handshake, when nothing comes within another;
// it keeps one that answers, pings while a call runs, pings on at the
// in-flight cap, where it cannot read the pongs, and pings no connection it
// hears from. In the bubble's time, to the interval.
func TestServerKeepalive(t *testing.T) {
	const interval = 200 * time.Millisecond
	opts := &rpcws.HandlerOptions{PingInterval: interval}

	t.Run("idle, no pong", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, opts)
			defer b.close()
			start := time.Now()
			_, pings, _, end := b.listen(t, false)
			err := <-end
			// Dropped at once, without a closing handshake: the peer would
			// not read a close frame.
			if got := websocket.CloseStatus(err); got != -1 {
				t.Fatalf("close status: got %v, want none (the connection dropped)", got)
			}
			if got := pings.count(); got != 1 {
				t.Fatalf("pings before the close: got %d, want 1", got)
			}
			if got := time.Since(start); got != 2*interval {
				t.Fatalf("dropped after %v, want two intervals (%v)", got, 2*interval)
			}
		})
	})

	t.Run("idle, never reads", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, opts)
			defer b.close()
			start := time.Now()
			ws := b.dial(t, websocket.DialOptions{}) // never reads, so never answers
			defer ws.CloseNow()
			// The handler announces no drop: look every tenth of an
			// interval, for ten intervals at most.
			for i := 0; b.h.NumConns() != 0; i++ {
				if i == 100 {
					t.Fatal("the connection was not dropped in ten intervals")
				}
				time.Sleep(interval / 10)
			}
			if got := time.Since(start); got > 2*interval+interval/10 {
				t.Fatalf("dropped after %v, want two intervals (%v)", got, 2*interval)
			}
		})
	})

	t.Run("idle, pongs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, opts)
			defer b.close()
			ws, pings, frames, end := b.listen(t, true)
			time.Sleep(10*interval + interval/2)
			if got := pings.count(); got != 5 {
				// Pinged after an interval of quiet; the pong is heard, so the
				// next tick is quiet again only an interval later.
				t.Fatalf("pings in ten intervals: got %d, want 5", got)
			}
			writeText(t, ws, `{"id":1,"type":"test.multiply","data":{"A":3,"B":4}}`)
			select {
			case f := <-frames:
				if f != `{"id":1,"type":"test.multiply.response","data":12}` {
					t.Fatalf("got %s", f)
				}
			case err := <-end:
				t.Fatalf("closed: %v", err)
			}
		})
	})

	t.Run("busy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hold := newHold(1)
			b := newBubble(t, opts, hold)
			defer b.close()
			ws, pings, frames, end := b.listen(t, true)
			writeText(t, ws, `{"id":1,"type":"hold.wait","data":{"N":7}}`)
			<-hold.reached
			// A call in flight and nothing else on the wire for ten
			// intervals: the server pings, so that proxies see traffic, and
			// the pongs keep the connection.
			time.Sleep(10 * interval)
			if pings.count() == 0 {
				t.Fatal("no ping while a call was in flight")
			}
			close(hold.release)
			select {
			case f := <-frames:
				if want := `{"id":1,"type":"hold.wait.response","data":7}`; f != want {
					t.Fatalf("got %s, want %s", f, want)
				}
			case err := <-end:
				t.Fatalf("connection closed before the reply: %v", err)
			}
		})
	})

	t.Run("at the in-flight cap", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hold := newHold(1)
			b := newBubble(t, &rpcws.HandlerOptions{PingInterval: interval, MaxInFlight: 1}, hold)
			defer b.close()
			ws, pings, frames, end := b.listen(t, true)
			writeText(t, ws, `{"id":1,"type":"hold.wait","data":{"N":1}}`)
			<-hold.reached
			writeText(t, ws, `{"id":2,"type":"hold.wait","data":{"N":2}}`) // read, then waits for a slot
			// The server reads nothing now, so it cannot read the pongs; it
			// pings on, every interval, and keeps the connection.
			start := time.Now()
			time.Sleep(10*interval + interval/2)
			if got := pings.count(); got != 10 {
				t.Fatalf("pings in ten intervals at the cap: got %d, want 10 (one an interval)", got)
			}
			t.Logf("%d pings in %v at the cap", pings.count(), time.Since(start))
			close(hold.release)
			for i := range 2 {
				select {
				case <-frames:
				case err := <-end:
					t.Fatalf("connection closed before reply %d: %v", i+1, err)
				}
			}
		})
	})

	t.Run("idle after a call, no pong", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, opts)
			defer b.close()
			ws, _, frames, end := b.listen(t, false)
			writeText(t, ws, `{"id":1,"type":"test.multiply","data":{"A":2,"B":3}}`)
			if f := <-frames; f != `{"id":1,"type":"test.multiply.response","data":6}` {
				t.Fatalf("got %s", f)
			}
			answered := time.Now()
			<-end
			if got := time.Since(answered); got < interval || got > 3*interval {
				t.Fatalf("dropped %v after its last call, want between one and three intervals", got)
			}
		})
	})

	t.Run("active", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, opts)
			defer b.close()
			ws, pings, frames, end := b.listen(t, false)
			// A request every tenth of an interval, for six intervals.
			for i := range 60 {
				time.Sleep(interval / 10)
				writeText(t, ws, fmt.Sprintf(`{"id":%d,"type":"test.multiply","data":{"A":%d,"B":1}}`, i, i))
				select {
				case <-frames:
				case err := <-end:
					t.Fatalf("active connection closed: %v", err)
				}
			}
			if got := pings.count(); got != 0 {
				t.Fatalf("pings while active: got %d, want 0", got)
			}
			pings.wait(t) // idle now
		})
	})
}
