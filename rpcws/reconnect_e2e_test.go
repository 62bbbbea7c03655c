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

// Against the real Handler with history: a call pending at a drop fails at
// once with Disconnected, a call made during the outage succeeds after it,
// and a client that drops three times (its connection cut twice, its
// replica restarted once) while 300 events are published gets every one
// through OnEvent, in order, once, with no code of its own and no resync.
func TestReconnectEndToEnd(t *testing.T) {
	r := newReplicas(t)
	defer r.close()
	const events = 300
	var (
		mu      sync.Mutex
		got     []int
		resyncs []string
	)
	all := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := rpcws.Dial(ctx, r.url, &rpcws.DialOptions{
		OnEvent: func(typ string, data json.RawMessage) {
			mu.Lock()
			defer mu.Unlock()
			if typ != "feed.item" {
				resyncs = append(resyncs, typ+" "+string(data))
				return
			}
			n, _ := strconv.Atoi(string(data))
			if got = append(got, n); len(got) == events {
				close(all)
			}
		},
		Reconnect: &rpcws.ReconnectOptions{Delay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var ok bool
	if err := client.CallContext(ctx, "Feed.Join", &FeedArgs{Topic: "news"}, &ok); err != nil {
		t.Fatal(err)
	}

	// A call pending at the first drop.
	held := make(chan error, 1)
	go func() { held <- client.CallContext(ctx, "Feed.Hold", &FeedArgs{}, &ok) }()
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
			r.restart()
		case 240:
			r.ln.kill()
		}
	}
	select {
	case <-all:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("OnEvent got %d events of %d", len(got), events)
	}
	mu.Lock()
	defer mu.Unlock()
	want := make([]int, events)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(got, want) {
		t.Fatalf("OnEvent got %v", got)
	}
	if len(resyncs) > 0 {
		t.Fatalf("other events: %q", resyncs)
	}
	// The replayed events may all have come before the recovery's reply:
	// a call waits for it.
	var out string
	if err := client.CallContext(ctx, "Feed.Echo", "after", &out); err != nil {
		t.Fatal(err)
	}
	if s := client.State(); s != rpcws.StateConnected {
		t.Fatalf("state: %v", s)
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
