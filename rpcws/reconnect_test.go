package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// scripted is a WebSocket server that the test drives frame by frame: it
// hands each connection to the test, and refuses upgrades (503) while
// down. Over real sockets (httptest) or, inside a synctest bubble, over
// in-memory ones.
type scripted struct {
	t     *testing.T
	url   string
	httpc *http.Client // for the in-memory listener; nil over sockets
	conns chan *fakeConn
	down  atomic.Bool

	mu       sync.Mutex
	attempts []time.Time // of every upgrade request, refused or not
	closers  []func()
}

func newScripted(t *testing.T, inMemory bool) *scripted {
	s := &scripted{t: t, conns: make(chan *fakeConn, 8)}
	if inMemory {
		ln := testutil.NewListener(64 << 10)
		hs := &http.Server{Handler: s}
		go hs.Serve(ln)
		s.url = "ws://mem/rpc"
		tr := &http.Transport{DialContext: ln.Dial}
		s.httpc = &http.Client{Transport: tr}
		s.closers = append(s.closers, func() { hs.Close(); ln.Close(); tr.CloseIdleConnections() })
	} else {
		hs := httptest.NewServer(s)
		s.url = "ws" + strings.TrimPrefix(hs.URL, "http") + "/rpc"
		s.closers = append(s.closers, hs.Close)
	}
	return s
}

// close drops every connection and stops the server.
func (s *scripted) close() {
	s.mu.Lock()
	closers := s.closers
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.attempts = append(s.attempts, time.Now())
	s.mu.Unlock()
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	fc := &fakeConn{t: s.t, ws: ws}
	s.mu.Lock()
	s.closers = append(s.closers, func() { ws.CloseNow() })
	s.mu.Unlock()
	s.conns <- fc
}

// attemptTimes returns when each upgrade request came.
func (s *scripted) attemptTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

// options returns DialOptions that reach the server, with Reconnect.
func (s *scripted) options(ro *rpcws.ReconnectOptions) *rpcws.DialOptions {
	o := &rpcws.DialOptions{Reconnect: ro}
	if s.httpc != nil {
		o.WebSocket = &websocket.DialOptions{HTTPClient: s.httpc}
	}
	return o
}

// dial connects a client and returns it with the server's end of its
// first connection.
func (s *scripted) dial(o *rpcws.DialOptions) (*rpcws.Client, *fakeConn) {
	s.t.Helper()
	c, err := rpcws.Dial(context.Background(), s.url, o)
	if err != nil {
		s.t.Fatal(err)
	}
	return c, s.accept()
}

// accept returns the server's end of the client's next connection.
func (s *scripted) accept() *fakeConn {
	s.t.Helper()
	select {
	case fc := <-s.conns:
		return fc
	case <-time.After(10 * time.Second):
		s.t.Fatal("no connection came")
		return nil
	}
}

// fakeConn is the server's end of one connection.
type fakeConn struct {
	t  *testing.T
	ws *websocket.Conn
}

