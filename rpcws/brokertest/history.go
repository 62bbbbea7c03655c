package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// RunHistory is the conformance suite of [rpcws.HistoryBroker]: offsets
// gap-free under concurrent publishers on three nodes, delivered in offset
// order; reads after a position; trimming to the policy's size; events
// expiring after the policy's TTL while the topic's position stays; one
// epoch for a topic on every node; plain publishes untouched. newBroker
// must return brokers that implement HistoryBroker; the suite starts and
// closes them itself, with no handler.
func RunHistory(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	t.Run("GapFree", func(t *testing.T) { testGapFree(t, newBroker) })
	t.Run("ReadAfter", func(t *testing.T) { testReadAfter(t, newBroker) })
	t.Run("Trim", func(t *testing.T) { testTrim(t, newBroker) })
	t.Run("TTL", func(t *testing.T) { testHistoryTTL(t, newBroker) })
	t.Run("Epoch", func(t *testing.T) { testEpoch(t, newBroker) })
	t.Run("PlainPublish", func(t *testing.T) { testPlainPublish(t, newBroker) })
}

// HistoryRestart checks that a topic's epoch changes when its engine
// loses its data: restart must stop the engine and start it again on the
// same address without what it held (no persistence). Offsets may then
// start again, under the new epoch.
func HistoryRestart(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, restart func(t *testing.T)) {
	n := newHistoryNodes(t, newBroker, 1)[0]
	subject := uniqueSubject("restart")
	before := n.publishN(t, subject, 3, policy(100, time.Minute))
	restart(t)
	var after rpcws.Position
	waitFor(t, "the engine back after its restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		pos, _, err := n.b.History(ctx, subject, 0, 0)
		after = pos
		return err == nil
	})
	if after.Epoch == before.Epoch {
		t.Fatalf("epoch %q kept across a restart that lost the history (offset %d before, %d after)", after.Epoch, before.Offset, after.Offset)
	}
	pos := n.publish(t, subject, "x", policy(100, time.Minute))
	if pos.Epoch != after.Epoch || pos.Offset != after.Offset+1 {
		t.Fatalf("publish after restart at %+v, want epoch %q offset %d", pos, after.Epoch, after.Offset+1)
	}
}

// historyNode is one started broker and what it received.
type historyNode struct {
	b   rpcws.HistoryBroker
	got *positioned
}

// positioned is a HistoryReceiver that records what it receives.
type positioned struct {
	mu     sync.Mutex
	at     map[string][]atEvent // by subject, ReceiveAt
	plain  map[string][]string  // by subject, Receive
	change chan struct{}        // signalled on every message
}

type atEvent struct {
	pos rpcws.Position
	msg string
}

func (p *positioned) ReceiveAt(subject string, pos rpcws.Position, msg []byte) {
	p.mu.Lock()
	p.at[subject] = append(p.at[subject], atEvent{pos, string(msg)})
	p.mu.Unlock()
	p.signal()
}

func (p *positioned) Receive(subject string, msg []byte) {
	p.mu.Lock()
	p.plain[subject] = append(p.plain[subject], string(msg))
	p.mu.Unlock()
	p.signal()
}

func (p *positioned) signal() {
	select {
	case p.change <- struct{}{}:
	default:
	}
}

func (p *positioned) Lost([]string)        {}
func (p *positioned) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// events returns a copy of what arrived on subject through ReceiveAt.
func (p *positioned) events(subject string) []atEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]atEvent(nil), p.at[subject]...)
}

func (p *positioned) plains(subject string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.plain[subject]...)
}

// newHistoryNodes starts n brokers, each with a recording receiver.
func newHistoryNodes(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, n int) []*historyNode {
	t.Helper()
	nodes := make([]*historyNode, n)
	for i := range nodes {
		b, ok := newBroker(t).(rpcws.HistoryBroker)
		if !ok {
			t.Fatal("the broker does not implement rpcws.HistoryBroker")
		}
		got := &positioned{at: make(map[string][]atEvent), plain: make(map[string][]string), change: make(chan struct{}, 1)}
		if err := b.Start(got); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		nodes[i] = &historyNode{b: b, got: got}
	}
	return nodes
}

func policy(size int, ttl time.Duration) rpcws.HistoryPolicy {
	return rpcws.HistoryPolicy{Size: size, TTL: ttl}
}

