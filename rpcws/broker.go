package rpcws

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// Broker carries published events between the replicas of one service, so
// that [Handler.Publish] reaches connections on every replica. A Broker is
// one node's connection to a pub/sub engine: every Handler has its own, and
// the handler owns it (it starts it in [NewHandler] and closes it in
// [Handler.Shutdown]). The in-process [MemoryBus] is the default; the
// nested modules github.com/rpcws/rpcws/broker/redis and
// github.com/rpcws/rpcws/broker/nats put Redis pub/sub and NATS core behind
// it.
//
// A broker moves opaque bytes to subjects. Subjects are made by the handler
// from the addresses: dot-separated tokens of ASCII letters, digits, '-' and
// '_', never empty, never wildcards, so every engine can take them as they
// are. Delivery is at most once; what the engine cannot deliver is reported
// through [BrokerReceiver.Lost], never hidden.
//
// The handler subscribes by interest: to a topic's subject while that
// topic has a member on this replica, to a user's subject while that user
// has a connection here, and to its broadcast and node subjects always. It
// calls Subscribe and Unsubscribe from a few goroutines at once, each call
// bounded by a context of 5 s, but for one subject one call at a time and in
// order; it calls Subscribe again for a subject whose Subscribe failed. It
// holds no lock across a call, and joins wait for it at most
// [HandlerOptions.JoinTimeout]: a slow engine never holds up a connection.
//
// After a reconnection a broker subscribes again to every subject it holds
// (a replica may hold 100,000), in batches that keep the engine's replies
// under its output limits (see the Redis broker), and only then reports the
// gap with Lost.
//
// Later features arrive as optional interfaces that a broker may implement
// and that the handler discovers with a type assertion: presence (who is
// subscribed where) and message history (replay after a gap instead of a
// resync). Brokers written against this interface keep working unchanged.
type Broker interface {
	// Start hands the broker its receiver and lets it begin delivering. It
	// must not wait on the network: a broker whose engine is unreachable
	// starts anyway and connects when it can. The handler calls it once,
	// before any other method.
	Start(r BrokerReceiver) error

	// Subscribe registers interest in subject. When it returns nil, a
	// message published to subject afterwards by any node is delivered. The
	// interest is kept even when it returns an error (the engine was
	// unreachable, say): the broker subscribes again once it is connected,
	// and reports the gap with Lost. While the engine is known to be
	// unreachable it should fail at once rather than wait for ctx.
	Subscribe(ctx context.Context, subject string) error

	// Unsubscribe drops the interest in subject. Messages already on their
	// way may still be delivered; the handler discards them.
	Unsubscribe(ctx context.Context, subject string) error

	// Publish sends msg to every node subscribed to subject, this one
	// included. Messages published one after another by one caller reach
	// each subscriber in that order. The broker may keep msg. It returns
	// when the engine took msg, or with an error when ctx ends first or the
	// engine is unreachable; msg may then still be delivered (the engine
	// may have taken it before it stopped answering), which the handler
	// tells its callers (see [BrokerError]).
	Publish(ctx context.Context, subject string, msg []byte) error

	// Close disconnects the broker and ends its goroutines; after it, the
	// receiver is not called again.
	Close() error
}

// BrokerReceiver is what a [Broker] delivers to: the [Handler] that owns it.
// Its methods never block on a client connection, so a broker may call them
// from its reading goroutine.
type BrokerReceiver interface {
	// Receive takes one message published to subject. For one subject the
	// broker calls it from one goroutine at a time, in the order received.
	// The receiver does not keep msg after it returns.
	Receive(subject string, msg []byte)

	// Lost reports that messages on subjects may have been lost: the
	// connection to the engine dropped and is back, or the engine cut a slow
	// subscriber. Nil subjects means every subscription. The broker calls it
	// once it is able to deliver again, so that what the clients reload is
	// not lost too; never when nothing was lost (a first connection made at
	// once is no gap).
	Lost(subjects []string)

	// Logger returns the logger the broker writes its own lines to, and
	// routes its client library's lines through: the handler's
	// [HandlerOptions.Logger], or [slog.Default]. A broker logs the loss
	// of its engine once (Warn) and its return once (Info).
	Logger() *slog.Logger
}

