package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// Feed is the service of the end-to-end tests of reconnection.
type Feed struct {
	held chan struct{} // Hold says it has started
}

type FeedArgs struct {
	Topic string `json:"topic"`
	rpcws.Caller
}

func (f *Feed) Join(args *FeedArgs, ok *bool) error {
	*ok = true
	p := args.Peer()
	return p.Join(p.Context(), args.Topic)
}

// Hold answers only when its connection ends: it never does.
func (f *Feed) Hold(args *FeedArgs, ok *bool) error {
	f.held <- struct{}{}
	<-args.Peer().Context().Done()
	return nil
}

func (f *Feed) Echo(args *string, reply *string) error {
	*reply = *args
	return nil
}

// killable is a listener that can cut every connection it accepted, as a
// network failure or a killed process does: no closing handshake.
type killable struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (k *killable) Accept() (net.Conn, error) {
	c, err := k.Listener.Accept()
	if err == nil {
		k.mu.Lock()
		k.conns = append(k.conns, c)
		k.mu.Unlock()
	}
	return c, err
}

func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		c.Close()
	}
	k.conns = nil
}

// replicas serves, at one URL, the current one of a succession of
// handlers with history on one bus: a replica that restarts behind a load
// balancer.
type replicas struct {
	t       *testing.T
	bus     rpcws.MemoryBus
	feed    *Feed
	cur     atomic.Pointer[rpcws.Handler]
	ln      *killable
	hs      *httptest.Server
	url     string
	all     []*rpcws.Handler
	down    atomic.Bool  // refuse upgrades (503)
	refused atomic.Int32 // upgrades refused so far
}

func newReplicas(t *testing.T) *replicas {
	r := &replicas{t: t, feed: &Feed{held: make(chan struct{}, 1)}}
	r.cur.Store(r.handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.ln = &killable{Listener: ln}
	r.hs = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			r.refused.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		r.cur.Load().ServeHTTP(w, req)
	}))
	r.hs.Listener = r.ln
	r.hs.Start()
	r.url = "ws" + strings.TrimPrefix(r.hs.URL, "http") + "/rpc"
	return r
}

// handler returns a new replica on the bus.
func (r *replicas) handler(opts ...func(*rpcws.HandlerOptions)) *rpcws.Handler {
	srv := rpc.NewServer()
	if err := srv.Register(r.feed); err != nil {
		r.t.Fatal(err)
	}
	ho := &rpcws.HandlerOptions{
		Broker:  r.bus.NewBroker(),
		History: &rpcws.HistoryOptions{Size: 1000},
	}
	for _, o := range opts {
		o(ho)
	}
	h := rpcws.NewHandler(srv, ho)
	r.all = append(r.all, h)
	return h
}

// restart replaces the current replica by a new one, and kills the old
// one's connections.
func (r *replicas) restart() {
	old := r.cur.Swap(r.handler())
	r.ln.kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	old.Shutdown(ctx)
}

func (r *replicas) close() {
	r.hs.Close()
	for _, h := range r.all {
		h.Shutdown(context.Background())
	}
}

// follower is a client that records the feed's events.
type follower struct {
	c       *rpcws.Client
	mu      sync.Mutex
	got     []int
	others  []string // any other event: a resync
	all     chan struct{}
	pending int // events until all closes
}

