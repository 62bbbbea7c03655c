package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// heapInUse returns the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Types and ids over their limits get BadRequest, with nothing of them
// echoed or kept: a 1 MB type is answered in a few dozen bytes, a 1 MB id
// by an error that belongs to no request, and thousands of distinct long
// types leave the connection's memory where it was.
func TestNameLimits(t *testing.T) {
	// Not parallel: it measures the heap.
	s := newServer(t, &rpcws.HandlerOptions{ReadLimit: 4 << 20})
	ws := dialRaw(t, s.url, nil)
	ws.SetReadLimit(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func() string {
		t.Helper()
		_, p, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	huge := strings.Repeat("a", 1<<20)

	writeText(t, ws, `{"id":1,"type":"`+huge+`"}`)
	want := fmt.Sprintf(`{"id":1,"type":"error","code":"BadRequest","message":"type is longer than %d bytes"}`, codec.MaxTypeLength)
	if got := read(); got != want {
		t.Fatalf("1 MB type: got %.200s, want %s", got, want)
	}
	writeText(t, ws, `{"id":"`+huge+`","type":"test.multiply"}`)
	want = fmt.Sprintf(`{"type":"error","code":"BadRequest","message":"id is longer than %d bytes"}`, codec.MaxIDLength)
	if got := read(); got != want {
		t.Fatalf("1 MB id: got %.200s, want %s", got, want)
	}
	// At the limits exactly, the request is served as usual.
	id := `"` + strings.Repeat("i", codec.MaxIDLength-2) + `"`
	typ := "test." + strings.Repeat("m", codec.MaxTypeLength-5)
	writeText(t, ws, `{"id":`+id+`,"type":"`+typ+`"}`)
	if got := read(); !strings.HasPrefix(got, `{"id":`+id+`,"type":"error","code":"MethodNotFound"`) {
		t.Fatalf("at the limits: got %.200s, want MethodNotFound", got)
	}

	// Many distinct types of the longest length: the connection keeps
	// nothing of them.
	before := heapInUse()
	const n = 5000
	for i := range n {
		typ := fmt.Sprintf("t%0*d", codec.MaxTypeLength-1, i)
		writeText(t, ws, `{"id":`+fmt.Sprint(i)+`,"type":"`+typ+`"}`)
		read()
	}
	after := heapInUse()
	grown := int64(after) - int64(before)
	t.Logf("heap after %d distinct %d-byte types: %+d bytes", n, codec.MaxTypeLength, grown)
	if grown > 1<<20 {
		t.Fatalf("heap grew by %d bytes after %d distinct types, want them forgotten", grown, n)
	}
}

// A text frame that is not valid UTF-8 gets ParseError, and none of its
// bytes are echoed: not even its id.
func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	ws := dialRaw(t, s.url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, frame := range []string{
		"{\"id\":\"\xff\xfe\",\"type\":\"test.multiply\"}",
		"{\"id\":1,\"type\":\"test.multiply\",\"data\":{\"A\":\"\xc3\"}}",
		"{\"id\":1,\"type\":\"test.\xed\xa0\x80\"}", // a surrogate, encoded
	} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_, p, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"type":"error","code":"ParseError","message":"frame is not valid UTF-8"}`; string(p) != want {
			t.Fatalf("%q: got %s, want %s", frame, p, want)
		}
	}
	writeText(t, ws, `{"id":2,"type":"test.multiply","data":{"A":6,"B":7}}`)
	if got := readReply(t, ws, "2"); got["data"] != 42.0 {
		t.Fatalf("after the bad frames: got %v", got)
	}
}

// A reply that would exceed the frame limit becomes a TooLarge error reply,
// and the connection goes on; a Go client with default options reads every
// frame that a server with default options writes.
func TestReplyTooLarge(t *testing.T) {
	t.Parallel()
	flow := &Flow{pushed: make(chan error, 1)}
	s, _ := newServerWith(t, nil, flow)
	c := s.dial(t, nil)
	// A reply of exactly the limit goes out; one byte more does not.
	const overhead = len(`{"id":"00000000-0000-0000-0000-000000000000","type":"flow.reply.response","data":""}`)
	var got string
	if err := c.Call("Flow.Reply", &FlowArgs{Size: rpcws.DefaultMaxFrameSize - overhead}, &got); err != nil {
		t.Fatalf("a reply of the limit: %v", err)
	}
	err := c.CallContext(context.Background(), "Flow.Reply", &FlowArgs{Size: rpcws.DefaultMaxFrameSize - overhead + 1}, &got)
	var e *codec.Error
	if !errors.As(err, &e) || e.Code != codec.CodeTooLarge {
		t.Fatalf("a reply over the limit: got %v, want TooLarge", err)
	}
	t.Logf("error: %v", err)
	var n int
	if err := c.Call("Test.Multiply", &Args{6, 7}, &n); err != nil || n != 42 {
		t.Fatalf("afterwards: got %d, %v", n, err)
	}
}

// Peak is a service whose AfterReply work blocks until released, and which
// counts how much of it runs at once.
type Peak struct {
	running, peak atomic.Int64
	started       atomic.Int64
	release       chan struct{}
}

// Start replies at once and leaves work behind that runs until release.
func (p *Peak) Start(args *HoldArgs, reply *int) error {
	args.AfterReply(func() {
		n := p.running.Add(1)
		p.started.Add(1)
		defer p.running.Add(-1)
		for {
			old := p.peak.Load()
			if n <= old || p.peak.CompareAndSwap(old, n) {
				break
			}
		}
		<-p.release
	})
	return nil
}

// Work left behind by replies counts against the in-flight cap: 20,000
// notifications that each leave blocking work behind run MaxInFlight of it
// at once, the server's goroutines stay flat, and another client is served.
func TestAfterReplyIsBounded(t *testing.T) {
	// Not parallel: it counts goroutines.
	const maxInFlight = 8
	peak := &Peak{release: make(chan struct{})}
	s, _ := newServerWith(t, &rpcws.HandlerOptions{MaxInFlight: maxInFlight}, peak)
	other := s.dial(t, nil)
	base := runtime.NumGoroutine()
	ws := dialRaw(t, s.url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Written from a goroutine of its own: the server stops reading, and
	// the writes then block.
	writeErr := make(chan error, 1)
	go func() {
		for range 20000 {
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"peak.start"}`)); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	testutil.WaitFor(t, "the cap to be reached", func() bool { return peak.running.Load() == maxInFlight })
	var n int
	if err := other.Call("Test.Multiply", &Args{2, 21}, &n); err != nil || n != 42 {
		t.Fatalf("the other client: got %d, %v", n, err)
	}
	goroutines := runtime.NumGoroutine() - base
	t.Logf("work running: %d, peak %d; goroutines beyond the baseline: %d", peak.running.Load(), peak.peak.Load(), goroutines)
	if p := peak.peak.Load(); p > maxInFlight {
		t.Fatalf("peak of work after the reply: %d, want at most %d", p, maxInFlight)
	}
	if goroutines > 100 {
		t.Fatalf("%d goroutines beyond the baseline, want a few dozen at most", goroutines)
	}
	ws.CloseNow()
	close(peak.release)
	select {
	case <-writeErr: // its writes are bounded by their context
	case <-time.After(15 * time.Second):
		t.Fatal("the flood's writer did not end")
	}
}

