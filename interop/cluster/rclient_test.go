package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/rpcws"
)

// rclient is a client written from PROTOCOL.md's frames alone, with no
// application code for recovery: it keeps its session and, per topic, the
// position of the last event it received; when its connection drops it
// redials (the next URL of its list first) and sends rpcws.recover as the
// first frame, as the reference clients do. It records every topic.message
// it receives (the publisher's sequence numbers), every rpcws.resync and
// every recover reply, and what broke the protocol's promises.
type rclient struct {
	name   string
	urls   []string // dialled in turn, from the one after the last
	topics []string // joined on the first connection

	// hold, if set, runs after a drop and before the redial: the test
	// keeps a client away past the history or the window with it.
	hold func(ctx context.Context) error

	mu        sync.Mutex
	next      int // index into urls of the next dial
	session   string
	pos       map[string]rpcws.Position
	seqs      map[string][]int // per topic, data.data of each topic.message, in order
	resyncs   []string
	recovers  []rpcws.RecoverReply
	drops     int
	broken    []string // broken promises: offsets that skip or repeat, events in no topic
	lastErr   error
	connected bool

	// While a recovery is under way (from rpcws.recover to its reply), a
	// topic's live events may come before the resync that names it: a
	// jump then waits here until the resync excuses it, or the reply
	// finds it unexcused.
	recovering bool
	jumps      map[string]string
	fresh      map[string]bool // topics a resync named: their next event may jump

	trace []string // the first frames after each reconnection, for failure messages

	changed chan struct{} // a value after each recorded change
	ready   chan error    // the first connection's joins: nil, or why not
	done    chan struct{} // run has returned
}

func newRClient(name string, urls, topics []string) *rclient {
	return &rclient{
		name: name, urls: urls, topics: topics,
		pos: map[string]rpcws.Position{}, seqs: map[string][]int{}, fresh: map[string]bool{},
		changed: make(chan struct{}, 1), ready: make(chan error, 1), done: make(chan struct{}),
	}
}

