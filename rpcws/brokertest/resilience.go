package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// Joins beyond a topic limit fail with code TooManyTopics, which reaches
// the client; leaving makes room again.
func testLimits(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodesWith(t, newBroker, 1, func(o *rpcws.HandlerOptions) {
		o.MaxTopicsPerConn, o.MaxTopics = 3, 4
	})
	a, b := nodes[0].dial(t, ""), nodes[0].dial(t, "")
	tooMany := func(c *client, topic, why string) {
		t.Helper()
		err := c.try("Room.Join", &TopicArgs{Topic: topic})
		if got := codec.ErrorCode(err); got != rpcws.CodeTooManyTopics {
			t.Errorf("join %q %s: got %v (code %q), want code %s", topic, why, err, got, rpcws.CodeTooManyTopics)
		}
	}
	for _, topic := range []string{"t1", "t2", "t3"} {
		a.join(t, topic)
	}
	tooMany(a, "t4", "over MaxTopicsPerConn")
	a.join(t, "t1") // already in: no new membership
	b.join(t, "t1")
	b.join(t, "t4") // the replica's fourth topic
	tooMany(b, "t5", "over MaxTopics")
	a.leave(t, "t2") // the replica is down to three topics, a to two
	b.join(t, "t5")
	tooMany(b, "t6", "over MaxTopics after a leave")
	a.join(t, "t4") // an existing topic: within MaxTopics, a's third
	tooMany(a, "t5", "over MaxTopicsPerConn after leaving")
	b.publish(t, "topic", "t4", false, "to t4")
	a.waitEvent(t, "m", `"to t4"`)
}