// clientFrame is a request as the client wrote it.
type clientFrame struct {
	ID   json.RawMessage `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// read returns the next frame the client wrote.
func (c *fakeConn) read() clientFrame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, p, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("reading the client's frame: %v", err)
	}
	var f clientFrame
	if err := json.Unmarshal(p, &f); err != nil {
		c.t.Fatalf("frame %s: %v", p, err)
	}
	return f
}

// send writes a frame, formatted.
func (c *fakeConn) send(format string, args ...any) {
	c.t.Helper()
	if err := c.ws.Write(context.Background(), websocket.MessageText, fmt.Appendf(nil, format, args...)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// reply answers request f with data.
func (c *fakeConn) reply(f clientFrame, data string) {
	c.t.Helper()
	c.send(`{"id":%s,"type":%q,"data":%s}`, f.ID, f.Type+".response", data)
}

// event writes a topic's event with its position.
func (c *fakeConn) event(topic, epoch string, offset int) {
	c.t.Helper()
	c.send(`{"type":"topic.message","data":{"topic":%q,"n":%d},"topic":%q,"epoch":%q,"offset":%d}`, topic, offset, topic, epoch, offset)
}

// drop cuts the connection, with no closing handshake.
func (c *fakeConn) drop() { c.ws.CloseNow() }

// events records what OnEvent gets, and lets a test wait for it.
type events struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{}
}

func newEvents() *events { return &events{ch: make(chan struct{}, 1)} }

func (e *events) on(typ string, data json.RawMessage) {
	e.mu.Lock()
	e.got = append(e.got, typ+" "+string(data))
	e.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
	default:
	}
}

// wait returns what OnEvent got once it has got n events; it fails t if
// they do not come within 10 s.
func (e *events) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		got := slices.Clone(e.got)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-e.ch:
		case <-deadline:
			t.Fatalf("OnEvent got %d events, want %d: %q", len(got), n, got)
		}
	}
}

// states records what OnState gets.
type states struct {
	mu  sync.Mutex
	got []rpcws.ConnState
	ch  chan rpcws.ConnState
}

func newStates() *states { return &states{ch: make(chan rpcws.ConnState, 16)} }

func (s *states) on(st rpcws.ConnState) {
	s.mu.Lock()
	s.got = append(s.got, st)
	s.mu.Unlock()
	s.ch <- st
}

// next waits for the next state.
func (s *states) next(t *testing.T) rpcws.ConnState {
	t.Helper()
	select {
	case st := <-s.ch:
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("no state change came")
		return 0
	}
}

func (s *states) all() []rpcws.ConnState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// A call pending at the drop fails at once with Disconnected and is never
// sent again; a call made after the drop goes out on the new connection.
func TestReconnectPendingCallFailsAtDrop(t *testing.T) {
	s := newScripted(t, false)
	defer s.close()
	st := newStates()
	c, fc := s.dial(s.options(&rpcws.ReconnectOptions{Delay: time.Millisecond, OnState: st.on}))
	defer c.Close()

	done := make(chan error, 1)
	go func() { done <- c.Call("Demo.Echo", "first", new(string)) }()
	if f := fc.read(); f.Type != "demo.echo" {
		t.Fatalf("request: got %q", f.Type)
	}
	fc.send(`not a frame`)
	fc.drop()
	select {
	case err := <-done:
		if !errors.Is(err, rpcws.ErrDisconnected) || rpcws.ErrorCode(err) != rpcws.CodeDisconnected {
			t.Fatalf("pending call: got %v, want Disconnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pending call did not fail at the drop")
	}
	if got := st.next(t); got != rpcws.StateReconnecting {
		t.Fatalf("state after the drop: %v", got)
	}

	fc2 := s.accept()
	if got := st.next(t); got != rpcws.StateConnected {
		t.Fatalf("state after the redial: %v", got)
	}
	go func() {
		var out string
		err := c.Call("Demo.Echo", "second", &out)
		if err == nil && out != "second" {
			err = fmt.Errorf("reply %q", out)
		}
		done <- err
	}()
	// The first frame of the new connection is the new call: no session was
	// given, so nothing is recovered, and the failed call is not sent again.
	f := fc2.read()
	if f.Type != "demo.echo" || string(f.Data) != `"second"` {
		t.Fatalf("first frame of the new connection: %s %s", f.Type, f.Data)
	}
	fc2.reply(f, `"second"`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fc2.send(`[]`)
	fc2.send(`{"id":"unknown","type":"x.response"}`)
	testutil.WaitFor(t, "the stats of both connections", func() bool {
		return c.Stats() == rpcws.ClientStats{BadFrames: 2, LateReplies: 1}
	})
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := st.all(), []rpcws.ConnState{rpcws.StateReconnecting, rpcws.StateConnected, rpcws.StateClosed}; !slices.Equal(got, want) {
		t.Fatalf("states: got %v, want %v", got, want)
	}
	if got := c.State(); got != rpcws.StateClosed {
		t.Fatalf("State after Close: %v", got)
	}
}

// A call made while the server is down waits for the new connection and
// succeeds within its deadline; one whose deadline passes first fails with
// Timeout, as any call; Call, Go and Notify alike.
func TestReconnectCallDuringOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, true)
		defer s.close()
		c, fc := s.dial(s.options(&rpcws.ReconnectOptions{Delay: 100 * time.Millisecond, MaxDelay: time.Second}))
		defer c.Close()
		s.down.Store(true)
		fc.drop()
		synctest.Wait()
		if got := c.State(); got != rpcws.StateReconnecting {
			t.Fatalf("state: %v", got)
		}

		// Too short a deadline: Timeout, with the lesson's text.
		short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.CallContext(short, "Demo.Echo", "x", new(string))
		if !errors.Is(err, rpcws.ErrTimeout) || err.Error() != "timeout: demo.echo" || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("call past its deadline: %v after %v", err, time.Since(start))
		}

		// A cancelled context: Canceled, at once.
		cctx, cancelNow := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancelNow)
		start = time.Now()
		err = c.CallContext(cctx, "Demo.Echo", "x", nil)
		if !errors.Is(err, context.Canceled) || rpcws.ErrorCode(err) != rpcws.CodeCanceled || time.Since(start) != time.Second {
			t.Fatalf("call cancelled while waiting: %v after %v", err, time.Since(start))
		}

		// A call with a long deadline, one bounded by the client's timeout
		// (10 s) and a notification wait for the server to come back in 3 s.
		long, cancelLong := context.WithTimeout(context.Background(), time.Minute)
		defer cancelLong()
		results := make(chan string, 2)
		go func() {
			var out string
			err := c.CallContext(long, "Demo.Echo", "ctx", &out)
			results <- fmt.Sprint(out, err)
		}()
		call := c.Go("Demo.Echo", "go", new(string), nil)
		go func() { results <- fmt.Sprint(c.Notify(long, "Demo.Note", "n")) }()
		time.Sleep(3 * time.Second)
		s.down.Store(false)
		fc2 := s.accept()
		got := map[string]clientFrame{}
		for range 3 {
			f := fc2.read()
			got[string(f.Data)] = f
		}
		fc2.reply(got[`"ctx"`], `"ctx"`)
		fc2.reply(got[`"go"`], `"go"`)
		if len(got[`"n"`].ID) != 0 {
			t.Fatalf("the notification has an id: %s", got[`"n"`].ID)
		}
		r1, r2 := <-results, <-results
		if !slices.Contains([]string{r1, r2}, "ctx<nil>") || !slices.Contains([]string{r1, r2}, "<nil>") {
			t.Fatalf("results: %q, %q", r1, r2)
		}
		<-call.Done
		if call.Error != nil || *call.Reply.(*string) != "go" {
			t.Fatalf("Go: %v %v", call.Error, *call.Reply.(*string))
		}

		// The client's timeout bounds a call without deadline that waits.
		s.down.Store(true)
		fc2.drop()
		synctest.Wait()
		start = time.Now()
		err = c.Call("Demo.Echo", "y", new(string))
		if !errors.Is(err, rpcws.ErrTimeout) || time.Since(start) != rpcws.DefaultCallTimeout {
			t.Fatalf("call while down: %v after %v, want Timeout after %v", err, time.Since(start), rpcws.DefaultCallTimeout)
		}
	})
}

// Close during the wait between attempts returns at once, fails the calls
// waiting for a connection, and leaves no goroutine behind.
func TestReconnectCloseDuringBackoff(t *testing.T) {
	base := testutil.CountGoroutines()
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, true)
		defer s.close()
		st := newStates()
		c, fc := s.dial(s.options(&rpcws.ReconnectOptions{Delay: time.Hour, MaxDelay: -1, OnState: st.on}))
		s.down.Store(true)
		fc.drop()
		if got := st.next(t); got != rpcws.StateReconnecting {
			t.Fatalf("state: %v", got)
		}
		waiting := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
			defer cancel()
			waiting <- c.CallContext(ctx, "Demo.Echo", "x", nil)
		}()
		synctest.Wait() // the call waits, the client waits for its first attempt
		start := time.Now()
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("Close took %v", d)
		}
		err := <-waiting
		if !errors.Is(err, rpcws.ErrDisconnected) || !errors.Is(err, rpc.ErrShutdown) {
			t.Fatalf("waiting call: %v", err)
		}
		if got := st.next(t); got != rpcws.StateClosed {
			t.Fatalf("state: %v", got)
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done is open after Close")
		}
		if err := c.Call("Demo.Echo", "x", nil); !errors.Is(err, rpc.ErrShutdown) {
			t.Fatalf("call after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if n := len(s.attemptTimes()); n != 1 {
			t.Fatalf("upgrade requests: %d, want the first alone", n)
		}
	})
	testutil.CheckGoroutines(t, base)
}

// The waits between attempts double from Delay up to MaxDelay, each drawn
// between half and all of its bound; after MaxAttempts the client gives
// up: it ends, and its calls fail with Disconnected.
func TestReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, true)
		defer s.close()
		st := newStates()
		const attempts = 9
		c, fc := s.dial(s.options(&rpcws.ReconnectOptions{MaxDelay: 10 * time.Second, MaxAttempts: attempts, OnState: st.on}))
		defer c.Close()
		s.down.Store(true)
		drop := time.Now()
		fc.drop()
		if got := st.next(t); got != rpcws.StateReconnecting {
			t.Fatalf("state: %v", got)
		}
		<-c.Done() // about 42 s of the bubble's time
		if got := st.next(t); got != rpcws.StateClosed {
			t.Fatalf("state after the last attempt: %v", got)
		}
		times := s.attemptTimes()[1:] // the first is Dial's
		if len(times) != attempts {
			t.Fatalf("attempts: %d, want %d", len(times), attempts)
		}
		prev := drop
		bound := rpcws.DefaultReconnectDelay // 200 ms, doubling, up to 10 s
		for i, at := range times {
			if wait := at.Sub(prev); wait < bound/2 || wait > bound {
				t.Errorf("wait before attempt %d: %v, want between %v and %v", i+1, wait, bound/2, bound)
			}
			prev, bound = at, min(2*bound, 10*time.Second)
		}
		err := c.Call("Demo.Echo", "x", nil)
		if !errors.Is(err, rpcws.ErrDisconnected) || !strings.Contains(err.Error(), "gave up after 9 attempts") {
			t.Fatalf("call after giving up: %v", err)
		}
	})
}

// A negative Delay makes the first attempt at once.
func TestReconnectNoDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, true)
		defer s.close()
		c, fc := s.dial(s.options(&rpcws.ReconnectOptions{Delay: -1}))
		defer c.Close()
		drop := time.Now()
		fc.drop()
		s.accept()
		if times := s.attemptTimes(); times[1] != drop {
			t.Fatalf("first attempt %v after the drop, want at once", times[1].Sub(drop))
		}
	})
}
