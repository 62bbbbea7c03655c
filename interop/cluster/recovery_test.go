package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
)

// The recovery tests run replicas with a short window and a small presence
// TTL, so that clients kept away past the window, and a killed replica's
// presence, show within seconds; history as the default. The window leaves
// a client that reconnects at once seconds of slack on a loaded machine: a
// killed replica last vouched for its sessions up to a third of it before.
const (
	testHistory   = 100
	testWindow    = 5 * time.Second
	testPresence  = 2 * time.Second
	events        = 1000                 // published per run
	eventInterval = 4 * time.Millisecond // a steady 250 events/s
	disturbAt     = 300                  // the replica stops once this many are out
)

// replicaFlags are the flags of every replica a recovery test runs.
func replicaFlags(broker string) []string {
	return []string{"-broker", broker, "-history-size", fmt.Sprint(testHistory),
		"-recovery-window", testWindow.String(), "-presence-ttl", testPresence.String(), "-grace", "5s"}
}

// memOptions are replicaFlags for in-process replicas.
func memOptions() options {
	return options{
		History:  &rpcws.HistoryOptions{Size: testHistory, RecoveryWindow: testWindow},
		Presence: &rpcws.PresenceOptions{TTL: testPresence},
	}
}

// group is what a client of the disturbed replica does after the drop.
type group int

const (
	immediate   group = iota // reconnects at once: recovers everything
	pastHistory              // stays away until more than the history size went by
	pastWindow               // stays away past the recovery window
)

func (g group) String() string { return [...]string{"immediate", "past-history", "past-window"}[g] }

// scenario is one recovery run.
type scenario struct {
	nodes  []node
	entry  []string // the URLs clients dial: the replicas' own, or nginx's
	victim int      // the node that stops
	kill   bool     // SIGKILL; else SIGTERM
	groups bool     // keep some of the victim's clients away past the history or the window
}

// Three replicas on one broker; 30 clients spread over them, in a topic
// that one more client publishes 1,000 events to at a steady rate; the
// replica some of them are on is killed (or restarted gracefully) a third
// of the way in, and comes back. Every client that reconnects at once, to
// whatever replica, has every event exactly once, in order, with nothing
// but the protocol's own recovery; one kept away until the history moved
// on gets one rpcws.resync and its topics back; one kept away past the
// window gets one rpcws.resync naming its topics, and none of them.
func TestRecovery(t *testing.T) {
	binDir := t.TempDir()
	for _, kind := range kinds {
		for _, kill := range []bool{true, false} {
			t.Run(kind+"/"+map[bool]string{true: "kill", false: "term"}[kill], func(t *testing.T) {
				var nodes []node
				if kind == "memory" {
					var bus rpcws.MemoryBus
					for range 3 {
						nodes = append(nodes, startMemNode(t, &bus, memOptions()))
					}
				} else {
					engine := engines.StartT(t, kind)
					bin := buildServer(t, binDir)
					for range 3 {
						nodes = append(nodes, startProc(t, bin, replicaFlags(engine.URL())...))
					}
				}
				runRecovery(t, scenario{nodes: nodes, entry: urlsOf(nodes), kill: kill, groups: true})
			})
		}
	}
}

// runRecovery runs sc and checks what every client got.
func runRecovery(t *testing.T, sc scenario) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	pub := dialPublisher(t, sc.nodes[(sc.victim+1)%len(sc.nodes)].URL())
	var prog progress
	clients, goClients, groupOf := startClients(t, ctx, &wg, sc, &prog)
	checkPresence(t, pub, "feed", len(clients)+len(goClients))

	published := make(chan error, 1)
	go func() { published <- publish(ctx, pub, "feed", events, eventInterval, &prog) }()
	if err := prog.waitFor(ctx, disturbAt); err != nil {
		t.Fatal(err)
	}
	victim := sc.nodes[sc.victim]
	if sc.kill {
		victim.Kill(t)
	} else {
		victim.Term(t)
	}
	victim.Start(t)
	t.Logf("replica %d stopped (kill %v) after %d events, and back", sc.victim, sc.kill, prog.count())
	start := time.Now()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("all %d events published %v later", events, time.Since(start).Round(time.Millisecond))
	case <-time.After(3 * events * eventInterval):
		t.Fatalf("the publisher did not publish %d events within %v", events, 3*events*eventInterval)
	}

	dropped := map[group]int{}
	for _, c := range clients {
		checkClient(t, c, groupOf[c])
		c.mu.Lock()
		dropped[groupOf[c]] += c.drops
		c.mu.Unlock()
	}
	goDropped := 0
	for _, g := range goClients {
		goDropped += g.check(t)
	}
	// Clients dialled replicas in turn: some of each kind were on the one
	// that stopped. Behind nginx, its round robin decides.
	if dropped[immediate]+goDropped == 0 || len(sc.entry) > 1 && (dropped[immediate] == 0 || goDropped == 0) {
		t.Fatalf("no client, or no Go client, was on the replica that stopped")
	}
	t.Logf("clients that reconnected: %v, and %d Go clients; all checked %v after the stop", dropped, goDropped, time.Since(start).Round(time.Millisecond))
	live := len(clients) + len(goClients)
	for _, g := range groupOf {
		if g == pastWindow {
			live--
		}
	}
	checkPresence(t, pub, "feed", live)
	t.Logf("presence right %v after the stop", time.Since(start).Round(time.Millisecond))
}

