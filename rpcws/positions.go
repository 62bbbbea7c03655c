package rpcws

import (
	"context"
	"sync"

	"github.com/rpcws/rpcws/codec"
)

// Where each connection stands in each of its topics, when the handler
// keeps history: the epoch and offset of the last event it was given. A
// topic's gate delivers an event at most once (an offset at or below the
// last is dropped) and tells an epoch change with a resync. While a join
// or a recovery is under way the gate is held: live events wait in it,
// bounded, until the joined frame or the replay is written, and are then
// merged by offset.

// positions are one connection's gates, by topic name.
type positions struct {
	mu    sync.Mutex
	gates map[string]*gate

	// writing is held while a gate opens and while rpcws.left is written,
	// so that a leave's frame never comes before the joined frame of a
	// join it overtook.
	writing sync.Mutex
}

// gate is one topic's position on one connection; guarded by positions.mu.
type gate struct {
	epoch    string
	last     uint64
	held     bool
	buf      []heldEvent
	bufBytes int
	overflow bool // events were dropped while held: the topic needs a resync
}

// heldEvent is an event that reached a held gate.
type heldEvent struct {
	pos   Position
	frame []byte // nil when the event excluded this connection
}

// Bounds of a held gate: beyond them events are dropped, and the topic
// gets a resync when the gate opens.
const (
	maxHeldBytes = 4 << 20
	minHeld      = 64
)

// hold creates p's gate for topic, held; the caller holds cluster.mu.
func (p *Peer) hold(topic string) *gate {
	p.pos.mu.Lock()
	defer p.pos.mu.Unlock()
	if p.pos.gates == nil {
		p.pos.gates = make(map[string]*gate)
	}
	if old := p.pos.gates[topic]; old != nil {
		p.release(old.bufBytes) // replaced: what it held is given back
		old.buf, old.bufBytes = nil, 0
	}
	g := &gate{held: true}
	p.pos.gates[topic] = g
	return g
}

// dropGate forgets p's gate for topic: its events reach it no more, and
// the bytes it held are given back.
func (p *Peer) dropGate(topic string) {
	p.pos.mu.Lock()
	g := p.pos.gates[topic]
	delete(p.pos.gates, topic)
	var held int
	if g != nil {
		held, g.buf, g.bufBytes = g.bufBytes, nil, 0
	}
	p.pos.mu.Unlock()
	p.release(held)
}

// release gives back n bytes that p's held gates had charged.
func (p *Peer) release(n int) {
	if n > 0 && p.adm != nil {
		p.adm.Charge(-int64(n))
	}
}

// The cluster takes positioned messages from a [HistoryBroker].
var _ HistoryReceiver = (*cluster)(nil)

// ReceiveAt delivers a message published with a position to the local
// members of its topic, each at most once and in offset order (see gate).
// It never waits on a connection. A replica without history delivers it
// as Receive does, without its position.
func (c *cluster) ReceiveAt(subject string, pos Position, msg []byte) {
	if !c.hist.on() {
		c.Receive(subject, msg)
		return
	}
	env, frame, ok := c.readEvent(subject, msg)
	if !ok {
		return
	}
	c.mu.RLock()
	s := c.subs[subject]
	name := ""
	if s != nil {
		name = s.name
	}
	c.mu.RUnlock()
	if s == nil || s.kind != kindTopic {
		return // no member here any more
	}
	frame = codec.AppendPosition(make([]byte, 0, len(frame)+len(name)+len(pos.Epoch)+48), frame, name, pos.Epoch, pos.Offset)
	if c.maxFrame > 0 && len(frame) > c.maxFrame {
		c.refuse(subject, errEventTooLarge, len(msg))
		return
	}
	for _, p := range c.recipients(subject, "") {
		f := frame
		if env.except != "" && p.id == env.except {
			f = nil
		}
		c.deliverAt(p, name, pos, f)
	}
}

// deliverAt hands one positioned event to p's gate for topic: queued at
// once when the gate is open, kept when it is held. A nil frame is an
// event that excluded p: it moves the position and is not written.
func (c *cluster) deliverAt(p *Peer, topic string, pos Position, frame []byte) {
	p.pos.mu.Lock()
	defer p.pos.mu.Unlock()
	g := p.pos.gates[topic]
	switch {
	case g == nil:
		return // left meanwhile
	case g.held:
		c.keepHeld(p, g, pos, frame)
		return
	}
	if pos.Epoch != g.epoch {
		if g.epoch != "" { // "": not known yet (the engine did not tell it)
			c.resyncTopic(p, topic)
		}
		g.epoch, g.last = pos.Epoch, 0
	}
	if pos.Offset <= g.last {
		return // had it already
	}
	g.last = pos.Offset
	if frame != nil {
		c.push(p, frame, topic)
	}
}

