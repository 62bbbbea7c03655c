// Package brokertest is the conformance suite of [rpcws.Broker]: every
// broker runs it, the in-process one in rpcws's tests and each engine's in
// its own module, so that they all behave alike. It needs the standard
// library only.
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) rpcws.Broker { return newBroker(t) })
//	}
//
// Each test runs replicas (a [rpcws.Handler] on an httptest server, each
// with a broker from newBroker) and WebSocket clients of them, and checks
// what the clients receive: routing to all, a topic, a user and one peer,
// except the sender; subscription by interest; the order of one
// publisher's events; and, with [Restart], the resync after the engine
// restarts.
package brokertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// Wait is how long the suite waits for an event that must come.
const Wait = 10 * time.Second

// Run runs the conformance suite. newBroker returns a new broker on the
// engine under test, one per replica; the replica's handler owns it.
func Run(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	t.Run("Routing", func(t *testing.T) { testRouting(t, newBroker) })
	t.Run("JoinInEffect", func(t *testing.T) { testJoinInEffect(t, newBroker) })
	t.Run("Interest", func(t *testing.T) { testInterest(t, newBroker) })
	t.Run("Order", func(t *testing.T) { testOrder(t, newBroker) })
	t.Run("ReplicaGone", func(t *testing.T) { testReplicaGone(t, newBroker) })
}

// Restart checks the resync: restart stops the engine and starts it again
// on the same address. Every connection then receives exactly one
// rpcws.resync listing its own topics, and events published after it flow
// again, with no client reconnecting.
func Restart(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, restart func(t *testing.T)) {
	nodes := newNodes(t, newBroker, 2)
	a := nodes[0].dial(t, "ada")
	b := nodes[1].dial(t, "bob")
	c := nodes[1].dial(t, "")
	a.join(t, "room 1")
	b.join(t, "room 1")
	b.join(t, "room.*")

	restart(t)

	a.waitType(t, rpcws.ResyncEvent, 1)
	b.waitType(t, rpcws.ResyncEvent, 1)
	c.waitType(t, rpcws.ResyncEvent, 1)
	for _, tc := range []struct {
		cl   *client
		want string
	}{{a, `{"topics":["room 1"]}`}, {b, `{"topics":["room 1","room.*"]}`}, {c, `{"topics":[]}`}} {
		if got := tc.cl.ofType(rpcws.ResyncEvent)[0]; got != tc.want {
			t.Errorf("%s: resync data %s, want %s", tc.cl.name, got, tc.want)
		}
	}
	a.publish(t, "topic", "room 1", false, "after")
	a.waitEvent(t, "m", `"after"`)
	b.waitEvent(t, "m", `"after"`)
	a.publish(t, "all", "", false, "all after")
	for _, cl := range []*client{a, b, c} {
		cl.waitEvent(t, "m", `"all after"`)
		if n := len(cl.ofType(rpcws.ResyncEvent)); n != 1 {
			t.Errorf("%s: %d resync events, want 1", cl.name, n)
		}
		if cl.closed() {
			t.Errorf("%s: connection closed by the restart", cl.name)
		}
	}
}