// The byte budgets hold a connection back as the in-flight cap does: a
// client whose requests in flight hold more than MaxConnBytes is not read
// further until they finish, and one over the handler's MaxBytes holds back
// every connection but not forever.
func TestByteBudgets(t *testing.T) {
	t.Parallel()
	hold := newHold(1)
	s, _ := newServerWith(t, &rpcws.HandlerOptions{MaxConnBytes: 256 << 10, MaxBytes: 512 << 10, MaxInFlight: 1000}, hold)
	ws := dialRaw(t, s.url, nil)
	pad := strings.Repeat("x", 60<<10)
	// 20 requests of 60 KiB: about four fit in 256 KiB.
	for i := range 20 {
		writeText(t, ws, fmt.Sprintf(`{"id":%d,"type":"hold.wait","data":{"N":%d,"Pad":%q}}`, i, i, pad))
	}
	testutil.WaitFor(t, "the budget to be spent", func() bool { return hold.running.Load() >= 3 })
	// Give the reader every chance to go past the budget: another client's
	// calls round-trip meanwhile.
	other := s.dial(t, nil)
	for range 10 {
		var n int
		if err := other.Call("Test.Multiply", &Args{1, 1}, &n); err != nil {
			t.Fatal(err)
		}
	}
	running := hold.running.Load()
	t.Logf("requests of 60 KiB in flight under a 256 KiB budget: %d", running)
	if running > 5 {
		t.Fatalf("%d requests of 60 KiB in flight, want at most 5 under 256 KiB", running)
	}
	close(hold.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 20 { // in any order
		var reply struct{ ID, Data int }
		_, p, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(p, &reply); err != nil || reply.ID != reply.Data {
			t.Fatalf("reply %s: %v", p, err)
		}
	}
}

// A server connection whose reader waits at the in-flight cap still notices
// that its client has gone: the slot-holding call sees its context end, and
// the connection leaves the handler.
func TestParkedReaderNoticesClose(t *testing.T) {
	t.Parallel()
	hold := newHold(1)
	s, _ := newServerWith(t, &rpcws.HandlerOptions{MaxInFlight: 1, PingInterval: 100 * time.Millisecond}, hold)
	ws, tcp := dialTCP(t, s.url)
	writeText(t, ws, `{"id":1,"type":"hold.wait","data":{"N":1}}`)
	hold.waitReached(t)
	writeText(t, ws, `{"id":2,"type":"hold.wait","data":{"N":2}}`)
	testutil.WaitFor(t, "the reader to wait at the cap", func() bool { return s.h.InFlight() == 1 })
	tcp.SetLinger(0)
	tcp.Close() // an RST: the server's next write fails
	testutil.WaitFor(t, "the connection to leave", func() bool { return s.h.NumConns() == 0 })
}

// Pings flow both ways while a server stops reading at its cap: a Go client
// and a server that ping on the same short interval keep a connection whose
// calls outlast many intervals. In the bubble's time, over connections that
// buffer as sockets do: ten intervals pass in no time, exactly.
func TestKeepaliveAtTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 200 * time.Millisecond
		hold := newHold(2)
		srv := rpc.NewServer()
		srv.Register(hold)
		h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{MaxInFlight: 2, PingInterval: interval})
		ln := testutil.NewListener(64 << 10)
		hs := &http.Server{Handler: h}
		go hs.Serve(ln)
		c, err := rpcws.Dial(context.Background(), "ws://mem/rpc", &rpcws.DialOptions{
			WebSocket:    &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.Dial}}},
			PingInterval: interval,
			Timeout:      -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		calls := make([]chan error, 5)
		for i := range calls {
			calls[i] = make(chan error, 1)
			go func() {
				var n int
				calls[i] <- c.CallContext(context.Background(), "Hold.Wait", &HoldArgs{N: i}, &n)
			}()
		}
		<-hold.reached
		// Ten intervals at the cap, with nothing read by the server.
		time.Sleep(10 * interval)
		select {
		case <-c.Done():
			t.Fatal("the connection closed at the cap")
		default:
		}
		close(hold.release)
		for i, call := range calls {
			if err := <-call; err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		c.Close()
		h.Shutdown(context.Background())
		hs.Close()
	})
}