// ErrBrokerClosed is the error of a [MemoryBus] broker used after Close.
var ErrBrokerClosed = errors.New("rpcws: broker closed")

// MemoryBus is an in-process pub/sub engine: the brokers it makes deliver to
// each other within one process, synchronously, and never lose a message.
// A Handler without a broker gets one of its own; share a bus between
// handlers to run replicas in one process (in tests, say). The zero value
// is ready to use.
//
// The brokers of a bus keep history, sessions and presence for each other
// too ([HistoryBroker], [SessionBroker], [PresenceBroker]): what
// [HandlerOptions.History] and [HandlerOptions.Presence] need, with no
// engine.
type MemoryBus struct {
	mu   sync.RWMutex // guards subs
	subs map[string]map[*memoryBroker]struct{}

	state memoryState // history, sessions and presence: memory_history.go
}

// The in-process broker implements every optional interface.
var (
	_ HistoryBroker  = (*memoryBroker)(nil)
	_ SessionBroker  = (*memoryBroker)(nil)
	_ PresenceBroker = (*memoryBroker)(nil)
)

// NewBroker returns a new node's broker on the bus.
func (b *MemoryBus) NewBroker() Broker { return &memoryBroker{bus: b} }

// memoryBroker is one node on a MemoryBus.
type memoryBroker struct {
	bus *MemoryBus

	mu     sync.Mutex // guards recv and closed; held while delivering
	recv   BrokerReceiver
	closed bool
}

func (m *memoryBroker) Start(r BrokerReceiver) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recv != nil || m.closed {
		return errors.New("rpcws: broker started twice")
	}
	m.recv = r
	return nil
}

func (m *memoryBroker) Subscribe(ctx context.Context, subject string) error {
	if m.isClosed() {
		return ErrBrokerClosed
	}
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	if m.bus.subs == nil {
		m.bus.subs = make(map[string]map[*memoryBroker]struct{})
	}
	s := m.bus.subs[subject]
	if s == nil {
		s = make(map[*memoryBroker]struct{})
		m.bus.subs[subject] = s
	}
	s[m] = struct{}{}
	return nil
}

func (m *memoryBroker) Unsubscribe(ctx context.Context, subject string) error {
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	if s := m.bus.subs[subject]; s != nil {
		delete(s, m)
		if len(s) == 0 {
			delete(m.bus.subs, subject)
		}
	}
	return nil
}

// Publish delivers msg to every subscribed node before it returns.
func (m *memoryBroker) Publish(ctx context.Context, subject string, msg []byte) error {
	if m.isClosed() {
		return ErrBrokerClosed
	}
	for _, n := range m.bus.nodes(subject) {
		n.deliver(subject, msg)
	}
	return nil
}

// nodes returns the nodes subscribed to subject.
func (b *MemoryBus) nodes(subject string) []*memoryBroker {
	b.mu.RLock()
	defer b.mu.RUnlock()
	nodes := make([]*memoryBroker, 0, len(b.subs[subject]))
	for n := range b.subs[subject] {
		nodes = append(nodes, n)
	}
	return nodes
}

// deliverAt hands a message published with history to the node's
// receiver: through ReceiveAt, or Receive for a receiver without it.
func (m *memoryBroker) deliverAt(subject string, pos Position, msg []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recv == nil || m.closed {
		return
	}
	if r, ok := m.recv.(HistoryReceiver); ok {
		r.ReceiveAt(subject, pos, msg)
	} else {
		m.recv.Receive(subject, msg)
	}
}

func (m *memoryBroker) deliver(subject string, msg []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recv != nil && !m.closed {
		m.recv.Receive(subject, msg)
	}
}

func (m *memoryBroker) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *memoryBroker) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	for subject, s := range m.bus.subs {
		delete(s, m)
		if len(s) == 0 {
			delete(m.bus.subs, subject)
		}
	}
	return nil
}
