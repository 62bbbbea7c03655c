// Package brokertest is the conformance suite of [rpcws.Broker]: every
// broker runs it, the in-process one in rpcws's tests and each engine's in
// its own module, so that they all behave alike. It needs the standard
// library and the main module's own dependencies only.
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
	"fmt"
	"slices"
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
	t.Run("Limits", func(t *testing.T) { testLimits(t, newBroker) })
	t.Run("Forged", func(t *testing.T) { testForged(t, newBroker) })
	t.Run("SlowSubscribe", func(t *testing.T) { testSlowSubscribe(t, newBroker) })
	t.Run("SlowUnsubscribe", func(t *testing.T) { testSlowUnsubscribe(t, newBroker) })
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

	// A user's subject is subscribed while the user has a connection
	// (dial waits for the user address to be in effect).
	u := nodes[1].dial(t, "ada")
	u.join(t, "x")
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