// Messages forged on the broker's subjects, straight into the engine, are
// dropped and counted: only events of a string type and JSON data, in valid
// UTF-8 and within the frame limit, reach a client, as frames the handler
// builds itself; never an "rpcws." type.
func testForged(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodesWith(t, newBroker, 1, func(o *rpcws.HandlerOptions) { o.ReadLimit = 4096 })
	a := nodes[0].dial(t, "")
	a.join(t, "forge")
	raw := newBroker(t)
	if err := raw.Start(nopReceiver{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	env := func(frame string) []byte { return append([]byte{1, 0, 0}, frame...) }
	bad := [][]byte{
		[]byte("not an envelope"),
		env(`not json`),
		env(`[1,2]`),
		env(`{"type":1,"data":2}`),
		env(`{"type":"rpcws.resync","data":{"topics":[]}}`),
		env("{\"type\":\"m\",\"data\":\"\xff\xfe\"}"),
		env(`{"type":"m","data":"` + strings.Repeat("x", 8000) + `"}`),
	}
	good := env(`{"id":"1","type":"m","data":{"forged": true},"topic":"x"}`)
	end := env(`{"type":"m","data":"end"}`)
	before := nodes[0].h.BrokerStats().Malformed
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	for i, msg := range append(append(bad, good), end) {
		subject := []string{"rpcws.t.forge", "rpcws.all"}[i%2]
		if err := raw.Publish(ctx, subject, msg); err != nil {
			t.Fatal(err)
		}
	}
	a.waitEvent(t, "m", `"end"`)
	if got := nodes[0].h.BrokerStats().Malformed - before; got != uint64(len(bad)) {
		t.Errorf("malformed count %d, want %d", got, len(bad))
	}
	a.mu.Lock()
	got := strings.Join(a.events, "\n")
	a.mu.Unlock()
	if want := "m {\"forged\":true}\nm \"end\""; got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
	if a.closed() {
		t.Errorf("the connection closed")
	}
}

// A broker that is slow to subscribe holds up neither the join that waits
// for it (past the join timeout it succeeds, and the member gets a resync
// naming the topic once the subscription is in effect), nor joins of other
// topics, nor connections with a user.
func testSlowSubscribe(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	gate := make(chan struct{})
	nodes := newNodesWith(t, func(t *testing.T) rpcws.Broker {
		return &gated{Broker: newBroker(t), gate: gate, match: "slow"}
	}, 1, func(o *rpcws.HandlerOptions) { o.JoinTimeout = 200 * time.Millisecond })
	a := nodes[0].dial(t, "")
	start := time.Now()
	a.join(t, "slow 1") // returns at the join timeout, the subscription still held
	t.Logf("join while the subscription is held: %v", time.Since(start).Round(time.Millisecond))
	b := nodes[0].dial(t, "ada") // its user address is in effect: dial waits for it
	b.join(t, "fast")
	a.publish(t, "topic", "fast", false, "fast")
	b.waitEvent(t, "m", `"fast"`)
	if n := len(a.ofType(rpcws.ResyncEvent)); n != 0 {
		t.Fatalf("%d resync events before the subscription took effect", n)
	}
	close(gate)
	if got := a.waitType(t, rpcws.ResyncEvent, 1)[0]; got != `{"topics":["slow 1"]}` {
		t.Errorf("resync data %s, want {\"topics\":[\"slow 1\"]}", got)
	}
	b.publish(t, "topic", "slow 1", false, "slow")
	a.waitEvent(t, "m", `"slow"`)
}

// Unsubscribing a closed connection's topics holds up neither joins nor
// new connections, however slow the broker is to unsubscribe.
func testSlowUnsubscribe(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	gate := make(chan struct{})
	defer close(gate)
	var held, gaveUp atomic.Int32
	nodes := newNodesWith(t, func(t *testing.T) rpcws.Broker {
		return &gated{Broker: newBroker(t), gate: gate, match: "gone", unsubscribe: true, held: &held, gaveUp: &gaveUp}
	}, 1, func(o *rpcws.HandlerOptions) { o.JoinTimeout = 3 * Wait }) // a join held up fails the call
	a := nodes[0].dial(t, "")
	for i := range 20 {
		a.join(t, fmt.Sprintf("gone %d", i))
	}
	a.close()
	// The handler unsubscribes on at most 4 workers at once (half of them).
	waitFor(t, "the unsubscribes to be held", func() bool { return held.Load() >= 4 })
	b := nodes[0].dial(t, "ada")
	b.join(t, "new")
	b.publish(t, "topic", "new", false, "new")
	b.waitEvent(t, "m", `"new"`)
	if n := gaveUp.Load(); n != 0 {
		t.Errorf("the join waited for %d held unsubscribes to give up", n)
	}
}

// gated holds up Subscribe (or Unsubscribe) for subjects containing match
// until gate closes, counting the calls held.
type gated struct {
	rpcws.Broker
	gate        chan struct{}
	match       string
	unsubscribe bool
	held        *atomic.Int32 // calls held
	gaveUp      *atomic.Int32 // held calls whose context ended first
}

func (g *gated) Unsubscribe(ctx context.Context, subject string) error {
	if g.unsubscribe && strings.Contains(subject, g.match) {
		g.held.Add(1)
		select {
		case <-g.gate:
		case <-ctx.Done():
			g.gaveUp.Add(1)
			return ctx.Err()
		}
	}
	return g.Broker.Unsubscribe(ctx, subject)
}

func (g *gated) Subscribe(ctx context.Context, subject string) error {
	if !g.unsubscribe && strings.Contains(subject, g.match) {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Broker.Subscribe(ctx, subject)
}

// Stall checks a replica whose engine stops answering without closing its
// connections: pause stops the engine (SIGSTOP, say) and resume lets it go
// on; the caller must resume it at cleanup too. While it is stopped, a join
// of a new topic returns within the join timeout, and new connections,
// with a user or without, are served; once it goes on, the member gets a
// resync naming the topic, and events flow.
func Stall(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, pause, resume func()) {
	const joinTimeout = 500 * time.Millisecond
	nodes := newNodesWith(t, newBroker, 1, func(o *rpcws.HandlerOptions) { o.JoinTimeout = joinTimeout })
	a := nodes[0].dial(t, "")
	a.join(t, "before")
	pause()
	start := time.Now()
	a.join(t, "during")
	t.Logf("join with the engine stopped: %v (join timeout %v)", time.Since(start).Round(time.Millisecond), joinTimeout)
	for _, user := range []string{"ada", ""} {
		start := time.Now()
		c := nodes[0].dialQuiet(t, user)
		t.Logf("new connection (user %q) served with the engine stopped: %v", user, time.Since(start).Round(time.Millisecond))
		c.close()
	}
	resume()
	a.await(t, `a resync naming "during"`, func() bool {
		for _, d := range a.ofType(rpcws.ResyncEvent) {
			if strings.Contains(d, `"during"`) {
				return true
			}
		}
		return false
	})
	a.publish(t, "topic", "during", false, "after")
	a.waitEvent(t, "m", `"after"`)
}

// Resubscribe checks a broker's resubscription at scale: it subscribes one
// broker to n subjects made of 128-character names (half of them non-ASCII,
// as topics' subjects carry them), has cut end its connection to the engine
// (CLIENT KILL, or a restart), and waits for the broker to report the gap,
// then for messages on the first, middle and last subjects. It returns how
// long the broker took from the cut to the gap's report.
func Resubscribe(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, n int, cut func(t *testing.T)) time.Duration {
	r := &recorder{lost: make(chan struct{}, 16), got: make(chan string, 1024)}
	b := newBroker(t)
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	subjects := make([]string, n)
	tail := escape(strings.Repeat("a", 58) + strings.Repeat("é", 64))
	for i := range subjects {
		subjects[i] = "rpcws.t." + fmt.Sprintf("%06d", i) + tail // a name of 128 characters
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*Wait)
	defer cancel()
	start := time.Now()
	parallel(64, n, func(i int) {
		if err := b.Subscribe(ctx, subjects[i]); err != nil {
			t.Errorf("subscribe %d: %v", i, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("subscribed %d subjects of %d bytes in %v", n, len(subjects[0]), time.Since(start).Round(time.Millisecond))
	pub := newBroker(t)
	if err := pub.Start(nopReceiver{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	start = time.Now()
	cut(t)
	select {
	case <-r.lost:
	case <-ctx.Done():
		t.Fatalf("no gap reported within %v of the cut", 5*Wait)
	}
	took := time.Since(start)
	t.Logf("resubscribed %d subjects and reported the gap %v after the cut", n, took.Round(time.Millisecond))
	for _, i := range []int{0, n / 2, n - 1} {
		msg := fmt.Sprint(i)
		if err := pub.Publish(ctx, subjects[i], []byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-r.got:
			if got != subjects[i]+" "+msg {
				t.Errorf("got %q, want a message on subject %d", got, i)
			}
		case <-ctx.Done():
			t.Fatalf("no message on subject %d after the resubscription", i)
		}
	}
	return took
}

// escape is the handler's escaping of a name into a subject token.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	return b.String()
}

// parallel runs f(0) to f(n-1) on k goroutines.
func parallel(k, n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// recorder is a BrokerReceiver that records gaps and messages.
type recorder struct {
	lost chan struct{}
	got  chan string
}

func (r *recorder) Receive(subject string, msg []byte) {
	select {
	case r.got <- subject + " " + string(msg):
	default:
	}
}

func (r *recorder) Lost([]string) {
	select {
	case r.lost <- struct{}{}:
	default:
	}
}

func (r *recorder) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// nopReceiver is the receiver of a broker that only publishes.
type nopReceiver struct{}

func (nopReceiver) Receive(string, []byte) {}
func (nopReceiver) Lost([]string)          {}
func (nopReceiver) Logger() *slog.Logger   { return slog.New(slog.DiscardHandler) }