func testRouting(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodes(t, newBroker, 3)
	// On each node: ada, bob, and one without identity. ada and bob join
	// "room.*" (a literal name) on nodes 0 and 1 only.
	var all, ada, bob, room []*client
	for i, n := range nodes {
		a, b, anon := n.dial(t, "ada"), n.dial(t, "bob"), n.dial(t, "")
		all = append(all, a, b, anon)
		ada, bob = append(ada, a), append(bob, b)
		if i < 2 {
			a.join(t, "room.*")
			b.join(t, "room.*")
			room = append(room, a, b)
		}
	}
	nodes[2].dial(t, "").join(t, "room.>") // a different topic
	sender := all[2]

	check := func(t *testing.T, label string, want []*client) {
		t.Helper()
		// A broadcast after the event, from the same publisher, arrives
		// after it: once every client has the marker, the event has
		// reached everyone it would.
		sender.publish(t, "all", "", false, label+" done")
		for _, c := range all {
			c.waitEvent(t, "m", fmt.Sprintf("%q", label+" done"))
			got := c.count("m", fmt.Sprintf("%q", label))
			wantN := 0
			if slices.Contains(want, c) {
				wantN = 1
			}
			if got != wantN {
				t.Errorf("%s: %s got %d, want %d", label, c.name, got, wantN)
			}
		}
	}

	sender.publish(t, "all", "", false, "everyone")
	check(t, "everyone", all)
	sender.publish(t, "topic", "room.*", false, "room")
	check(t, "room", room)
	sender.publish(t, "user", "ada", false, "ada")
	check(t, "ada", ada)
	sender.publish(t, "user", "nobody", false, "nobody")
	check(t, "nobody", nil)
	sender.publish(t, "peer", bob[1].id, false, "bob1")
	check(t, "bob1", []*client{bob[1]})

	// Except the sender: a member publishing to its own topic.
	room[0].publish(t, "topic", "room.*", true, "others")
	check(t, "others", room[1:])
	room[0].publish(t, "all", "", true, "all others")
	check(t, "all others", slices.DeleteFunc(slices.Clone(all), func(c *client) bool { return c == room[0] }))

	// After leaving, a member receives no more.
	room[1].leave(t, "room.*")
	room[1].leave(t, "never joined")
	sender.publish(t, "topic", "room.*", false, "after leave")
	check(t, "after leave", []*client{room[0], room[2], room[3]})
}

// A join is in effect when it returns: an event published right after,
// from another replica, reaches the new member.
func testJoinInEffect(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodes(t, newBroker, 2)
	a, b := nodes[0].dial(t, ""), nodes[1].dial(t, "")
	for i := range 20 {
		topic := fmt.Sprintf("fresh %d", i)
		a.join(t, topic)
		b.publish(t, "topic", topic, false, i)
		a.waitEvent(t, "m", fmt.Sprint(i))
	}
}

func testInterest(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	var spies []*spy
	nodes := newNodes(t, func(t *testing.T) rpcws.Broker {
		s := &spy{Broker: newBroker(t), subs: make(map[string]int)}
		spies = append(spies, s)
		return s
	}, 2)
	base := spies[0].topicSubs()
	if len(base) != 0 {
		t.Fatalf("topic subscriptions before any join: %v", base)
	}
	a, b := nodes[0].dial(t, ""), nodes[0].dial(t, "")
	a.join(t, "t")
	b.join(t, "t")
	if got := spies[0].topicSubs(); len(got) != 1 {
		t.Fatalf("after two joins of one topic, subscriptions %v, want one", got)
	}
	if got := spies[1].topicSubs(); len(got) != 0 {
		t.Fatalf("a replica without members subscribed: %v", got)
	}
	a.leave(t, "t")
	if got := spies[0].topicSubs(); len(got) != 1 {
		t.Fatalf("after one of two members left, subscriptions %v, want one", got)
	}
	b.join(t, "u")
	b.close()
	waitFor(t, "the closed connection's topics to be unsubscribed", func() bool { return len(spies[0].topicSubs()) == 0 })

	// A user's subject is subscribed while the user has a connection.
	u := nodes[1].dial(t, "ada")
	u.join(t, "x") // one call answered: its user address is in effect
	if got := spies[1].userSubs(); len(got) != 1 {
		t.Fatalf("user subscriptions %v, want one", got)
	}
	u.close()
	waitFor(t, "the user's subject to be unsubscribed", func() bool {
		return len(spies[1].userSubs()) == 0 && len(spies[1].topicSubs()) == 0
	})
	for _, s := range spies {
		s.mu.Lock()
		for subject, n := range s.subs {
			if n != 0 && n != 1 {
				t.Errorf("subject %s subscribed %d times", subject, n)
			}
		}
		s.mu.Unlock()
	}
}