func newFollower(t *testing.T, ctx context.Context, url string, events int) *follower {
	f := &follower{all: make(chan struct{}), pending: events}
	c, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{
		OnEvent:   f.onEvent,
		Reconnect: &rpcws.ReconnectOptions{Delay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	var ok bool
	if err := c.CallContext(ctx, "Feed.Join", &FeedArgs{Topic: "news"}, &ok); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *follower) onEvent(typ string, data json.RawMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if typ != "feed.item" {
		f.others = append(f.others, typ+" "+string(data))
		return
	}
	n, _ := strconv.Atoi(string(data))
	f.got = append(f.got, n)
	if f.pending--; f.pending == 0 {
		close(f.all)
	}
}

// check waits for every event and fails t unless they came in order, once
// each, with nothing else; then it checks that the client is connected
// (a call waits for the recovery's reply, which may come after the
// replayed events).
func (f *follower) check(t *testing.T, ctx context.Context, i, events int) {
	t.Helper()
	select {
	case <-f.all:
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		t.Fatalf("client %d: OnEvent got %d events of %d, others %q, state %v", i, len(f.got), events, f.others, f.c.State())
	}
	f.mu.Lock()
	got, others := f.got, f.others
	f.mu.Unlock()
	for k, n := range got {
		if n != k+1 {
			t.Fatalf("client %d: event %d is %d: %v", i, k+1, n, got)
		}
	}
	if len(others) > 0 {
		t.Fatalf("client %d: other events %q", i, others)
	}
	var out string
	if err := f.c.CallContext(ctx, "Feed.Echo", "after", &out); err != nil {
		t.Fatal(err)
	}
	if s := f.c.State(); s != rpcws.StateConnected {
		t.Fatalf("client %d: state %v", i, s)
	}
}

// connected waits until every client is connected, its recovery done.
func connected(t *testing.T, fs []*follower) {
	t.Helper()
	testutil.WaitFor(t, "the clients to reconnect", func() bool {
		for _, f := range fs {
			if f.c.State() != rpcws.StateConnected {
				return false
			}
		}
		return true
	})
}

// Against the real Handler with history: a call pending at a drop fails at
// once with Disconnected, a call made during the outage succeeds after it,
// and ten clients that drop three times (their connections cut twice,
// their replica restarted once) while 300 events are published get every
// one through OnEvent, in order, once, with no code of their own and no
// resync.
func TestReconnectEndToEnd(t *testing.T) {
	r := newReplicas(t)
	defer r.close()
	const clients, events = 10, 300
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var fs []*follower
	for range clients {
		f := newFollower(t, ctx, r.url, events)
		defer f.c.Close()
		fs = append(fs, f)
	}
	client := fs[0].c

	// A call pending at the first drop.
	held := make(chan error, 1)
	go func() { held <- client.CallContext(ctx, "Feed.Hold", &FeedArgs{}, new(bool)) }()
	<-r.feed.held

	pub := r.handler() // a replica of the publisher's, never restarted
	for i := 1; i <= events; i++ {
		if err := pub.Publish(ctx, rpcws.Topic("news"), "feed.item", i); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		switch i {
		case 60:
			r.down.Store(true)
			r.ln.kill()
			if err := <-held; !errors.Is(err, rpcws.ErrDisconnected) {
				t.Fatalf("call pending at the drop: %v", err)
			}
			// A call made during the outage: it succeeds once the server
			// is back, after an attempt or more that it refused.
			during := make(chan error, 1)
			go func() {
				var out string
				err := client.CallContext(ctx, "Feed.Echo", "during", &out)
				if err == nil && out != "during" {
					err = errors.New("reply " + out)
				}
				during <- err
			}()
			testutil.WaitFor(t, "an attempt to reconnect", func() bool { return r.refused.Load() > 0 })
			r.down.Store(false)
			if err := <-during; err != nil {
				t.Fatalf("call during the outage: %v", err)
			}
		case 150:
			connected(t, fs) // a drop during a recovery may end in a resync
			r.restart()
		case 240:
			connected(t, fs)
			r.ln.kill()
		}
	}
	for i, f := range fs {
		f.check(t, ctx, i, events)
	}
}

// Away past the history size, the client gets its topic back but not the
// events: the server's rpcws.resync names the topic, once, and the live
// events follow. Close while the server is down returns at once.
func TestReconnectPastHistoryEndToEnd(t *testing.T) {
	r := newReplicas(t)
	defer r.close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, st := newEvents(), newStates()
	client, err := rpcws.Dial(ctx, r.url, &rpcws.DialOptions{
		OnEvent:   ev.on,
		Reconnect: &rpcws.ReconnectOptions{Delay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond, OnState: st.on},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var ok bool
	if err := client.CallContext(ctx, "Feed.Join", &FeedArgs{Topic: "news"}, &ok); err != nil {
		t.Fatal(err)
	}
	pub := r.handler(func(o *rpcws.HandlerOptions) { o.History.Size = 5 })
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			if err := pub.Publish(ctx, rpcws.Topic("news"), "feed.item", i); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	publish(1, 3)
	ev.wait(t, 3)
	r.down.Store(true)
	r.ln.kill()
	if s := st.next(t); s != rpcws.StateReconnecting {
		t.Fatalf("state: %v", s)
	}
	publish(4, 30) // more than the history keeps
	r.down.Store(false)
	if s := st.next(t); s != rpcws.StateConnected {
		t.Fatalf("state: %v", s)
	}
	publish(31, 31)
	want := []string{"feed.item 1", "feed.item 2", "feed.item 3", `rpcws.resync {"topics":["news"]}`, "feed.item 31"}
	if got := ev.wait(t, len(want)); !slices.Equal(got, want) {
		t.Fatalf("OnEvent got %q, want %q", got, want)
	}

	r.down.Store(true)
	r.ln.kill()
	if s := st.next(t); s != rpcws.StateReconnecting {
		t.Fatalf("state: %v", s)
	}
	start := time.Now()
	if err := client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close while reconnecting took %v", d)
	}
}

// Drops that fall during recoveries too: each client gets the events in
// order and none twice; a gap, if any, is told by a resync. After the last
// drop, once every client is connected, a last event reaches every client
// still in the topic, and the others were told.
func TestReconnectDropsDuringRecovery(t *testing.T) {
	r := newReplicas(t)
	defer r.close()
	const clients, events = 10, 300
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var fs []*follower
	for range clients {
		f := newFollower(t, ctx, r.url, events+1)
		defer f.c.Close()
		fs = append(fs, f)
	}
	pub := r.handler()
	for i := 1; i <= events; i++ {
		if err := pub.Publish(ctx, rpcws.Topic("news"), "feed.item", i); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i%25 == 0 {
			if i%100 == 0 {
				r.restart()
			} else {
				r.ln.kill()
			}
		}
	}
	connected(t, fs)
	if err := pub.Publish(ctx, rpcws.Topic("news"), "feed.item", events+1); err != nil {
		t.Fatal(err)
	}
	told := 0
	for i, f := range fs {
		testutil.WaitFor(t, "the last event or a resync", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return len(f.got) > 0 && f.got[len(f.got)-1] == events+1 || len(f.others) > 0
		})
		f.mu.Lock()
		got, others := slices.Clone(f.got), slices.Clone(f.others)
		f.mu.Unlock()
		for k := 1; k < len(got); k++ {
			if got[k] <= got[k-1] {
				t.Fatalf("client %d: %d after %d", i, got[k], got[k-1])
			}
		}
		if gap := len(got) == 0 || got[0] != 1 || got[len(got)-1]-got[0] != len(got)-1 || len(got) < events+1; gap && len(others) == 0 {
			t.Fatalf("client %d: a gap with no resync: %v", i, got)
		}
		if len(others) > 0 {
			told++
		}
	}
	t.Logf("%d of %d clients were told of a gap", told, clients)
}
