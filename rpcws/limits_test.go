package rpcws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// Hold is a service whose Wait method runs until the test lets it go (or its
// connection closes), and that counts how many run at once.
type Hold struct {
	release chan struct{} // closed by the test: every Wait returns
	started atomic.Int64  // Waits begun, ever
	running atomic.Int64  // Waits running now
	peak    atomic.Int64  // most Waits running at once

	at      int64         // reached closes when running first reaches at
	reached chan struct{} // closed once running reached at
	once    sync.Once
}

// HoldArgs is the argument of Hold.Wait.
type HoldArgs struct {
	N int
	rpcws.Caller
}

func newHold(at int) *Hold {
	return &Hold{release: make(chan struct{}), at: int64(at), reached: make(chan struct{})}
}

// Wait replies N once the test releases it, or returns early when its
// connection closes.
func (h *Hold) Wait(args *HoldArgs, reply *int) error {
	h.started.Add(1)
	n := h.running.Add(1)
	defer h.running.Add(-1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if n >= h.at {
		h.once.Do(func() { close(h.reached) })
	}
	var gone <-chan struct{}
	if p := args.Peer(); p != nil {
		gone = p.Context().Done()
	}
	select {
	case <-h.release:
	case <-gone:
	}
	*reply = args.N
	return nil
}

// waitReached waits until at Waits run at once.
func (h *Hold) waitReached(t *testing.T) {
	t.Helper()
	select {
	case <-h.reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("Waits running: got %d, want %d", h.running.Load(), h.at)
	}
}

// memStats samples the goroutines and memory of the process while a test
// runs, and keeps the peaks.
type memStats struct {
	goroutines int
	heap       uint64 // HeapInuse
	stack      uint64 // StackInuse
}

func sampleMem() memStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memStats{runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse}
}

func (m *memStats) max(o memStats) {
	m.goroutines = max(m.goroutines, o.goroutines)
	m.heap = max(m.heap, o.heap)
	m.stack = max(m.stack, o.stack)
}

const mib = 1 << 20

// One connection floods the server with 100,000 requests for a method that
// blocks: the server runs MaxInFlight of them and stops reading the rest, so
// its goroutines and memory stay flat, and another connection is served
// meanwhile.
func TestFloodIsHeldBack(t *testing.T) {
	// Not parallel: it counts the process's goroutines and memory.
	const total = 100_000
	const maxInFlight = codec.DefaultMaxInFlight
	hold := newHold(maxInFlight)
	s, _ := newServerWith(t, nil, hold) // MaxInFlight: the default
	other := s.dial(t, nil)
	var got int
	if err := other.Call("Test.Multiply", &Args{2, 3}, &got); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	base := sampleMem()
	peak := base

	flood := dialRaw(t, s.url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var sent atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 0, 64)
		for i := range total {
			buf = fmt.Appendf(buf[:0], `{"id":%d,"type":"hold.wait","data":{"N":%d}}`, i, i)
			if err := flood.Write(ctx, websocket.MessageText, buf); err != nil {
				writerDone <- err
				return
			}
			sent.Add(1)
		}
		writerDone <- nil
	}()

	// Wait until the server runs its cap of requests, then until the writer
	// has sent them all or is held back by the transport: no progress for a
	// while after many more frames than the cap.
	hold.waitReached(t)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	var last int64 = -1
	stalled := 0
	held := false
	for !held {
		select {
		case err := <-writerDone:
			if err != nil {
				t.Fatalf("flood writer: %v", err)
			}
			held = true
		case <-tick.C:
			peak.max(sampleMem())
			n := sent.Load()
			if n == last && n > 10*maxInFlight {
				stalled++
			} else {
				stalled = 0
			}
			last = n
			held = stalled >= 5
		case <-deadline:
			t.Fatalf("the flood writer neither finished nor stalled: %d frames sent", sent.Load())
		}
	}
	peak.max(sampleMem())

	// Another connection is served while the flood is held back.
	start := time.Now()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := other.CallContext(cctx, "Test.Multiply", &Args{6, 7}, &got); err != nil || got != 42 {
		t.Fatalf("other client: got %d, %v; want 42, nil", got, err)
	}
	latency := time.Since(start)
	if latency > 2*time.Second {
		t.Errorf("other client's call took %v, want it prompt", latency)
	}

	runtime.GC()
	after := sampleMem()
	peak.max(after)
	t.Logf("flood: %d of %d frames written; server ran %d (peak %d at once); goroutines %d → peak %d; heap in use %.1f → peak %.1f MiB (%.1f after GC); stacks %.1f → peak %.1f MiB; other client's call %v",
		sent.Load(), total, hold.started.Load(), hold.peak.Load(),
		base.goroutines, peak.goroutines,
		float64(base.heap)/mib, float64(peak.heap)/mib, float64(after.heap)/mib,
		float64(base.stack)/mib, float64(peak.stack)/mib, latency)

	if got := hold.started.Load(); got != maxInFlight {
		t.Errorf("requests the server started: got %d, want %d (MaxInFlight)", got, maxInFlight)
	}
	if got := hold.peak.Load(); got != maxInFlight {
		t.Errorf("requests running at once: got %d, want %d", got, maxInFlight)
	}
	// One goroutine per request in flight, plus a few for the connections.
	if got, limit := peak.goroutines-base.goroutines, maxInFlight+32; got > limit {
		t.Errorf("goroutines grew by %d, want at most %d", got, limit)
	}
	if got, limit := float64(after.heap)-float64(base.heap), 16.0*mib; got > limit {
		t.Errorf("heap in use grew by %.1f MiB, want at most %.0f MiB", got/mib, limit/mib)
	}
	if got, limit := float64(peak.stack)-float64(base.stack), 16.0*mib; got > limit {
		t.Errorf("stacks grew by %.1f MiB, want at most %.0f MiB", got/mib, limit/mib)
	}

	// The flood client goes away; then the held requests end, and the
	// server drops the connection.
	cancel()
	flood.CloseNow()
	close(hold.release)
	testutil.WaitFor(t, "the flood connection to close", func() bool { return s.h.NumConns() == 1 })
	if err := other.Call("Test.Multiply", &Args{1, 1}, &got); err != nil || got != 1 {
		t.Fatalf("other client after the flood: got %d, %v; want 1, nil", got, err)
	}
}

