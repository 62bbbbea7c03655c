package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// The flags map onto the handler's options: the defaults of PROTOCOL.md,
// no history (and no sessions) at -history-size 0, presence always, and
// nonsense refused.
func TestKeepFlags(t *testing.T) {
	d := keepFlags{100, 5 * time.Minute, 2 * time.Minute, 60 * time.Second}
	h, p, err := d.options()
	if err != nil || *h != (rpcws.HistoryOptions{Size: 100, TTL: 5 * time.Minute, RecoveryWindow: 2 * time.Minute}) || *p != (rpcws.PresenceOptions{TTL: time.Minute}) {
		t.Errorf("defaults: %+v, %+v, %v", h, p, err)
	}
	off := d
	off.historySize = 0
	if h, p, err := off.options(); h != nil || p == nil || err != nil {
		t.Errorf("-history-size 0: %+v, %+v, %v; want no history, presence", h, p, err)
	}
	for _, bad := range []keepFlags{
		{-1, time.Minute, time.Minute, time.Minute},
		{1, 0, time.Minute, time.Minute},
		{1, time.Minute, -time.Second, time.Minute},
		{1, time.Minute, time.Minute, 0},
	} {
		if _, _, err := bad.options(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// topic.presence lists every connection in a topic on every replica once,
// with its user; one that leaves is gone from the reply to its leave on,
// one that closes soon after.
func TestPresence(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 3)
			var cls []*client
			for i, user := range []string{"ada", "bob", ""} {
				cl := dial(t, c.replicas[i].url(), user)
				cl.must(t, "Topic.Join", map[string]any{"topic": "room"})
				cls = append(cls, cl)
			}
			if got, want := members(t, cls[0], "room"), `["":1 "ada":1 "bob":1]`; got != want {
				t.Errorf("presence %s, want %s", got, want)
			}
			cls[1].must(t, "Topic.Leave", map[string]any{"topic": "room"})
			if got, want := members(t, cls[2], "room"), `["":1 "ada":1]`; got != want {
				t.Errorf("after a leave: presence %s, want %s", got, want)
			}
			cls[2].c.Close()
			deadline := time.Now().Add(wait)
			for members(t, cls[0], "room") != `["ada":1]` {
				if time.Now().After(deadline) {
					t.Fatalf("a closed connection still present after %v", wait)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got, want := cls[0].must(t, "Topic.Presence", map[string]any{"topic": "nobody here"}), `{"topic":"nobody here","members":[]}`; got != want {
				t.Errorf("empty topic: %s, want %s", got, want)
			}
		})
	}
}

// members returns topic.presence's members as user:count, after checking
// the reply's shape and that each peer is there once.
func members(t *testing.T, cl *client, topic string) string {
	t.Helper()
	raw := cl.must(t, "Topic.Presence", map[string]any{"topic": topic})
	var reply struct {
		Topic   string
		Members []map[string]string
	}
	if err := json.Unmarshal([]byte(raw), &reply); err != nil || reply.Topic != topic || !strings.HasPrefix(raw, `{"topic":`) {
		t.Fatalf("topic.presence reply %s", raw)
	}
	users := map[string]int{}
	peers := map[string]bool{}
	for _, m := range reply.Members {
		if len(m) != 2 || m["peer"] == "" || peers[m["peer"]] {
			t.Errorf("member %v in %s", m, raw)
		}
		peers[m["peer"]] = true
		users[m["user"]]++
	}
	var out []string
	for u, n := range users {
		out = append(out, fmt.Sprintf("%q:%d", u, n))
	}
	slices.Sort(out)
	return "[" + strings.Join(out, " ") + "]"
}

// topic.history returns a topic's last events, oldest first, with their
// offsets, and the topic's position, from any replica; a topic never
// published to has offset 0 and no events.
func TestHistory(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 2)
			a := dial(t, c.replicas[0].url(), "")
			b := dial(t, c.replicas[1].url(), "")
			for i := 1; i <= 5; i++ {
				a.must(t, "Topic.Publish", map[string]any{"topic": "h", "data": i})
			}
			var reply HistoryReply
			raw := b.must(t, "Topic.History", map[string]any{"topic": "h", "limit": 3})
			if err := json.Unmarshal([]byte(raw), &reply); err != nil || reply.Epoch == "" {
				t.Fatalf("topic.history reply %s", raw)
			}
			want := fmt.Sprintf(`{"topic":"h","epoch":%q,"offset":5,"events":[`+
				`{"offset":3,"type":"topic.message","data":{"topic":"h","data":3}},`+
				`{"offset":4,"type":"topic.message","data":{"topic":"h","data":4}},`+
				`{"offset":5,"type":"topic.message","data":{"topic":"h","data":5}}]}`, reply.Epoch)
			if raw != want {
				t.Errorf("topic.history:\n got %s\nwant %s", raw, want)
			}
			all := a.must(t, "Topic.History", map[string]any{"topic": "h", "limit": 1000})
			if n := strings.Count(all, `"type":"topic.message"`); n != 5 {
				t.Errorf("limit 1000: %d events, want 5: %s", n, all)
			}
			quiet := b.must(t, "Topic.History", map[string]any{"topic": "quiet", "limit": 1})
			if !strings.HasPrefix(quiet, `{"topic":"quiet","epoch":"`) || !strings.HasSuffix(quiet, `","offset":0,"events":[]}`) {
				t.Errorf("a topic never published to: %s", quiet)
			}
		})
	}
}