func testOrder(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodes(t, newBroker, 3)
	var members []*client
	for _, n := range nodes {
		for range 2 {
			c := n.dial(t, "")
			c.join(t, "order")
			members = append(members, c)
		}
	}
	pub := nodes[0].dial(t, "")
	const n = 100
	for i := range n {
		pub.publish(t, "topic", "order", false, i)
	}
	for _, c := range members {
		got := c.waitType(t, "m", n)
		for i, g := range got {
			if g != fmt.Sprint(i) {
				t.Fatalf("%s: events %v, want 0 to %d in order, once each", c.name, got, n-1)
			}
		}
	}
}

func testReplicaGone(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodes(t, newBroker, 3)
	a := nodes[0].dial(t, "ada")
	b := nodes[1].dial(t, "ada")
	a.join(t, "t")
	b.join(t, "t")
	nodes[1].stop()
	a.publish(t, "topic", "t", false, "still")
	a.waitEvent(t, "m", `"still"`)
	a.publish(t, "user", "ada", false, "ada")
	a.waitEvent(t, "m", `"ada"`)
	c := nodes[2].dial(t, "ada")
	c.join(t, "t")
	a.publish(t, "topic", "t", false, "new")
	c.waitEvent(t, "m", `"new"`)
	if got := c.count("m", `"still"`); got != 0 {
		t.Errorf("a late member got an earlier event")
	}
}

// spy records a broker's subscriptions.
type spy struct {
	rpcws.Broker
	mu   sync.Mutex
	subs map[string]int // subject → subscribe count minus unsubscribe count
}

func (s *spy) Subscribe(ctx context.Context, subject string) error {
	s.mu.Lock()
	s.subs[subject]++
	s.mu.Unlock()
	return s.Broker.Subscribe(ctx, subject)
}

func (s *spy) Unsubscribe(ctx context.Context, subject string) error {
	s.mu.Lock()
	s.subs[subject]--
	s.mu.Unlock()
	return s.Broker.Unsubscribe(ctx, subject)
}

func (s *spy) withPrefix(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for subject, n := range s.subs {
		if n > 0 && strings.HasPrefix(subject, prefix) {
			out = append(out, subject)
		}
	}
	return out
}

func (s *spy) topicSubs() []string { return s.withPrefix("rpcws.t.") }
func (s *spy) userSubs() []string  { return s.withPrefix("rpcws.u.") }

// node is one replica.
type node struct {
	h    *rpcws.Handler
	hs   *httptest.Server
	once sync.Once
}

func newNodes(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, n int) []*node {
	t.Helper()
	var nodes []*node
	for range n {
		nd := &node{}
		srv := rpc.NewServer()
		if err := srv.RegisterName("Room", &Room{Handler: func() *rpcws.Handler { return nd.h }}); err != nil {
			t.Fatal(err)
		}
		nd.h = rpcws.NewHandler(srv, &rpcws.HandlerOptions{
			Broker: newBroker(t),
			Authorize: func(r *http.Request) (any, error) {
				if u := r.URL.Query().Get("user"); u != "" {
					return u, nil
				}
				return nil, nil
			},
		})
		nd.hs = httptest.NewServer(nd.h)
		t.Cleanup(nd.stop)
		nodes = append(nodes, nd)
	}
	return nodes
}

// stop ends the replica at once, as a crash would.
func (n *node) stop() {
	n.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n.h.Shutdown(ctx)
		n.hs.Close()
	})
}

// Room is the service the suite's clients call.
type Room struct{ Handler func() *rpcws.Handler }

// TopicArgs names a topic.
type TopicArgs struct {
	Topic string `json:"topic"`
	rpcws.Caller
}

// Join joins the caller to a topic and returns its peer ID.
func (r *Room) Join(a *TopicArgs, id *string) error {
	*id = a.Peer().ID()
	return a.Peer().Join(context.Background(), a.Topic)
}

// Leave takes the caller out of a topic.
func (r *Room) Leave(a *TopicArgs, ok *bool) error {
	*ok = true
	return a.Peer().Leave(context.Background(), a.Topic)
}

// ID returns the caller's peer ID.
func (r *Room) ID(a *TopicArgs, id *string) error {
	*id = a.Peer().ID()
	return nil
}