// keepHeld keeps an event in p's held gate g, within its bounds: the
// gate's own, and the handler's byte budget, which the event is charged to
// until written (a frame shared with other connections is charged to each,
// as their outboxes do).
func (c *cluster) keepHeld(p *Peer, g *gate, pos Position, frame []byte) {
	limit := minHeld
	if c.hist != nil {
		limit = max(2*c.hist.policy.Size, minHeld)
	}
	if g.overflow || len(g.buf) >= limit || g.bufBytes+len(frame) > maxHeldBytes ||
		p.adm != nil && !p.adm.Hold(int64(len(frame))) {
		g.overflow = true
		return
	}
	g.buf = append(g.buf, heldEvent{pos: pos, frame: frame})
	g.bufBytes += len(frame)
}

// resyncTopic queues a resync naming one topic to p, without waiting.
func (c *cluster) resyncTopic(p *Peer, topic string) {
	frame, err := resyncFrame([]string{topic})
	if err != nil {
		return
	}
	c.resyncs.Add(1)
	c.push(p, frame, ResyncEvent)
}

// resyncFrame encodes a resync event naming topics.
func resyncFrame(topics []string) ([]byte, error) {
	if topics == nil {
		topics = []string{}
	}
	return codec.EncodeEvent(ResyncEvent, struct {
		Topics []string `json:"topics"`
	}{topics})
}

// open writes first (a joined frame, or a replay) to p, then the events
// that the held gate g of topic kept meanwhile, merged by offset after
// position at, and opens the gate. It waits for room in p's outbox as
// Notify does. It reports whether events were dropped while the gate was
// held (the topic then needs a resync); on a write error the gate stays
// held and the error is returned. A gate that p left meanwhile is not
// opened, and nothing is written.
func (c *cluster) open(ctx context.Context, p *Peer, topic string, g *gate, at Position, first [][]byte) (overflow bool, err error) {
	p.pos.writing.Lock()
	defer p.pos.writing.Unlock()
	p.pos.mu.Lock()
	left := p.pos.gates[topic] != g
	p.pos.mu.Unlock()
	if left {
		return false, nil // the connection left the topic meanwhile
	}
	for _, f := range first {
		if err := p.send(ctx, f); err != nil {
			return false, err
		}
	}
	p.pos.mu.Lock()
	g.epoch, g.last = at.Epoch, at.Offset
	for {
		buf, held := g.buf, g.bufBytes
		g.buf, g.bufBytes = nil, 0
		if len(buf) == 0 {
			g.held = false
			overflow, g.overflow = g.overflow, false
			p.pos.mu.Unlock()
			return overflow, nil
		}
		var out [][]byte
		for _, e := range buf {
			if e.pos.Epoch != g.epoch {
				if f, err := resyncFrame([]string{topic}); err == nil && g.epoch != "" {
					out = append(out, f)
				}
				g.epoch, g.last = e.pos.Epoch, 0
			}
			if e.pos.Offset <= g.last {
				continue
			}
			g.last = e.pos.Offset
			if e.frame != nil {
				out = append(out, e.frame)
			}
		}
		p.pos.mu.Unlock()
		err := c.sendAll(ctx, p, out)
		p.release(held) // written, or never will be
		if err != nil {
			return false, err
		}
		p.pos.mu.Lock()
	}
}

// forgetEpochs makes p's open gates of topics take the next event's epoch
// and offset as they come, with no resync of their own: p was just sent
// one naming them (the broker lost messages, and the engine may have lost
// the topics' history with them).
func (p *Peer) forgetEpochs(topics []string) {
	p.pos.mu.Lock()
	defer p.pos.mu.Unlock()
	for _, t := range topics {
		if g := p.pos.gates[t]; g != nil && !g.held {
			g.epoch, g.last = "", 0
		}
	}
}

// sendAll writes frames to p, waiting for room as Notify does.
func (c *cluster) sendAll(ctx context.Context, p *Peer, frames [][]byte) error {
	for _, f := range frames {
		if err := p.send(ctx, f); err != nil {
			return err
		}
		c.delivered.Add(1)
	}
	return nil
}

// positionOf returns p's position in topic, and whether it has one.
func (p *Peer) positionOf(topic string) (Position, bool) {
	p.pos.mu.Lock()
	defer p.pos.mu.Unlock()
	g := p.pos.gates[topic]
	if g == nil {
		return Position{}, false
	}
	return Position{Epoch: g.epoch, Offset: g.last}, true
}