// topic.history and topic.presence take names of 1 to 128 code points and
// a limit from 1 to 1000; anything else is InvalidParams.
func TestHistoryInvalidParams(t *testing.T) {
	c := newCluster(t, "memory", 1)
	cl := dial(t, c.replicas[0].url(), "")
	for _, args := range []map[string]any{
		{"topic": "t"}, {"topic": "t", "limit": 0}, {"topic": "t", "limit": 1001}, {"topic": "t", "limit": -1},
		{"topic": "t", "limit": 1.5}, {"topic": "t", "limit": "5"}, {"topic": "t", "limit": nil},
		{"topic": "", "limit": 1}, {"topic": strings.Repeat("é", 129), "limit": 1}, {"topic": 5, "limit": 1}, {"limit": 1},
	} {
		if err := cl.call("Topic.History", args, new(json.RawMessage)); codec.ErrorCode(err) != codec.CodeInvalidParams {
			t.Errorf("topic.history %v: %v, want InvalidParams", args, err)
		}
	}
	for _, args := range []map[string]any{{"topic": ""}, {"topic": strings.Repeat("é", 129)}, {"topic": nil}, {}} {
		if err := cl.call("Topic.Presence", args, new(json.RawMessage)); codec.ErrorCode(err) != codec.CodeInvalidParams {
			t.Errorf("topic.presence %v: %v, want InvalidParams", args, err)
		}
	}
	ok := strings.Repeat("é", 128)
	if err := cl.call("Topic.History", map[string]any{"topic": ok, "limit": 1}, new(json.RawMessage)); err != nil {
		t.Errorf("topic.history with a 128-character name: %v", err)
	}
}

// With -history-size 0 the server keeps no history: no session frame, no
// positions, topic.history fails with NotKept; presence still works.
func TestNoHistory(t *testing.T) {
	opts := defaultKept(t)
	opts.History = nil
	c := newClusterWith(t, "memory", 1, opts)
	cl := dial(t, c.replicas[0].url(), "ada")
	cl.must(t, "Topic.Join", map[string]any{"topic": "t"})
	err := cl.call("Topic.History", map[string]any{"topic": "t", "limit": 1}, new(json.RawMessage))
	if codec.ErrorCode(err) != CodeNotKept {
		t.Errorf("topic.history without history: %v, want %s", err, CodeNotKept)
	}
	if got := members(t, cl, "t"); got != `["ada":1]` {
		t.Errorf("presence %s", got)
	}
	cl.must(t, "Topic.Publish", map[string]any{"topic": "t", "data": 1})
	cl.waitEvent(t, "topic.message", `{"topic":"t","data":1}`)
	for _, typ := range []string{rpcws.SessionEvent, rpcws.JoinedEvent} {
		if n := len(cl.ofType(typ)); n != 0 {
			t.Errorf("%d %s frames from a server without history", n, typ)
		}
	}
}