// frame is any frame a server writes.
type frame struct {
	ID      json.RawMessage `json:"id"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Topic   string          `json:"topic"`
	Epoch   string          `json:"epoch"`
	Offset  uint64          `json:"offset"`
}

// run connects, joins, and reconnects after every drop until ctx ends.
func (c *rclient) run(ctx context.Context) {
	defer close(c.done)
	for first := true; ctx.Err() == nil; first = false {
		conn, err := c.dial(ctx)
		if err != nil {
			c.fail(err, first)
			return
		}
		err = c.serve(ctx, conn, first)
		conn.CloseNow()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, errDropped) {
			c.fail(err, first)
			return
		}
		c.record(func() { c.drops++; c.connected = false })
		if c.hold != nil && c.hold(ctx) != nil {
			return
		}
	}
}

func (c *rclient) fail(err error, first bool) {
	c.record(func() { c.lastErr = err })
	if first {
		select {
		case c.ready <- err:
		default: // the joins went well, and the first connection failed later
		}
	}
}

// dial tries the URLs in turn, 50 ms apart, for up to wait.
func (c *rclient) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		c.mu.Lock()
		url := c.urls[c.next%len(c.urls)]
		c.next++
		c.mu.Unlock()
		conn, _, err := websocket.Dial(ctx, url, nil)
		if err == nil {
			conn.SetReadLimit(1 << 20)
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: no replica took the connection within %v: %w", c.name, wait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errDropped is a connection that ended under the client.
var errDropped = errors.New("connection dropped")

// serve runs one connection: the joins (first) or the recovery, then reads
// until it drops.
func (c *rclient) serve(ctx context.Context, conn *websocket.Conn, first bool) error {
	// The old session and positions, taken before the new connection's
	// rpcws.session (its first frame) can replace them.
	c.mu.Lock()
	args := rpcws.RecoverArgs{Session: c.session, Topics: maps(c.pos)}
	if !first {
		c.recovering, c.jumps = true, map[string]string{}
		c.trace = append(c.trace, "recover")
	}
	c.mu.Unlock()
	replies := make(chan frame, 1)
	readErr := make(chan error, 1)
	go func() { readErr <- c.read(ctx, conn, replies) }()
	call := func(id, typ string, data any) (frame, error) {
		b, _ := json.Marshal(map[string]any{"id": id, "type": typ, "data": data})
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
			return frame{}, errDropped
		}
		select {
		case f := <-replies:
			if f.Type == "error" {
				return f, fmt.Errorf("%s %s: %s: %s", c.name, typ, f.Code, f.Message)
			}
			return f, nil
		case err := <-readErr:
			readErr <- err
			return frame{}, errDropped
		case <-wctx.Done():
			return frame{}, fmt.Errorf("%s: no reply to %s within %v", c.name, typ, wait)
		}
	}
	if first {
		for i, topic := range c.topics {
			if _, err := call(strconv.Itoa(i), "topic.join", map[string]string{"topic": topic}); err != nil {
				return err
			}
		}
		c.record(func() { c.connected = true })
		c.ready <- nil
	} else {
		f, err := call("r", rpcws.RecoverMethod, args)
		if err != nil {
			return err
		}
		var reply rpcws.RecoverReply
		if err := json.Unmarshal(f.Data, &reply); err != nil {
			return fmt.Errorf("%s: recover reply %s: %v", c.name, f.Data, err)
		}
		c.record(func() {
			c.tracef("reply %s", f.Data)
			c.recovered(reply)
		})
	}
	select {
	case <-readErr:
		return errDropped
	case <-ctx.Done():
		return ctx.Err()
	}
}

func maps(m map[string]rpcws.Position) map[string]rpcws.Position {
	out := make(map[string]rpcws.Position, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// recovered takes the recover reply's positions: the topics the
// connection is in now and where they stand after the replay. A live event
// may have come first: a position the client is already past stays.
func (c *rclient) recovered(reply rpcws.RecoverReply) {
	c.recovers = append(c.recovers, reply)
	c.connected = true
	c.recovering = false
	for _, jump := range c.jumps {
		c.broken = append(c.broken, jump+", and no resync named the topic")
	}
	for topic := range c.pos {
		if _, ok := reply.Topics[topic]; !ok {
			delete(c.pos, topic)
		}
	}
	for topic, r := range reply.Topics {
		p, ok := c.pos[topic]
		switch {
		case ok && r.Recovered && (p.Epoch != r.Epoch || p.Offset < r.Offset):
			c.broken = append(c.broken, fmt.Sprintf("%s recovered at %s/%d, but the last event replayed was %s/%d", topic, r.Epoch, r.Offset, p.Epoch, p.Offset))
		case !ok || p.Epoch != r.Epoch || p.Offset < r.Offset:
			c.pos[topic] = rpcws.Position{Epoch: r.Epoch, Offset: r.Offset}
		}
	}
}

// read reads frames until the connection ends, records events and passes
// replies on.
func (c *rclient) read(ctx context.Context, conn *websocket.Conn, replies chan<- frame) error {
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.record(func() { c.broken = append(c.broken, "not JSON: "+string(b)) })
			continue
		}
		if len(f.ID) > 0 && string(f.ID) != "null" {
			select {
			case replies <- f:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		c.record(func() { c.event(f) })
	}
}

// tracef adds a line to the trace of a reconnection.
func (c *rclient) tracef(format string, args ...any) {
	if c.drops > 0 && len(c.trace) < 40 {
		c.trace = append(c.trace, fmt.Sprintf(format, args...))
	}
}

// event records one event frame.
func (c *rclient) event(f frame) {
	c.tracef("%s %s %d %s", f.Type, f.Topic, f.Offset, f.Data)
	switch f.Type {
	case rpcws.SessionEvent:
		var d rpcws.SessionData
		json.Unmarshal(f.Data, &d)
		if len(d.ID) < 16 || len(d.ID) > 128 {
			c.broken = append(c.broken, "session id of "+strconv.Itoa(len(d.ID))+" characters")
		}
		c.session = d.ID
	case rpcws.JoinedEvent:
		var d rpcws.JoinedData
		json.Unmarshal(f.Data, &d)
		c.pos[d.Topic] = rpcws.Position{Epoch: d.Epoch, Offset: d.Offset}
	case rpcws.LeftEvent:
		var d rpcws.LeftData
		json.Unmarshal(f.Data, &d)
		delete(c.pos, d.Topic)
	case "rpcws.resync":
		c.resyncs = append(c.resyncs, string(f.Data))
		var d struct{ Topics []string }
		json.Unmarshal(f.Data, &d)
		for _, topic := range d.Topics {
			if _, jumped := c.jumps[topic]; jumped {
				delete(c.jumps, topic) // that event was the fresh start
			} else {
				c.fresh[topic] = true
			}
		}
	case "topic.message":
		c.message(f)
	}
}

// message checks a topic event's position against the last one's and
// records its sequence number.
func (c *rclient) message(f frame) {
	p, ok := c.pos[f.Topic]
	switch {
	case f.Topic == "" || f.Epoch == "" || f.Offset == 0:
		c.broken = append(c.broken, "an event without its position: "+string(f.Data))
	case !ok:
		c.broken = append(c.broken, fmt.Sprintf("an event of %q, a topic the client is not in", f.Topic))
	case c.fresh[f.Topic]:
		if f.Epoch == p.Epoch && f.Offset <= p.Offset {
			c.broken = append(c.broken, fmt.Sprintf("%s: offset %d again after a resync", f.Topic, f.Offset))
		}
		delete(c.fresh, f.Topic)
	case f.Epoch != p.Epoch || f.Offset != p.Offset+1:
		jump := fmt.Sprintf("%s: offset %s/%d after %s/%d", f.Topic, f.Epoch, f.Offset, p.Epoch, p.Offset)
		if _, seen := c.jumps[f.Topic]; c.recovering && !seen {
			c.jumps[f.Topic] = jump
		} else {
			c.broken = append(c.broken, jump)
		}
	}
	c.pos[f.Topic] = rpcws.Position{Epoch: f.Epoch, Offset: f.Offset}
	var d struct {
		Data int `json:"data"`
	}
	json.Unmarshal(f.Data, &d)
	c.seqs[f.Topic] = append(c.seqs[f.Topic], d.Data)
}

// record changes the client's record under its lock and tells waiters.
func (c *rclient) record(change func()) {
	c.mu.Lock()
	change()
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// await waits, up to d, until cond holds over the client's record.
func (c *rclient) await(t *testing.T, d time.Duration, what string, cond func(c *rclient) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		c.mu.Lock()
		ok, err := cond(c), c.lastErr
		c.mu.Unlock()
		if ok {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		select {
		case <-c.changed:
		case <-timeout:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("%s: no %s within %v: drops %d, resyncs %v, recovers %+v, last of each topic %v, broken %v",
				c.name, what, d, c.drops, c.resyncs, c.recovers, c.tails(), c.broken)
		}
	}
}

// tails is the last sequence number received in each topic, and how many.
func (c *rclient) tails() map[string]string {
	out := map[string]string{}
	for topic, s := range c.seqs {
		if len(s) > 0 {
			out[topic] = fmt.Sprintf("%d events, last %d", len(s), s[len(s)-1])
		}
	}
	return out
}

// has reports whether the client has received seq in topic.
func (c *rclient) has(topic string, seq int) bool { return slices.Contains(c.seqs[topic], seq) }

// progress counts what a publisher has published, and lets tests wait for
// a count.
type progress struct {
	mu      sync.Mutex
	n       int
	waiters []waiter
}

type waiter struct {
	n  int
	ch chan struct{}
}

func (p *progress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.waiters = slices.DeleteFunc(p.waiters, func(w waiter) bool {
		if p.n >= w.n {
			close(w.ch)
			return true
		}
		return false
	})
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// waitFor waits until n have been published, or ctx ends.
func (p *progress) waitFor(ctx context.Context, n int) error {
	p.mu.Lock()
	if p.n >= n {
		p.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	p.waiters = append(p.waiters, waiter{n, ch})
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publish publishes data 0 to n-1 to topic through c, one every interval,
// each after the last one's reply, counting them in p.
func publish(ctx context.Context, c *rpcws.Client, topic string, n int, interval time.Duration, p *progress) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range n {
		cctx, cancel := context.WithTimeout(ctx, wait)
		err := c.CallContext(cctx, "Topic.Publish", map[string]any{"topic": topic, "data": i}, new(json.RawMessage))
		cancel()
		if err != nil {
			return fmt.Errorf("publishing %d: %w", i, err)
		}
		p.add()
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