// ctxFor returns a context bounded by Wait.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	t.Cleanup(cancel)
	return ctx
}

// uniqueSubject returns a topic subject no other test uses, so that
// suites may share an engine.
func uniqueSubject(name string) string {
	return "rpcws.t." + name + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func (n *historyNode) subscribe(t *testing.T, subject string) {
	t.Helper()
	if err := n.b.Subscribe(ctxFor(t), subject); err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
}

func (n *historyNode) publish(t *testing.T, subject, msg string, p rpcws.HistoryPolicy) rpcws.Position {
	t.Helper()
	pos, err := n.b.PublishHistory(ctxFor(t), subject, []byte(msg), p)
	if err != nil {
		t.Fatalf("publish with history to %s: %v", subject, err)
	}
	return pos
}

// publishN publishes messages "1" to "count" and returns the last position.
func (n *historyNode) publishN(t *testing.T, subject string, count int, p rpcws.HistoryPolicy) rpcws.Position {
	t.Helper()
	var pos rpcws.Position
	for i := 1; i <= count; i++ {
		pos = n.publish(t, subject, strconv.Itoa(i), p)
	}
	return pos
}

// read returns the topic's position and its last limit events above after.
func (n *historyNode) read(t *testing.T, subject string, after uint64, limit int) (rpcws.Position, []rpcws.HistoryEvent) {
	t.Helper()
	pos, evs, err := n.b.History(ctxFor(t), subject, after, limit)
	if err != nil {
		t.Fatalf("history of %s: %v", subject, err)
	}
	return pos, evs
}

// waitCount waits until the node received n messages on subject through
// ReceiveAt.
func (n *historyNode) waitCount(t *testing.T, subject string, count int) []atEvent {
	t.Helper()
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	for {
		if evs := n.got.events(subject); len(evs) >= count {
			return evs
		}
		select {
		case <-n.got.change:
		case <-deadline.C:
			t.Fatalf("%d of %d messages with positions after %v", len(n.got.events(subject)), count, Wait)
		}
	}
}

// checkRun fails unless evs hold the offsets from+1, from+2, … in order,
// all of epoch.
func checkRun(t *testing.T, what string, evs []rpcws.HistoryEvent, epoch string, from uint64, pos rpcws.Position) {
	t.Helper()
	if pos.Epoch != epoch {
		t.Fatalf("%s: epoch %q, want %q", what, pos.Epoch, epoch)
	}
	for i, e := range evs {
		if e.Offset != from+uint64(i)+1 {
			t.Fatalf("%s: event %d has offset %d, want %d (offsets %v)", what, i, e.Offset, from+uint64(i)+1, offsets(evs))
		}
	}
}

func offsets(evs []rpcws.HistoryEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Offset
	}
	return out
}

func testGapFree(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newHistoryNodes(t, newBroker, 3)
	subject := uniqueSubject("gapfree")
	for _, n := range nodes {
		n.subscribe(t, subject)
	}
	const each = 40
	p := policy(1000, time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*each)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				if _, err := n.b.PublishHistory(context.Background(), subject, fmt.Appendf(nil, "n%d-%d", i, k), p); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := len(nodes) * each
	pos, evs := nodes[0].read(t, subject, 0, 1000)
	if pos.Offset != uint64(total) || len(evs) != total {
		t.Fatalf("position %+v and %d events after %d publishes", pos, len(evs), total)
	}
	checkRun(t, "history", evs, pos.Epoch, 0, pos)
	for i, n := range nodes {
		got := n.waitCount(t, subject, total)
		for k, e := range got {
			if e.pos.Offset != uint64(k+1) || e.pos.Epoch != pos.Epoch || e.msg != string(evs[k].Msg) {
				t.Fatalf("node %d: message %d is %q at %+v; history has %q at %d", i, k, e.msg, e.pos, evs[k].Msg, evs[k].Offset)
			}
		}
	}
}

