package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
)

var kinds = []string{"memory", "redis", "nats"}

// clients30 dials 30 clients spread over urls: users ada, bob, cyd and
// none in turn; the even ones join "room 42", every fifth "room.*".
func clients30(t *testing.T, urls []string) (all, room, ada []*client) {
	t.Helper()
	users := []string{"ada", "bob", "cyd", ""}
	for i := range 30 {
		c := dial(t, urls[i%len(urls)], users[i%len(users)])
		all = append(all, c)
		if c.user == "ada" {
			ada = append(ada, c)
		}
		if i%2 == 0 {
			if got, want := c.must(t, "Topic.Join", map[string]any{"topic": "room 42"}), `{"topic":"room 42"}`; got != want {
				t.Fatalf("topic.join reply %s, want %s", got, want)
			}
			room = append(room, c)
		}
		if i%5 == 0 {
			c.must(t, "Topic.Join", map[string]any{"topic": "room.*"})
		}
	}
	return all, room, ada
}

// routing checks topic, user and broadcast delivery to 30 clients over urls.
func routing(t *testing.T, urls []string) {
	all, room, ada := clients30(t, urls)
	pub := all[1] // not a member of room 42
	const n = 100
	for i := range n {
		if got, want := pub.must(t, "Topic.Publish", map[string]any{"topic": "room 42", "data": i}), `{"topic":"room 42"}`; got != want {
			t.Fatalf("topic.publish reply %s, want %s", got, want)
		}
	}
	if got, want := pub.must(t, "User.Notify", map[string]any{"user": "ada", "data": "hi ada"}), `{"user":"ada"}`; got != want {
		t.Fatalf("user.notify reply %s, want %s", got, want)
	}
	pub.must(t, "User.Notify", map[string]any{"user": "nobody", "data": "hi"})
	if got, want := pub.must(t, "Demo.Broadcast", map[string]any{"data": "done"}), `{}`; got != want {
		t.Fatalf("demo.broadcast reply %s, want %s", got, want)
	}
	// The broadcast comes last from the same publisher: once a client has
	// it, it has everything else it would get.
	for _, c := range all {
		c.waitEvent(t, "demo.broadcast", `"done"`)
	}
	for _, c := range all {
		var want []string
		if contains(room, c) {
			for i := range n {
				want = append(want, fmt.Sprintf(`{"topic":"room 42","data":%d}`, i))
			}
		}
		var got []string
		for _, m := range c.ofType("topic.message") {
			if strings.Contains(m, `"room 42"`) {
				got = append(got, m)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: %d room messages, want %d in order, once each: %v", c.name, len(got), len(want), got)
		}
		notices := c.ofType("user.notice")
		if wantN := map[bool]int{true: 1, false: 0}[contains(ada, c)]; len(notices) != wantN || (wantN == 1 && notices[0] != `"hi ada"`) {
			t.Errorf("%s: user notices %v, want %d", c.name, notices, wantN)
		}
		if got := c.ofType("topic.message"); len(got) != len(want) {
			t.Errorf("%s: a topic it is not in reached it: %d messages", c.name, len(got))
		}
	}
}

func contains(cs []*client, c *client) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// Three replicas on one broker, 30 clients: a topic's messages reach its
// members once each, in order; user.notify reaches that user's
// connections; a broadcast reaches everyone.
func TestRouting(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 3)
			var urls []string
			for _, r := range c.replicas {
				urls = append(urls, r.url())
			}
			routing(t, urls)
		})
	}
}

// A join is in effect when its reply is sent, whatever replica publishes;
// leaving works, and so do leaving what one is not in and notifying a user
// without connections.
func TestJoinLeave(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 2)
			a := dial(t, c.replicas[0].url(), "")
			b := dial(t, c.replicas[1].url(), "")
			for i := range 20 {
				topic := fmt.Sprintf("t%d", i)
				a.must(t, "Topic.Join", map[string]any{"topic": topic})
				b.must(t, "Topic.Publish", map[string]any{"topic": topic, "data": i})
				a.waitEvent(t, "topic.message", fmt.Sprintf(`{"topic":%q,"data":%d}`, topic, i))
			}
			a.must(t, "Topic.Leave", map[string]any{"topic": "t0"})
			if got, want := a.must(t, "Topic.Leave", map[string]any{"topic": "never"}), `{"topic":"never"}`; got != want {
				t.Errorf("leave reply %s, want %s", got, want)
			}
			b.must(t, "Topic.Publish", map[string]any{"topic": "t0", "data": "gone"})
			b.must(t, "Demo.Broadcast", map[string]any{"data": "marker"})
			a.waitEvent(t, "demo.broadcast", `"marker"`)
			if n := a.count("topic.message", `{"topic":"t0","data":"gone"}`); n != 0 {
				t.Errorf("a message to a topic left reached the connection")
			}
			// Literal names: a pattern-looking topic is an ordinary topic.
			a.must(t, "Topic.Join", map[string]any{"topic": "room.*"})
			b.must(t, "Topic.Join", map[string]any{"topic": "room.>"})
			b.must(t, "Topic.Publish", map[string]any{"topic": "room.x", "data": 1})
			b.must(t, "Topic.Publish", map[string]any{"topic": "room.*", "data": 2})
			b.must(t, "Demo.Broadcast", map[string]any{"data": "marker2"})
			a.waitEvent(t, "demo.broadcast", `"marker2"`)
			b.waitEvent(t, "demo.broadcast", `"marker2"`)
			if got := a.ofType("topic.message"); got[len(got)-1] != `{"topic":"room.*","data":2}` || strings.Contains(strings.Join(got, ""), `"room.x"`) {
				t.Errorf("room.* member got %v", got)
			}
			if got := b.ofType("topic.message"); len(got) != 0 {
				t.Errorf("room.> member got %v", got)
			}
		})
	}
}

