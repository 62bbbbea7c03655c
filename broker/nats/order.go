package nats

import (
	"slices"
	"strconv"
	"sync"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rpcws/rpcws/rpcws"
)

// reorderWait is how long a republished event waits for the events of
// its topic before it that have not arrived; past it they count as lost.
const reorderWait = 200 * time.Millisecond

// maxHeld bounds the events one topic holds while it waits.
const maxHeld = 1024

// positioned is a republished event: its subject, position, stream
// sequence, and the stream sequence of its topic's event before it.
type positioned struct {
	subject   string
	pos       rpcws.Position
	seq, prev uint64
	data      []byte
}

// orderer puts the republished events of each topic back in offset order
// before they are delivered. NATS 2.9 stores a stream's messages one at a
// time, but republishes each after letting go of the stream, so two
// events published at once from two connections may reach subscribers
// the wrong way round. Each republished event names the stream sequence
// of its topic's event before it (Nats-Last-Sequence): an event whose
// predecessor was delivered is delivered at once, and so are those held
// that follow it; one whose predecessor has not arrived is held, at most
// reorderWait and maxHeld events, after which what is missing is
// reported lost and what is held delivered. An event that arrives after
// a later one of its topic was delivered is dropped and reported lost (the
// handler resyncs the topic). It is used by the reading goroutine alone,
// but for forget.
type orderer struct {
	mu     sync.Mutex // guards topics
	topics map[string]*chain
}

// chain is one topic's order: the epoch and stream sequence of its last
// delivered event, and the events held, by sequence.
type chain struct {
	epoch string
	seq   uint64
	held  []positioned
	since time.Time // when the oldest held event arrived
}

// parsePositioned reads a message that the history stream republished; ok
// is false for any other message.
func parsePositioned(m *gonats.Msg) (p positioned, ok bool) {
	if len(m.Header) == 0 || m.Header.Get(jetstream.StreamHeader) != historyStream {
		return p, false
	}
	pos, err := positionOf(m.Header)
	if err != nil {
		return p, false
	}
	seq, err1 := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	prev, err2 := strconv.ParseUint(m.Header.Get("Nats-Last-Sequence"), 10, 64)
	if err1 != nil || err2 != nil {
		return p, false
	}
	return positioned{subject: m.Subject, pos: pos, seq: seq, prev: prev, data: m.Data}, true
}

// add takes one event and returns those to deliver now, in order;
// whether events of its topic were lost; and whether the topic now holds
// events, waiting.
func (o *orderer) add(p positioned, now time.Time) (out []positioned, lost, waiting bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.topics == nil {
		o.topics = make(map[string]*chain)
	}
	c := o.topics[p.subject]
	switch {
	case c == nil || c.epoch != p.pos.Epoch: // a topic's first event here, or a new epoch
		if c != nil && len(c.held) > 0 {
			out, lost = c.release(), true
		}
		o.topics[p.subject] = &chain{epoch: p.pos.Epoch, seq: p.seq}
		return append(out, p), lost, false
	case p.seq <= c.seq: // late: a later one was delivered
		return nil, true, len(c.held) > 0
	case p.prev == c.seq:
		c.seq = p.seq
		out = c.follow(append(out, p))
		return out, false, len(c.held) > 0
	}
	i, _ := slices.BinarySearchFunc(c.held, p.seq, func(h positioned, seq uint64) int { return cmpSeq(h.seq, seq) })
	c.held = slices.Insert(c.held, i, p)
	if len(c.held) == 1 {
		c.since = now
	}
	if len(c.held) > maxHeld {
		return c.release(), true, false
	}
	return nil, false, true
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// follow appends to out the held events that now follow the last one
// delivered.
func (c *chain) follow(out []positioned) []positioned {
	for len(c.held) > 0 && c.held[0].prev == c.seq {
		c.seq = c.held[0].seq
		out = append(out, c.held[0])
		c.held = c.held[1:]
	}
	if len(c.held) == 0 {
		c.held = nil
	}
	return out
}

// release gives up waiting: it returns every held event, in order.
func (c *chain) release() []positioned {
	out := c.held
	c.seq = out[len(out)-1].seq
	c.held = nil
	return out
}

// expire releases the topics that waited reorderWait by now, calling
// deliver for each with its events and lost true, and returns when the
// next one will have waited that long (zero: none waits).
func (o *orderer) expire(now time.Time, deliver func(subject string, out []positioned)) time.Time {
	o.mu.Lock()
	var next time.Time
	type release struct {
		subject string
		out     []positioned
	}
	var due []release
	for subject, c := range o.topics {
		if len(c.held) == 0 {
			continue
		}
		if at := c.since.Add(reorderWait); !now.Before(at) {
			due = append(due, release{subject, c.release()})
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	o.mu.Unlock()
	for _, r := range due {
		deliver(r.subject, r.out)
	}
	return next
}

// forget drops what the orderer keeps of subject (unsubscribed), or of
// every topic (nil: the connection to NATS was lost).
func (o *orderer) forget(subject *string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if subject == nil {
		clear(o.topics)
		return
	}
	delete(o.topics, *subject)
}