// A frame over the read limit closes its connection with 1009; a frame at
// the limit is served; other connections go on.
func TestReadLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		limit int64 // HandlerOptions.ReadLimit
		size  int   // of the frame sent
		want  websocket.StatusCode
	}{
		{"default limit, frame at it", 0, rpcws.DefaultMaxFrameSize, -1},
		{"default limit, one byte over", 0, rpcws.DefaultMaxFrameSize + 1, websocket.StatusMessageTooBig},
		{"small limit, frame at it", 1024, 1024, -1},
		{"small limit, one byte over", 1024, 1025, websocket.StatusMessageTooBig},
		{"small limit, far over", 1024, 64 << 10, websocket.StatusMessageTooBig},
		{"no limit", -1, 2 * rpcws.DefaultMaxFrameSize, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, &rpcws.HandlerOptions{ReadLimit: tt.limit})
			ws := dialRaw(t, s.url, nil)
			writeText(t, ws, paddedFrame(t, tt.size))
			if tt.want == -1 {
				reply := readReply(t, ws, "1")
				if reply["type"] != "test.multiply.response" || reply["data"] != 42.0 {
					t.Fatalf("got %v, want the reply 42", reply)
				}
			} else {
				ce := readClose(t, ws)
				if ce.Code != tt.want {
					t.Fatalf("close status: got %v, want %v", ce.Code, tt.want)
				}
				testutil.WaitFor(t, "the connection to close", func() bool { return s.h.NumConns() == 0 })
			}
			// The server serves another client.
			c := s.dial(t, nil)
			var got int
			if err := c.Call("Test.Multiply", &Args{2, 5}, &got); err != nil || got != 10 {
				t.Fatalf("other client: got %d, %v; want 10, nil", got, err)
			}
		})
	}
}

// paddedFrame returns a request for Test.Multiply(6, 7) with id 1, padded
// with an unknown field to exactly size bytes.
func paddedFrame(t *testing.T, size int) string {
	t.Helper()
	const head, tail = `{"id":1,"type":"test.multiply","data":{"A":6,"B":7},"pad":"`, `"}`
	n := size - len(head) - len(tail)
	if n < 0 {
		t.Fatalf("frame of %d bytes is too short", size)
	}
	return head + strings.Repeat("x", n) + tail
}

// Flow is a service that sends more than a client that stops reading can
// take: big replies, and events.
type Flow struct {
	pushed chan error // the outcome of each Push's events
}

// FlowArgs is the argument of Flow's methods.
type FlowArgs struct {
	Size  int // bytes of each reply or event
	Count int // events
	rpcws.Caller
}

// Reply replies with a string of Size bytes.
func (*Flow) Reply(args *FlowArgs, reply *string) error {
	*reply = strings.Repeat("x", args.Size)
	return nil
}

// Push replies, then pushes Count events of Size bytes, and reports the first
// error of Notify (or nil) on f.pushed.
func (f *Flow) Push(args *FlowArgs, reply *int) error {
	peer, count, data := args.Peer(), args.Count, strings.Repeat("x", args.Size)
	args.AfterReply(func() {
		for range count {
			if err := peer.Notify(context.Background(), "flow.event", data); err != nil {
				f.pushed <- err
				return
			}
		}
		f.pushed <- nil
	})
	return nil
}