// startClients starts 30 clients on sc.entry, users ada, bob, cyd and none
// in turn, all in "feed" and the even ones in "quiet" too (never published
// to), and waits until they have joined. Every fifth is the rpcws Go
// client with Reconnect (redialling its one URL), the others are rclients.
// With sc.groups, the rclients of the victim are split: half reconnect at
// once, a quarter stay away past the history, a quarter past the window.
func startClients(t *testing.T, ctx context.Context, wg *sync.WaitGroup, sc scenario, prog *progress) ([]*rclient, []*gclient, map[*rclient]group) {
	t.Helper()
	users := []string{"ada", "bob", "cyd", ""}
	var clients []*rclient
	var goClients []*gclient
	groupOf := map[*rclient]group{}
	onVictim := 0
	for i := range 30 {
		var urls []string
		for j := range sc.entry {
			u := sc.entry[(i+j)%len(sc.entry)]
			if users[i%4] != "" {
				u += "?user=" + users[i%4]
			}
			urls = append(urls, u)
		}
		topics := []string{"feed"}
		if i%2 == 0 {
			topics = append(topics, "quiet")
		}
		name := fmt.Sprintf("client %d (%s)", i, urls[0])
		if i%5 == 1 {
			goClients = append(goClients, dialGClient(t, name+" (Go)", urls[0], topics))
			continue
		}
		c := newRClient(name, urls, topics)
		g := immediate
		if sc.groups && i%len(sc.entry) == sc.victim {
			g = []group{immediate, immediate, pastHistory, pastWindow}[onVictim%4]
			onVictim++
		}
		c.hold = holdFor(g, prog)
		groupOf[c] = g
		clients = append(clients, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
	for _, c := range clients {
		select {
		case err := <-c.ready:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(wait):
			t.Fatalf("%s did not join within %v", c.name, wait)
		}
	}
	return clients, goClients, groupOf
}

// holdFor is what a client of group g does between a drop and its redial.
func holdFor(g group, prog *progress) func(ctx context.Context) error {
	switch g {
	case pastHistory:
		return func(ctx context.Context) error {
			// More than the history size published since the drop: the
			// client's position is no longer in history.
			return prog.waitFor(ctx, min(prog.count()+testHistory+50, events))
		}
	case pastWindow:
		return func(ctx context.Context) error {
			// The session expires the window after its connection ended,
			// or after its replica last vouched for it: both before the
			// drop was seen.
			select {
			case <-time.After(testWindow + time.Second):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// checkClient waits until c has what it should, then checks it all.
func checkClient(t *testing.T, c *rclient, g group) {
	t.Helper()
	switch g {
	case pastWindow:
		c.await(t, 2*testWindow+wait, "recovery", func(c *rclient) bool { return len(c.recovers) > 0 })
	default:
		c.await(t, wait, "last event", func(c *rclient) bool { return c.has("feed", events-1) })
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.broken) > 0 {
		t.Errorf("%s (%v): %v\nafter the drop: %s", c.name, g, c.broken, strings.Join(c.trace, "\n"))
	}
	if c.drops > 1 || len(c.recovers) != c.drops {
		t.Errorf("%s (%v): %d drops, %d recoveries", c.name, g, c.drops, len(c.recovers))
	}
	seqs := c.seqs["feed"]
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
		t.Errorf("%s (%v): events out of order or twice: %v", c.name, g, seqs)
	}
	if c.drops == 0 || g == immediate {
		if len(seqs) != events || len(c.resyncs) != 0 {
			t.Errorf("%s (%v): %d events, resyncs %v; want all %d, none", c.name, g, len(seqs), c.resyncs, events)
		}
		if c.drops == 1 {
			checkReply(t, c, g, true, map[string]bool{"feed": true, "quiet": true})
		}
		return
	}
	switch g {
	case pastHistory:
		if gaps(seqs) != 1 || len(seqs) >= events-testHistory || !slices.Equal(c.resyncs, []string{`{"topics":["feed"]}`}) {
			t.Errorf("%s (%v): %d events with %d gaps, resyncs %v; want one gap, of more than the history, and one resync of feed",
				c.name, g, len(seqs), gaps(seqs), c.resyncs)
		}
		checkReply(t, c, g, true, map[string]bool{"feed": false, "quiet": true})
	case pastWindow:
		want := `{"topics":["feed"]}`
		if slices.Contains(c.topics, "quiet") {
			want = `{"topics":["feed","quiet"]}`
		}
		// The events before the drop, from the first on, then none.
		prefix := len(seqs) > 0 && len(seqs) < events && seqs[len(seqs)-1] == len(seqs)-1
		if !prefix || len(c.resyncs) != 1 || sortedTopics(c.resyncs[0]) != want {
			t.Errorf("%s (%v): %d events, resyncs %v; want those before the drop, then one resync %s", c.name, g, len(seqs), c.resyncs, want)
		}
		checkReply(t, c, g, false, map[string]bool{})
	}
}

// gaps counts the places where seqs skips a number.
func gaps(seqs []int) int {
	n := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			n++
		}
	}
	return n
}

// checkReply checks c's recover reply: whether the session was restored,
// and the topics it gave back with whether each was recovered.
func checkReply(t *testing.T, c *rclient, g group, restored bool, topics map[string]bool) {
	t.Helper()
	r := c.recovers[0]
	got := map[string]bool{}
	for topic, tr := range r.Topics {
		got[topic] = tr.Recovered
	}
	for topic := range topics {
		if !slices.Contains(c.topics, topic) {
			delete(topics, topic)
		}
	}
	if r.Recovered != restored || fmt.Sprint(got) != fmt.Sprint(topics) {
		t.Errorf("%s (%v): recover reply %+v; want recovered %v, topics %v", c.name, g, r, restored, topics)
	}
}

// sortedTopics is a resync's data with its topics sorted.
func sortedTopics(data string) string {
	var d struct {
		Topics []string `json:"topics"`
	}
	json.Unmarshal([]byte(data), &d)
	slices.Sort(d.Topics)
	b, _ := json.Marshal(d)
	return string(b)
}

// dialPublisher connects the client that publishes, and closes it at
// cleanup.
func dialPublisher(t *testing.T, url string) *rpcws.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkPresence waits, up to the presence TTL and more, until topic has n
// members, each once.
func checkPresence(t *testing.T, c *rpcws.Client, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(testPresence + wait)
	var last PresenceReply
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := c.CallContext(ctx, "Topic.Presence", map[string]any{"topic": topic}, &last)
		cancel()
		if err != nil {
			t.Fatalf("topic.presence: %v", err)
		}
		peers := map[string]bool{}
		for _, m := range last.Members {
			peers[m.Peer] = true
		}
		if len(last.Members) == n && len(peers) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic.presence of %s: %d members (%d peers), want %d", topic, len(last.Members), len(peers), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// One replica on the in-process broker keeps its history and sessions in
// its own memory: a client that reconnects after the process restarted
// gets nothing back but one rpcws.resync naming every topic it listed,
// and is in none of them.
func TestRestartInProcess(t *testing.T) {
	p := startProc(t, buildServer(t, t.TempDir()), "-recovery-window", testWindow.String())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var clients []*rclient
	for i := range 3 {
		c := newRClient(fmt.Sprintf("client %d", i), []string{p.URL() + "?user=ada"}, []string{"feed", "quiet"})
		clients = append(clients, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
		if err := <-c.ready; err != nil {
			t.Fatal(err)
		}
	}
	pub := dialPublisher(t, p.URL())
	var prog progress
	if err := publish(ctx, pub, "feed", 10, time.Millisecond, &prog); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.await(t, wait, "the events", func(c *rclient) bool { return c.has("feed", 9) })
	}
	p.Term(t)
	p.Start(t)
	for _, c := range clients {
		c.await(t, wait, "recovery", func(c *rclient) bool { return len(c.recovers) > 0 })
		c.mu.Lock()
		r := c.recovers[0]
		if r.Recovered || len(r.Topics) != 0 || len(c.resyncs) != 1 || sortedTopics(c.resyncs[0]) != `{"topics":["feed","quiet"]}` || len(c.broken) > 0 {
			t.Errorf("%s: recover reply %+v, resyncs %v, broken %v; want nothing restored and one resync of feed and quiet", c.name, r, c.resyncs, c.broken)
		}
		c.mu.Unlock()
	}
}
