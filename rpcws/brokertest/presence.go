package brokertest

import (
	"slices"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// RunPresence is the conformance suite of [rpcws.PresenceBroker]: entries
// added on several nodes are listed once each on every node; a removed
// entry is gone at once; an entry that is not added again is gone within
// its ttl, and one added again in time stays.
func RunPresence(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	t.Run("Members", func(t *testing.T) { testPresenceMembers(t, newBroker) })
	t.Run("Expiry", func(t *testing.T) { testPresenceExpiry(t, newBroker) })
}

// presenceNodes starts n brokers that implement PresenceBroker.
func presenceNodes(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, n int) []rpcws.PresenceBroker {
	t.Helper()
	out := make([]rpcws.PresenceBroker, n)
	for i := range out {
		b, ok := newBroker(t).(rpcws.PresenceBroker)
		if !ok {
			t.Fatal("the broker does not implement rpcws.PresenceBroker")
		}
		if err := b.Start(nopReceiver{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		out[i] = b
	}
	return out
}

// members returns the topic's entries as sorted "peer=info" strings.
func members(t *testing.T, b rpcws.PresenceBroker, subject string) []string {
	t.Helper()
	entries, err := b.Presence(ctxFor(t), subject)
	if err != nil {
		t.Fatalf("presence: %v", err)
	}
	var out []string
	for _, e := range entries {
		if e.Topic != subject {
			t.Fatalf("an entry of topic %q listed for %q", e.Topic, subject)
		}
		out = append(out, e.Peer+"="+string(e.Info))
	}
	slices.Sort(out)
	return out
}

func entry(subject, peer, info string) rpcws.PresenceEntry {
	return rpcws.PresenceEntry{Topic: subject, Peer: peer, Info: []byte(info)}
}

func testPresenceMembers(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := presenceNodes(t, newBroker, 3)
	room, other := uniqueSubject("room"), uniqueSubject("other")
	add := func(b rpcws.PresenceBroker, entries ...rpcws.PresenceEntry) {
		t.Helper()
		if err := b.AddPresence(ctxFor(t), time.Minute, entries...); err != nil {
			t.Fatalf("add: %v", err)
		}
	}
	add(nodes[0], entry(room, "n0.1", `{"user":"ada"}`), entry(room, "n0.2", `{"user":""}`), entry(other, "n0.1", `{"user":"ada"}`))
	add(nodes[1], entry(room, "n1.1", `{"user":"bob"}`))
	add(nodes[1], entry(room, "n1.1", `{"user":"bob"}`)) // again: once
	want := []string{`n0.1={"user":"ada"}`, `n0.2={"user":""}`, `n1.1={"user":"bob"}`}
	for i, b := range nodes {
		if got := members(t, b, room); !slices.Equal(got, want) {
			t.Fatalf("node %d lists %q, want %q", i, got, want)
		}
	}
	if err := nodes[2].RemovePresence(ctxFor(t), rpcws.PresenceEntry{Topic: room, Peer: "n0.2"}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := members(t, nodes[0], room); !slices.Equal(got, []string{want[0], want[2]}) {
		t.Fatalf("after a removal: %q", got)
	}
	if got := members(t, nodes[0], other); !slices.Equal(got, []string{`n0.1={"user":"ada"}`}) {
		t.Fatalf("the other topic: %q", got)
	}
	if got := members(t, nodes[0], uniqueSubject("empty")); len(got) != 0 {
		t.Fatalf("an empty topic lists %q", got)
	}
}

func testPresenceExpiry(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := presenceNodes(t, newBroker, 2)
	room := uniqueSubject("expiry")
	const ttl = 500 * time.Millisecond
	if err := nodes[0].AddPresence(ctxFor(t), ttl, entry(room, "dead.1", "d")); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].AddPresence(ctxFor(t), ttl, entry(room, "live.1", "l")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// The live node adds its entry again every ttl/3; the dead one never.
	var got []string
	for time.Since(start) < 4*ttl {
		if err := nodes[1].AddPresence(ctxFor(t), ttl, entry(room, "live.1", "l")); err != nil {
			t.Fatal(err)
		}
		got = members(t, nodes[1], room)
		if !slices.Contains(got, "live.1=l") {
			t.Fatalf("an entry added again every %v is gone: %q", ttl/3, got)
		}
		time.Sleep(ttl / 3)
	}
	if slices.Contains(got, "dead.1=d") {
		t.Fatalf("an entry not added again for %v (ttl %v) is still listed: %q", 4*ttl, ttl, got)
	}
}