// A client that stops reading while the server writes to it is disconnected
// (after the write timeout, or at once when its event queue overflows), the
// goroutines that served it end, and other clients are served meanwhile.
func TestSlowReader(t *testing.T) {
	// Not parallel: it counts goroutines.
	const writeTimeout = 500 * time.Millisecond
	tests := []struct {
		name  string
		opts  rpcws.HandlerOptions
		frame string // what the slow client sends before it stops reading
		// overflow: broadcasts overflow the event queue, which they do not
		// wait for; the client then reads again and finds the close frame.
		overflow bool
	}{
		{
			name: "replies, write timeout",
			opts: rpcws.HandlerOptions{WriteTimeout: writeTimeout},
			// 64 replies of 256 KiB: more than the socket buffers hold.
			frame: `{"id":%d,"type":"flow.reply","data":{"Size":262144}}`,
		},
		{
			// Notify waits for room, and gives up after the write timeout.
			name:  "events, write timeout",
			opts:  rpcws.HandlerOptions{WriteTimeout: writeTimeout},
			frame: `{"id":%d,"type":"flow.push","data":{"Size":65536,"Count":256}}`,
		},
		{
			name:     "broadcasts, queue overflow",
			opts:     rpcws.HandlerOptions{MaxQueuedBytes: 64 << 10},
			overflow: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flow := &Flow{pushed: make(chan error, 100)}
			s, _ := newServerWith(t, &tt.opts, flow)
			other := s.dial(t, nil)
			var got int
			if err := other.Call("Test.Multiply", &Args{2, 3}, &got); err != nil {
				t.Fatal(err)
			}
			base := testutil.CountGoroutines()

			slow := dialRaw(t, s.url, nil)
			testutil.WaitFor(t, "the slow connection to be counted", func() bool { return s.h.NumConns() == 2 })
			n := 64
			if strings.Contains(tt.frame, "flow.push") {
				n = 1
			}
			start := time.Now()
			for i := range n {
				if tt.frame != "" {
					writeText(t, slow, fmt.Sprintf(tt.frame, i))
				}
			}

			if tt.overflow {
				// Broadcasts as fast as memory allows would outrun any
				// reader's socket: the other client leaves meanwhile, and
				// a new one comes once the slow one is cut.
				other.Close()
				testutil.WaitFor(t, "the other client to leave", func() bool { return s.h.NumConns() == 1 })
				// Broadcast until the slow connection is cut: the socket
				// buffers and the 64 KiB queue fill, and then it is.
				event := strings.Repeat("x", 16<<10)
				cut := func() bool {
					for _, p := range s.h.Peers() {
						if p.Context().Err() != nil {
							return true
						}
					}
					return false
				}
				for i := 0; !cut(); i++ {
					if i == 100000 {
						t.Fatal("the event queue did not overflow")
					}
					if err := s.h.Broadcast(context.Background(), "flow.event", event); err != nil {
						t.Fatal(err)
					}
				}
				// The server is still trying to write: others are served.
				other = s.dial(t, nil)
				if err := other.Call("Test.Multiply", &Args{6, 7}, &got); err != nil || got != 42 {
					t.Fatalf("other client: got %d, %v; want 42, nil", got, err)
				}
				// The slow client reads again, and finds the events that
				// were written, then the close frame.
				ce := readClose(t, slow)
				if ce.Code != websocket.StatusPolicyViolation || ce.Reason != rpcws.SlowConsumerReason {
					t.Fatalf("close: got %v %q, want %v %q", ce.Code, ce.Reason, websocket.StatusPolicyViolation, rpcws.SlowConsumerReason)
				}
			} else {
				// Others are served while the server is stuck on the slow one.
				if err := other.Call("Test.Multiply", &Args{6, 7}, &got); err != nil || got != 42 {
					t.Fatalf("other client: got %d, %v; want 42, nil", got, err)
				}
				if n == 1 {
					// No cap on the queue: the write timeout, not an
					// overflow, ends the connection (perhaps before every
					// event was queued).
					select {
					case err := <-flow.pushed:
						if !errors.Is(err, rpcws.ErrSlowConsumer) && !errors.Is(err, rpcws.ErrClosed) {
							t.Fatalf("Notify: got %v, want ErrSlowConsumer (or ErrClosed, when the write timed out first)", err)
						}
					case <-time.After(10 * time.Second):
						t.Fatal("the events were not queued")
					}
				}
			}
			testutil.WaitFor(t, "the slow connection to close", func() bool { return s.h.NumConns() == 1 })
			elapsed := time.Since(start)
			if !tt.overflow && elapsed < writeTimeout {
				t.Errorf("slow connection closed after %v, before the write timeout %v", elapsed, writeTimeout)
			}
			t.Logf("slow connection closed after %v", elapsed)
			slow.CloseNow()
			testutil.CheckGoroutines(t, base)
			if err := other.Call("Test.Multiply", &Args{1, 1}, &got); err != nil || got != 1 {
				t.Fatalf("other client afterwards: got %d, %v; want 1, nil", got, err)
			}
		})
	}
}