func TestInvalidParams(t *testing.T) {
	c := newCluster(t, "memory", 1)
	cl := dial(t, c.replicas[0].url(), "")
	long := strings.Repeat("é", 129)
	for _, method := range []string{"Topic.Join", "Topic.Leave", "Topic.Publish", "User.Notify"} {
		field := "topic"
		if method == "User.Notify" {
			field = "user"
		}
		for _, bad := range []any{"", long, 5, nil, []string{"a"}, absent{}} {
			args := map[string]any{field: bad, "data": 1}
			if _, ok := bad.(absent); ok {
				delete(args, field)
			}
			err := cl.call(method, args, new(json.RawMessage))
			if codec.ErrorCode(err) != codec.CodeInvalidParams {
				t.Errorf("%s with %s %#v: got %v, want InvalidParams", method, field, bad, err)
			}
		}
		ok := strings.Repeat("é", 128)
		if err := cl.call(method, map[string]any{field: ok}, new(json.RawMessage)); err != nil {
			t.Errorf("%s with a 128-character name: %v", method, err)
		}
	}
}

type absent struct{}

// The broker restarts on the same port: every connection gets exactly one
// rpcws.resync listing its own topics, then a publish reaches every member
// within 5 s, and no client reconnects.
func TestBrokerRestart(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 3)
			var all, room []*client
			for i := range 9 {
				cl := dial(t, c.replicas[i%3].url(), "")
				all = append(all, cl)
				if i%2 == 0 {
					cl.must(t, "Topic.Join", map[string]any{"topic": "room 42"})
					cl.must(t, "Topic.Join", map[string]any{"topic": "a"})
					room = append(room, cl)
				}
			}
			if err := c.engine.Restart(); err != nil {
				t.Fatal(err)
			}
			for _, cl := range all {
				cl.await(t, 30*time.Second, "rpcws.resync", func() bool { return len(cl.ofType("rpcws.resync")) > 0 })
				want := `{"topics":[]}`
				if contains(room, cl) {
					want = `{"topics":["a","room 42"]}`
				}
				if got := cl.ofType("rpcws.resync")[0]; got != want {
					t.Errorf("%s: resync %s, want %s", cl.name, got, want)
				}
			}
			all[1].must(t, "Topic.Publish", map[string]any{"topic": "room 42", "data": "again"})
			for _, cl := range room {
				cl.await(t, 5*time.Second, "a message after the resync", func() bool {
					return cl.count("topic.message", `{"topic":"room 42","data":"again"}`) == 1
				})
			}
			all[1].must(t, "Demo.Broadcast", map[string]any{"data": "end"})
			for _, cl := range all {
				cl.waitEvent(t, "demo.broadcast", `"end"`)
				if n := len(cl.ofType("rpcws.resync")); n != 1 {
					t.Errorf("%s: %d resync events, want 1: %v", cl.name, n, cl.ofType("rpcws.resync"))
				}
				if cl.closed() {
					t.Errorf("%s: connection closed by the restart", cl.name)
				}
			}
		})
	}
}

// A replica that dies leaves nothing that keeps the others from working.
func TestReplicaDies(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 3)
			a := dial(t, c.replicas[0].url(), "ada")
			b := dial(t, c.replicas[1].url(), "ada")
			for _, cl := range []*client{a, b} {
				cl.must(t, "Topic.Join", map[string]any{"topic": "t"})
			}
			c.replicas[1].stop()
			<-b.c.Done()
			d := dial(t, c.replicas[2].url(), "ada")
			d.must(t, "Topic.Join", map[string]any{"topic": "t"})
			a.must(t, "Topic.Publish", map[string]any{"topic": "t", "data": 1})
			a.must(t, "User.Notify", map[string]any{"user": "ada", "data": 2})
			a.must(t, "Demo.Broadcast", map[string]any{"data": 3})
			for _, cl := range []*client{a, d} {
				cl.waitEvent(t, "topic.message", `{"topic":"t","data":1}`)
				cl.waitEvent(t, "user.notice", `2`)
				cl.waitEvent(t, "demo.broadcast", `3`)
			}
		})
	}
}

func TestBrokerFlag(t *testing.T) {
	for _, url := range []string{""} {
		if b, err := newBroker(url); b != nil || err != nil {
			t.Errorf("-broker=%q: got %v, %v; want in-process", url, b, err)
		}
	}
	if _, err := newBroker("http://x"); err == nil {
		t.Errorf("-broker=http://x accepted")
	}
}
