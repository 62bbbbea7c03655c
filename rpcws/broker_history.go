package rpcws

import (
	"context"
	"errors"
	"time"
)

// The optional broker interfaces of history, sessions and presence (see
// PROTOCOL.md, "Sessions and recovery"). A [Broker] implements those its
// engine can keep; the handler discovers them with a type assertion when
// [HandlerOptions.History] or [HandlerOptions.Presence] asks for them. The
// in-process [MemoryBus] implements all three; so do the Redis broker
// (streams, hashes and sorted sets) and the NATS broker (JetStream and its
// key-value buckets). brokertest.RunHistory, RunSessions and RunPresence
// are their conformance suites.

// Position is where a topic's events stand: the topic's epoch and the
// offset of its last event (0 when none was published in that epoch).
// Offsets are 1, 2, 3, … with no gap within an epoch, counted across every
// replica; the epoch changes only when the topic's history may have lost
// events (the engine restarted without persistence, say, or the topic's
// position expired), and offsets may then start again.
type Position struct {
	Epoch  string `json:"epoch"`  // opaque, at most 64 bytes, never empty
	Offset uint64 `json:"offset"` // of the last event; 0: none yet
}

// HistoryEvent is one event kept in a topic's history: its offset and the
// message as published (the handler's broker envelope).
type HistoryEvent struct {
	Offset uint64
	Msg    []byte
}

// HistoryPolicy says how much of a topic's history a broker keeps.
type HistoryPolicy struct {
	// Size is how many of a topic's latest events are kept, at least; a
	// broker may keep a few more (Redis's MAXLEN ~), never fewer while
	// they are younger than TTL.
	Size int

	// TTL is how long an event is kept: an older one may be dropped. The
	// topic's Position is kept apart from its events, for at least
	// max(TTL, 24h) after its last publish, so that a quiet topic stays
	// recoverable after its events expire.
	TTL time.Duration
}

// HistoryBroker is a [Broker] that keeps the recent events of each topic,
// so that a client that reconnects gets the events it missed.
type HistoryBroker interface {
	Broker

	// PublishHistory appends msg to the history of the topic whose subject
	// is subject and publishes it to that subject, in one step that gives
	// it the topic's next offset: the history, the position and what
	// subscribers receive never disagree, whatever the number of nodes
	// publishing at once. It returns the position of msg. Subscribers
	// receive it through [HistoryReceiver.ReceiveAt], with that position,
	// in offset order.
	PublishHistory(ctx context.Context, subject string, msg []byte, p HistoryPolicy) (Position, error)

	// History returns the topic's current position and its last limit
	// events whose offset is above after that are still kept, oldest
	// first (limit 0: the position alone). The events are those of the
	// returned position's epoch. A topic never published to (or whose
	// position expired) gets an epoch then, the same on every node and
	// every call until its history is lost, and offset 0.
	History(ctx context.Context, subject string, after uint64, limit int) (Position, []HistoryEvent, error)
}

// HistoryReceiver is what a [HistoryBroker] delivers to: the handler's
// [BrokerReceiver] implements it too. A message published with
// PublishHistory arrives through ReceiveAt, never through Receive; for one
// subject the broker calls it from one goroutine at a time, in offset
// order.
type HistoryReceiver interface {
	BrokerReceiver
	ReceiveAt(subject string, pos Position, msg []byte)
}

// ErrNoSession is the error of [SessionBroker.TakeSession] for a session
// that is unknown, expired or already taken.
var ErrNoSession = errors.New("rpcws: no such session")

// SessionBroker is a [Broker] that keeps sessions, so that any replica can
// restore the topics of a client that reconnects. A session's record is
// opaque to the broker; its id is a secret that the broker never logs.
type SessionBroker interface {
	Broker

	// SaveSession stores record under id, replacing any record there, to
	// expire after ttl.
	SaveSession(ctx context.Context, id string, record []byte, ttl time.Duration) error

	// TouchSessions sets the expiry of every session of ids that exists to
	// ttl from now, in as few round trips as the engine allows (a replica
	// vouches for all its live connections at once).
	TouchSessions(ctx context.Context, ids []string, ttl time.Duration) error

	// TakeSession returns the record of id and deletes it, in one step: of
	// any number of callers on any nodes, one gets it. A session unknown,
	// expired or already taken is [ErrNoSession].
	TakeSession(ctx context.Context, id string) ([]byte, error)
}

// PresenceEntry is one connection in a topic: its peer ID and what the
// handler keeps of it (its user).
type PresenceEntry struct {
	Topic string // the topic's subject
	Peer  string
	Info  []byte
}

// PresenceBroker is a [Broker] that keeps, for each topic, the connections
// in it on every replica.
type PresenceBroker interface {
	Broker

	// AddPresence records entries, or refreshes them, to expire after ttl
	// unless added again: a replica re-adds its live entries every so
	// often, and those of a replica that died go within ttl.
	AddPresence(ctx context.Context, ttl time.Duration, entries ...PresenceEntry) error

	// RemovePresence deletes entries at once (their Info is ignored).
	RemovePresence(ctx context.Context, entries ...PresenceEntry) error

	// Presence returns the entries of the topic whose subject is subject
	// that have not expired, once each, in no set order.
	Presence(ctx context.Context, subject string) ([]PresenceEntry, error)
}