// Sleeper is a method that returns as a well-behaved method should when its
// connection goes away: with an error.
type Sleeper struct{ started chan struct{} }

// Sleep waits for its connection to end, and fails then.
func (s *Sleeper) Sleep(args *HoldArgs, reply *int) error {
	s.started <- struct{}{}
	<-args.Peer().Context().Done()
	*reply = 1
	return nil // as if it had finished: must not be answered either
}

// When Shutdown gives up on a call, the call gets no success reply: a method
// that returns because its connection's context ended, even with a nil
// error, has nothing written; its client sees Disconnected.
func TestShutdownCutsWithoutReply(t *testing.T) {
	t.Parallel()
	for i := range 20 {
		sl := &Sleeper{started: make(chan struct{}, 1)}
		s, _ := newServerWith(t, nil, sl)
		c := s.dial(t, nil)
		call := c.Go("Sleeper.Sleep", &HoldArgs{}, new(int), nil)
		select {
		case <-sl.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the call never reached its method")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // give up at once
		if err := s.h.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown: got %v, want context.Canceled", err)
		}
		err := waitCall(t, call)
		if !errors.Is(err, rpcws.ErrDisconnected) && codec.ErrorCode(err) != codec.CodeDisconnected {
			t.Fatalf("try %d: the call cut short: got %v, want Disconnected", i, err)
		}
	}
}