// PublishArgs is an event "m" to publish.
type PublishArgs struct {
	To     string          `json:"to"` // all, topic, user or peer
	Name   string          `json:"name"`
	Except bool            `json:"except"`
	Data   json.RawMessage `json:"data"`
	rpcws.Caller
}

// Publish publishes an event "m" with the given data.
func (r *Room) Publish(a *PublishArgs, ok *bool) error {
	var to rpcws.Address
	switch a.To {
	case "all":
		to = rpcws.All()
	case "topic":
		to = rpcws.Topic(a.Name)
	case "user":
		to = rpcws.User(a.Name)
	case "peer":
		to = rpcws.ToPeer(a.Name)
	}
	if a.Except {
		to = to.Except(a.Peer())
	}
	*ok = true
	return r.Handler().Publish(context.Background(), to, "m", a.Data)
}

// client is one WebSocket client and the events it received.
type client struct {
	name string
	id   string
	c    *rpcws.Client

	mu     sync.Mutex
	events []string // "type data"
	signal chan struct{}
}

func (n *node) dial(t *testing.T, user string) *client {
	t.Helper()
	url := "ws" + strings.TrimPrefix(n.hs.URL, "http")
	name := "anonymous"
	if user != "" {
		url += "?user=" + user
		name = user
	}
	cl := &client{signal: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{OnEvent: cl.onEvent, MaxQueuedEventBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl.c = c
	if err := c.CallContext(ctx, "Room.ID", &TopicArgs{}, &cl.id); err != nil {
		t.Fatal(err)
	}
	cl.name = name + "@" + cl.id
	return cl
}

func (c *client) onEvent(typ string, data json.RawMessage) {
	c.mu.Lock()
	c.events = append(c.events, typ+" "+string(data))
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *client) call(t *testing.T, method string, args any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	var reply json.RawMessage
	if err := c.c.CallContext(ctx, method, args, &reply); err != nil {
		t.Fatalf("%s: %s: %v", c.name, method, err)
	}
}

func (c *client) join(t *testing.T, topic string) {
	t.Helper()
	c.call(t, "Room.Join", &TopicArgs{Topic: topic})
}
func (c *client) leave(t *testing.T, topic string) {
	t.Helper()
	c.call(t, "Room.Leave", &TopicArgs{Topic: topic})
}

func (c *client) publish(t *testing.T, to, name string, except bool, data any) {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	c.call(t, "Room.Publish", &PublishArgs{To: to, Name: name, Except: except, Data: raw})
}

func (c *client) close() { c.c.Close() }

func (c *client) closed() bool {
	select {
	case <-c.c.Done():
		return true
	default:
		return false
	}
}

// ofType returns the data of the events of type typ received so far.
func (c *client) ofType(typ string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.events {
		if d, ok := strings.CutPrefix(e, typ+" "); ok {
			out = append(out, d)
		}
	}
	return out
}

func (c *client) count(typ, data string) int {
	n := 0
	for _, d := range c.ofType(typ) {
		if d == data {
			n++
		}
	}
	return n
}

// waitType waits for n events of type typ and returns their data.
func (c *client) waitType(t *testing.T, typ string, n int) []string {
	t.Helper()
	var got []string
	c.await(t, fmt.Sprintf("%d events %s", n, typ), func() bool {
		got = c.ofType(typ)
		return len(got) >= n
	})
	return got
}

// waitEvent waits for an event of type typ with data.
func (c *client) waitEvent(t *testing.T, typ, data string) {
	t.Helper()
	c.await(t, "event "+typ+" "+data, func() bool { return c.count(typ, data) > 0 })
}

func (c *client) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(Wait)
	for !cond() {
		select {
		case <-c.signal:
		case <-timeout:
			c.mu.Lock()
			got := slices.Clone(c.events)
			c.mu.Unlock()
			t.Fatalf("%s: no %s within %v; events: %q", c.name, what, Wait, got)
		}
	}
}

// waitFor polls cond, for state that announces no event.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