// Beyond MaxConns an upgrade is refused with 503; once a connection closes,
// a new one is accepted.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	const maxConns = 3
	s := newServer(t, &rpcws.HandlerOptions{MaxConns: maxConns})
	clients := make([]*rpcws.Client, maxConns)
	for i := range clients {
		clients[i] = s.dial(t, nil)
	}
	for range 2 {
		if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
			t.Fatalf("upgrade beyond MaxConns: got %d, want %d", got, http.StatusServiceUnavailable)
		}
	}
	// The handler counts a connection once it is served, a moment after the
	// client sees the upgrade; its place was held from the start.
	testutil.WaitFor(t, "the connections to be counted", func() bool { return s.h.NumConns() == maxConns })
	clients[0].Close()
	testutil.WaitFor(t, "a connection to close", func() bool { return s.h.NumConns() == maxConns-1 })
	c := s.dial(t, nil)
	var got int
	if err := c.Call("Test.Multiply", &Args{4, 5}, &got); err != nil || got != 20 {
		t.Fatalf("new client: got %d, %v; want 20, nil", got, err)
	}
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade beyond MaxConns again: got %d, want %d", got, http.StatusServiceUnavailable)
	}
}

// pingLog is an OnPingReceived callback that records the pings a raw client
// gets, and answers them or not.
type pingLog struct {
	answer bool
	pings  chan time.Time
}

func newPingLog(answer bool) *pingLog {
	return &pingLog{answer: answer, pings: make(chan time.Time, 100)}
}

func (l *pingLog) onPing(context.Context, []byte) bool {
	select {
	case l.pings <- time.Now():
	default:
	}
	return l.answer
}

// count returns the pings received so far.
func (l *pingLog) count() int { return len(l.pings) }

// wait waits for the next ping.
func (l *pingLog) wait(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-l.pings:
		return at
	case <-time.After(10 * time.Second):
		t.Fatal("no ping came")
		return time.Time{}
	}
}

// readFrames reads ws on a goroutine of its own, so that its pings are
// handled, and hands the frames, then the error that ended the reads, to
// the channels it returns.
func readFrames(ws *websocket.Conn) (<-chan string, <-chan error) {
	frames, end := make(chan string, 100), make(chan error, 1)
	go func() {
		for {
			_, p, err := ws.Read(context.Background())
			if err != nil {
				end <- err
				return
			}
			frames <- string(p)
		}
	}()
	return frames, end
}

// A Go client pings a server that has gone quiet, and fails its pending calls
// with Disconnected as soon as no pong comes: two intervals after the last
// word from the server, exactly, in the bubble's time; long before the
// calls' own timeout.
func TestClientKeepalive(t *testing.T) {
	const interval = 100 * time.Millisecond
	tests := []struct {
		name string
		read bool // the server reads (and drops pings) rather than not reading at all
	}{
		{"server reads but does not answer pings", true},
		{"server stops reading", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				ln := testutil.NewListener(64 << 10)
				var served sync.WaitGroup
				hs := &http.Server{Handler: quietHandler(ctx, &served, tt.read)}
				go hs.Serve(ln)
				defer func() {
					cancel()
					served.Wait()
					hs.Close()
				}()
				c, err := rpcws.Dial(context.Background(), "ws://mem/rpc", &rpcws.DialOptions{
					WebSocket:    &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.Dial}}},
					PingInterval: interval,
					Timeout:      30 * time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				start := time.Now()
				err = c.CallContext(context.Background(), "Test.Multiply", &Args{1, 2}, new(int))
				if !errors.Is(err, rpcws.ErrDisconnected) {
					t.Fatalf("pending call: got %v, want ErrDisconnected", err)
				}
				if got := time.Since(start); got != 2*interval {
					t.Fatalf("pending call failed after %v, want two ping intervals (%v)", got, 2*interval)
				}
				<-c.Done()
			})
		})
	}
}

// quietHandler accepts WebSocket connections and then never answers: it
// reads and drops every frame and ping, or reads nothing at all. Its
// connections end with ctx.
func quietHandler(ctx context.Context, served *sync.WaitGroup, read bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		defer served.Done()
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			OnPingReceived: func(context.Context, []byte) bool { return false },
		})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if read {
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}
		<-ctx.Done()
	})
}