// The handler-wide budget holds memory down however many clients send large
// frames at once: 64 clients each send a 512 KiB request that blocks, under
// a MaxBytes of 4 MiB. The ones the budget has room for are read and held;
// a large frame that arrives while it is spent closes its connection with
// 1013 rather than be read; connections whose frames have not begun are not
// read until there is room. The heap stays near the budget, not near the
// 32 MiB sent, and once the held requests end every client left is served.
func TestServerBudgetHoldsMemory(t *testing.T) {
	// Not parallel: it measures the heap.
	const clients, size, budget = 64, 512 << 10, 4 << 20
	hold := newHold(1)
	s, _ := newServerWith(t, &rpcws.HandlerOptions{MaxBytes: budget, MaxConnsPerClient: -1}, hold)
	frame := fmt.Sprintf(`{"id":1,"type":"hold.wait","data":{"N":1,"Pad":%q}}`, strings.Repeat("x", size))
	before := heapInUse()
	ends := make(chan error, clients)
	for range clients {
		ws := dialRaw(t, s.url, nil)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
				ends <- err
				return
			}
			_, _, err := ws.Read(ctx)
			ends <- err
		}()
	}
	var refused, replied int
	end := func(err error) {
		switch {
		case err == nil:
			replied++
		case websocket.CloseStatus(err) == websocket.StatusTryAgainLater:
			refused++
		default:
			t.Fatalf("a client: got %v, want a reply or a close with 1013", err)
		}
	}
	// Every client is held (its request running), refused, or not read.
	testutil.WaitFor(t, "every client to be held, refused or held back", func() bool {
		for {
			select {
			case err := <-ends:
				end(err)
				continue
			default:
			}
			return int(hold.running.Load())+refused+s.h.PausedReaders() >= clients
		}
	})
	grown := int64(heapInUse()) - int64(before)
	held := hold.running.Load()
	t.Logf("held %d, refused %d, held back %d; heap grew by %d KiB for %d KiB sent", held, refused, s.h.PausedReaders(), grown>>10, clients*size>>10)
	if held >= clients {
		t.Fatal("every request was read: the budget did not hold")
	}
	if grown > 3*budget {
		t.Fatalf("heap grew by %d bytes under a budget of %d", grown, budget)
	}
	close(hold.release)
	for refused+replied < clients {
		select {
		case err := <-ends:
			end(err)
		case <-time.After(30 * time.Second):
			t.Fatalf("%d clients replied and %d refused of %d", replied, refused, clients)
		}
	}
	t.Logf("in the end: %d replied, %d refused", replied, refused)
}