func testReadAfter(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	n := newHistoryNodes(t, newBroker, 1)[0]
	subject := uniqueSubject("after")
	last := n.publishN(t, subject, 10, policy(100, time.Minute))
	if last.Offset != 10 {
		t.Fatalf("tenth publish at offset %d", last.Offset)
	}
	for _, tc := range []struct {
		after       uint64
		limit, want int
		from        uint64
	}{{4, 100, 6, 4}, {4, 3, 3, 7}, {0, 0, 0, 0}, {10, 100, 0, 10}, {0, 10, 10, 0}, {12, 100, 0, 12}} {
		pos, evs := n.read(t, subject, tc.after, tc.limit)
		if pos != last || len(evs) != tc.want {
			t.Fatalf("after %d limit %d: %+v and %d events, want %+v and %d", tc.after, tc.limit, pos, len(evs), last, tc.want)
		}
		checkRun(t, fmt.Sprintf("after %d limit %d", tc.after, tc.limit), evs, last.Epoch, tc.from, pos)
		for _, e := range evs {
			if string(e.Msg) != strconv.FormatUint(e.Offset, 10) {
				t.Fatalf("event at offset %d holds %q", e.Offset, e.Msg)
			}
		}
	}
}

func testTrim(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	n := newHistoryNodes(t, newBroker, 1)[0]
	subject := uniqueSubject("trim")
	const size, count = 5, 300
	last := n.publishN(t, subject, count, policy(size, time.Minute))
	pos, evs := n.read(t, subject, 0, 1000)
	if pos != last {
		t.Fatalf("position %+v, want %+v", pos, last)
	}
	if len(evs) < size || len(evs) > count/2 {
		t.Fatalf("%d events kept with size %d after %d publishes: want at least the size, and the history trimmed", len(evs), size, count)
	}
	checkRun(t, "trimmed", evs, last.Epoch, count-uint64(len(evs)), pos)
}

func testHistoryTTL(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	n := newHistoryNodes(t, newBroker, 1)[0]
	subject := uniqueSubject("ttl")
	p := policy(100, time.Second)
	last := n.publishN(t, subject, 3, p)
	waitFor(t, "the events to expire after their TTL", func() bool {
		_, evs := n.read(t, subject, 0, 100)
		return len(evs) == 0
	})
	pos, _ := n.read(t, subject, 0, 100)
	if pos != last {
		t.Fatalf("a quiet topic's position is %+v after its events expired, want %+v", pos, last)
	}
	if next := n.publish(t, subject, "4", p); next.Epoch != last.Epoch || next.Offset != 4 {
		t.Fatalf("publish after expiry at %+v, want epoch %q offset 4", next, last.Epoch)
	}
}

func testEpoch(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newHistoryNodes(t, newBroker, 2)
	subject := uniqueSubject("epoch")
	a, _ := nodes[0].read(t, subject, 0, 10)
	b, _ := nodes[1].read(t, subject, 0, 10)
	if a.Epoch == "" || len(a.Epoch) > 64 || a != b || a.Offset != 0 {
		t.Fatalf("an unknown topic reads as %+v on one node and %+v on another: want one epoch of 1 to 64 bytes, offset 0", a, b)
	}
	if pos := nodes[1].publish(t, subject, "1", policy(10, time.Minute)); pos.Epoch != a.Epoch || pos.Offset != 1 {
		t.Fatalf("first publish at %+v, want epoch %q offset 1", pos, a.Epoch)
	}
	if again, _ := nodes[0].read(t, subject, 0, 0); again.Epoch != a.Epoch || again.Offset != 1 {
		t.Fatalf("position %+v after the first publish, want epoch %q offset 1", again, a.Epoch)
	}
}

func testPlainPublish(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	n := newHistoryNodes(t, newBroker, 1)[0]
	subject := uniqueSubject("plain")
	n.subscribe(t, subject)
	if err := n.b.Publish(ctxFor(t), subject, []byte("plain")); err != nil {
		t.Fatal(err)
	}
	n.publish(t, subject, "kept", policy(10, time.Minute))
	n.waitCount(t, subject, 1)
	waitFor(t, "the plain message through Receive", func() bool { return len(n.got.plains(subject)) == 1 })
	if got := n.got.events(subject); len(got) != 1 || got[0].msg != "kept" || got[0].pos.Offset != 1 {
		t.Fatalf("through ReceiveAt: %+v, want only %q at offset 1", got, "kept")
	}
	if got := n.got.plains(subject); got[0] != "plain" {
		t.Fatalf("through Receive: %q, want %q", got, "plain")
	}
	if pos, evs := n.read(t, subject, 0, 10); pos.Offset != 1 || len(evs) != 1 {
		t.Fatalf("a plain publish changed the history: %+v, %d events", pos, len(evs))
	}
}
