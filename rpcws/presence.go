package rpcws

import (
	"context"
	"strconv"
)

// Presence: which connections are in a topic, on every replica, kept in
// the broker's engine ([PresenceBroker]). A connection is added when it
// joins, removed at once when it leaves or closes, and re-added every TTL/3
// while it lives, so that those of a replica that died go within the TTL.

// Member is one connection in a topic, as [Handler.Presence] returns it:
// its [Peer.ID] and its user name ("" for none).
type Member struct {
	Peer string `json:"peer"`
	User string `json:"user"`
}

// presenceBatch is how many entries one AddPresence of the refresh carries.
const presenceBatch = 500

// entry is p's presence entry in the topic whose subject is subject.
func (p *Peer) entry(subject string) PresenceEntry {
	return PresenceEntry{Topic: subject, Peer: p.id, Info: []byte(p.addr.user)}
}

// addPresence records p in the topics of subjects, within the join timeout.
func (c *cluster) addPresence(ctx context.Context, p *Peer, subjects ...string) {
	if c.hist == nil || c.hist.pb == nil || len(subjects) == 0 {
		return
	}
	entries := make([]PresenceEntry, 0, len(subjects))
	c.mu.RLock()
	for _, s := range subjects {
		entries = append(entries, p.entry(s))
	}
	c.mu.RUnlock()
	ctx, cancel := c.joinContext(ctx)
	defer cancel()
	if err := c.hist.pb.AddPresence(ctx, c.hist.presTTL, entries...); err != nil {
		c.warn(&c.logSubscribe, "could not record a connection's presence", "peer", p.id, "error", err)
	}
}

// removePresence takes p out of the presence of the topics of subjects,
// within the join timeout.
func (c *cluster) removePresence(ctx context.Context, p *Peer, subjects ...string) {
	if c.hist == nil || c.hist.pb == nil || len(subjects) == 0 {
		return
	}
	entries := make([]PresenceEntry, 0, len(subjects))
	for _, s := range subjects {
		entries = append(entries, PresenceEntry{Topic: s, Peer: p.id})
	}
	ctx, cancel := c.joinContext(ctx)
	defer cancel()
	if err := c.hist.pb.RemovePresence(ctx, entries...); err != nil {
		c.warn(&c.logSubscribe, "could not remove a connection's presence: it stays listed until the presence TTL", "peer", p.id, "error", err)
	}
}

// refreshPresence re-adds the entries of every live connection, in
// batches.
func (c *cluster) refreshPresence(ctx context.Context) {
	var batch []PresenceEntry
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := c.hist.pb.AddPresence(ctx, c.hist.presTTL, batch...); err != nil {
			c.warn(&c.logSubscribe, "could not refresh presence", "entries", len(batch), "error", err)
		}
		batch = batch[:0]
	}
	for _, p := range c.h.Peers() {
		c.mu.RLock()
		for _, s := range p.addr.topics {
			batch = append(batch, p.entry(s.subject))
		}
		c.mu.RUnlock()
		if len(batch) >= presenceBatch {
			flush()
		}
	}
	flush()
}

// closeTopics does what a closed connection's topics need beyond the
// index: its presence removed at once, its session saved to outlive it.
func (c *cluster) closeTopics(p *Peer, topics map[string]*subscription) {
	if !c.hist.engine() {
		return
	}
	names := make([]string, 0, len(topics))
	subjects := make([]string, 0, len(topics))
	for name, s := range topics {
		names = append(names, name)
		subjects = append(subjects, s.subject)
		p.dropGate(name)
	}
	ctx, cancel := c.joinContext(context.Background())
	defer cancel()
	c.removePresence(ctx, p, subjects...)
	if c.hist.on() {
		c.endSession(ctx, p, sorted(names))
	}
}

// Presence returns the connections in topic on every replica, once each,
// in no set order. It fails with [ErrNoPresence] when the handler keeps no
// presence ([HandlerOptions.Presence]), [ErrBadName] for a bad name, and a
// [*BrokerError] when the engine does not answer.
func (h *Handler) Presence(ctx context.Context, topic string) ([]Member, error) {
	c := h.cluster
	if c.hist == nil || c.hist.pb == nil {
		return nil, ErrNoPresence
	}
	subject, _, err := Topic(topic).subject()
	if err != nil {
		return nil, err
	}
	bctx, cancel := brokerContext(ctx)
	defer cancel()
	entries, err := c.hist.pb.Presence(bctx, subject)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &BrokerError{Op: "read the presence of topic " + strconv.Quote(topic), Err: err}
	}
	seen := make(map[string]bool, len(entries))
	members := make([]Member, 0, len(entries))
	for _, e := range entries {
		if seen[e.Peer] {
			continue
		}
		seen[e.Peer] = true
		members = append(members, Member{Peer: e.Peer, User: string(e.Info)})
	}
	return members, nil
}
