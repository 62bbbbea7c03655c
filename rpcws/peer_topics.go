package rpcws

import (
	"context"
	"fmt"
)

// ID returns the connection's ID, unique across replicas: the address of
// [ToPeer]. It is "" on a nil *Peer.
func (p *Peer) ID() string {
	if p == nil {
		return ""
	}
	return p.id
}

// Address returns the address of this connection alone.
func (p *Peer) Address() Address { return ToPeer(p.ID()) }

// User returns the connection's user name (see [HandlerOptions.UserName]),
// or "" when it has none.
func (p *Peer) User() string {
	if p == nil || p.h == nil {
		return ""
	}
	p.h.cluster.mu.RLock()
	defer p.h.cluster.mu.RUnlock()
	return p.addr.user
}

// Join makes the connection a member of topic: when Join returns nil, an
// event published to [Topic](topic) afterwards, from any replica, reaches
// it. Joining twice is joining once. The connection leaves all its topics
// when it closes.
//
// Join waits for the broker to subscribe this replica to the topic (when
// the connection is its first member here) for at most
// [HandlerOptions.JoinTimeout] (2 s by default) or until ctx ends, and
// holds no lock meanwhile. When the broker is slow, stalled or unreachable,
// Join still succeeds at that bound: the interest is kept, and once the
// subscription takes effect the connection receives a [ResyncEvent] naming
// the topic, for the events it may have missed meanwhile.
//
// With [HandlerOptions.History], Join then writes the connection's
// rpcws.joined frame, with the topic's position, before any event of the
// topic and before the reply of the request that joined; it fails with a
// [*BrokerError] (code Unavailable), the join undone, when the engine does
// not tell the position within one more JoinTimeout.
//
// Errors: on a nil *Peer, [ErrNoPeer]; a bad name, [ErrBadName]; after
// the connection closed, [ErrClosed]; over [HandlerOptions.MaxTopicsPerConn]
// or [HandlerOptions.MaxTopics], or when the handler's byte budget has no
// room for the membership, an error that matches [ErrTooManyTopics] (code
// TooManyTopics on the wire when a method returns it).
func (p *Peer) Join(ctx context.Context, topic string) error {
	if p == nil || p.h == nil {
		return ErrNoPeer
	}
	if !validName(topic) {
		return fmt.Errorf("%w: topic %q", ErrBadName, topic)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.h.cluster.join(ctx, p, topic)
}

// Leave takes the connection out of topic. Leaving a topic one is not in
// succeeds. It never waits on the broker's subscriptions; with
// [HandlerOptions.History] it writes an rpcws.left frame to the
// connection (waiting for room as Notify does), and with History or
// [HandlerOptions.Presence] it waits at most [HandlerOptions.JoinTimeout]
// for the engine to record that the connection left. On a nil *Peer it returns
// [ErrNoPeer]; a bad name is [ErrBadName].
func (p *Peer) Leave(ctx context.Context, topic string) error {
	if p == nil || p.h == nil {
		return ErrNoPeer
	}
	if !validName(topic) {
		return fmt.Errorf("%w: topic %q", ErrBadName, topic)
	}
	p.h.cluster.leave(ctx, p, topic)
	return nil
}

// Topics returns the topics the connection is a member of, sorted.
func (p *Peer) Topics() []string {
	if p == nil || p.h == nil {
		return nil
	}
	p.h.cluster.mu.RLock()
	defer p.h.cluster.mu.RUnlock()
	return p.topicsLocked()
}
