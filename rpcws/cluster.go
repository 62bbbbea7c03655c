package rpcws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rpcws/rpcws/codec"
)

// Defaults of the topic options of [HandlerOptions].
const (
	DefaultMaxTopicsPerConn = 128             // topics one connection may be in (centrifuge's default channel limit)
	DefaultMaxTopics        = 100_000         // topics with members on one replica
	DefaultJoinTimeout      = 2 * time.Second // how long Join waits for the broker
)

// brokerTimeout bounds each broker call that no caller's context bounds: a
// worker's Subscribe or Unsubscribe, and a Publish whose context has no
// deadline.
const brokerTimeout = 5 * time.Second

// ResyncEvent is the type of the reserved event a connection receives when
// published events addressed to it may have been lost: its data is
// {"topics": [...]}, the connection's own topics at that moment (empty when
// it is in none, since broadcasts and user events may have been lost too).
// The client should then reload what it shows. Event types that start with
// "rpcws." are reserved for the library: [Handler.Publish] refuses them, and
// a replica drops them when they come from the broker.
const ResyncEvent = "rpcws.resync"

// BrokerStats counts what a [Handler] published and received through its
// broker, and what it could not deliver.
type BrokerStats struct {
	Published uint64 // messages handed to the broker by Publish
	Received  uint64 // messages the broker delivered to this replica
	Delivered uint64 // event frames queued to local connections
	Dropped   uint64 // event frames a local connection could not take: it was closed as a slow consumer
	Malformed uint64 // messages from the broker dropped unread: not an envelope, not a valid event, a reserved type, too large
	Gaps      uint64 // reports that messages may have been lost (from the broker, or a subscription that took effect late)
	Resyncs   uint64 // rpcws.resync events queued to local connections
}

// cluster is a Handler's side of publishing: its broker, the local index
// of connections by topic, user and ID (hub.go), and the workers that keep
// the broker's subscriptions in line with it (interest.go).
type cluster struct {
	h      *Handler
	broker Broker
	node   string // this replica's ID, part of every peer's ID
	nextID atomic.Uint64

	maxPerConn, maxTopics int           // <= 0: none
	joinTimeout           time.Duration // < 0: joins do not wait
	maxFrame              int           // <= 0: none

	mu     sync.RWMutex // guards what follows, every peerAddr and every subscription
	subs   map[string]*subscription
	peers  map[string]*Peer // by ID
	topics int              // topic subscriptions with members

	subQ, unsubQ  []*subscription // work for the interest workers
	parked        []*subscription // failed subscriptions waiting for retry
	retry         *time.Timer     // unparks them; nil when none is set
	retryWait     time.Duration
	workers       int
	unsubscribing int // workers calling Unsubscribe
	closed        bool
	wg            sync.WaitGroup // the workers

	closeOnce sync.Once
	hist      *history // history, sessions and presence: history.go

	betweenBatches func() // nil; a test's hook, called by detach between its batches without the lock

	logSubscribe, logPublish, logMalformed, logSlow rateLog

	published, received, delivered, dropped, malformed, gaps, resyncs atomic.Uint64
}

// startCluster sets up publishing for h: its broker (an in-process one when
// none is given), started, with the broadcast and node subjects subscribed
// in the background.
func (h *Handler) startCluster() {
	b := h.opts.Broker
	if b == nil {
		b = new(MemoryBus).NewBroker()
	}
	o := &h.opts
	c := &cluster{h: h, broker: b, node: uuid.NewString(),
		maxPerConn:  int(orDefault(int64(o.MaxTopicsPerConn), DefaultMaxTopicsPerConn)),
		maxTopics:   int(orDefault(int64(o.MaxTopics), DefaultMaxTopics)),
		joinTimeout: orDefault(o.JoinTimeout, DefaultJoinTimeout),
		maxFrame:    int(max(o.ReadLimit, -1)),
		subs:        make(map[string]*subscription), peers: make(map[string]*Peer)}
	h.cluster = c
	c.startHistory()
	if err := b.Start(c); err != nil {
		c.logger().Error("rpcws: the broker did not start: nothing is published or received", "error", err)
		return
	}
	var ready []chan struct{}
	c.mu.Lock()
	for _, s := range []string{subjectAll, nodeSubject(c.node)} {
		sub := c.addMember(nil, kindNone, "", s) // a member of its own: never unsubscribed
		ready = append(ready, sub.readyOf())
	}
	c.mu.Unlock()
	// Wait a little for them, once for the handler's life, so that a
	// broadcast right after NewHandler reaches this replica.
	t := time.NewTimer(brokerTimeout)
	defer t.Stop()
	for _, r := range ready {
		select {
		case <-r:
		case <-t.C:
			return
		}
	}
}

// closeCluster closes the broker, once, then stops the workers.
func (h *Handler) closeCluster() {
	c := h.cluster
	c.closeOnce.Do(func() {
		c.stopHistory()
		if err := c.broker.Close(); err != nil {
			c.logger().Warn("rpcws: broker close failed", "error", err)
		}
		c.stopInterest()
	})
}

// logger returns the handler's logger (see logging.go).
func (c *cluster) logger() *slog.Logger { return c.h.logger() }

// warn logs a recoverable fault of the engine or a client, rate-limited.
func (c *cluster) warn(r *rateLog, msg string, args ...any) {
	r.log(c.logger(), slog.LevelWarn, msg, args...)
}

// userName maps a connection's identity to its user name: by
// HandlerOptions.UserName, or a string identity is the name.
func (h *Handler) userName(identity any) string {
	if h.opts.UserName != nil {
		return h.opts.UserName(identity)
	}
	s, _ := identity.(string)
	return s
}

// newPeerID returns a new connection ID: the node's ID and a sequence
// number.
func (c *cluster) newPeerID() string {
	return c.node + "." + strconv.FormatUint(c.nextID.Add(1), 10)
}

// ErrBrokerUnavailable matches, with errors.Is, the error of a
// [Handler.Publish] that the broker did not take (see [BrokerError]).
var ErrBrokerUnavailable = errors.New("rpcws: the message broker is unreachable or did not answer in time")

// BrokerError is the error of a [Handler.Publish] that the broker did not
// take: its engine is unreachable, or did not answer within the context's
// deadline (5 s when the context has none). Its text is the wire's
// "[Unavailable] message" and names the operation only, never a host, a
// port, an engine or a Go type: a service method that returns it fails with
// code Unavailable and a plain message. Err, the engine's own error, is
// for the server's log, where the handler writes it.
//
// Such an event may still be delivered: the engine may have taken it before
// it stopped answering. A client that retries a publish must therefore
// tolerate a duplicate, or carry an idempotency key in the event's data by
// which its receivers drop the second copy.
type BrokerError struct {
	Op  string // "publish to topic \"room\"", say
	Err error
}

func (e *BrokerError) Error() string {
	return "[" + codec.CodeUnavailable + "] rpcws: " + e.Op + ": " + errText(ErrBrokerUnavailable) + "; it may still be delivered"
}

// Unwrap makes the error match [ErrBrokerUnavailable], an [*codec.Error] of
// code Unavailable, and the engine's error.
func (e *BrokerError) Unwrap() []error {
	return []error{ErrBrokerUnavailable, &codec.Error{Code: codec.CodeUnavailable, Message: "rpcws: " + e.Op + ": " + errText(ErrBrokerUnavailable)}, e.Err}
}

func errText(err error) string { return strings.TrimPrefix(err.Error(), "rpcws: ") }

// Publish sends the event {"type": eventType, "data": data} to the
// connections at address to, on every replica that shares the handler's
// broker. The event is encoded once. Events published one after another to
// one address reach each connection in that order, at most once: a gap
// (the broker connection dropped, a slow subscriber cut) is told to the
// connections concerned with a [ResyncEvent]. A connection that cannot take
// the event is closed as a slow consumer, and counted in [BrokerStats].
//
// A type that starts with "rpcws." is refused (reserved), and so is an
// event larger than the frame limit ([codec.ErrTooLarge]). When the broker
// does not take the event, Publish returns a [*BrokerError] (code
// Unavailable) after at most ctx's deadline, or 5 s when ctx has none; the
// event may still be delivered (see BrokerError).
//
// Unlike [Handler.Broadcast] and [Peer.Notify], which stay on this replica,
// Publish goes through the broker, even to local connections.
func (h *Handler) Publish(ctx context.Context, to Address, eventType string, data any) error {
	subject, target, err := to.subject()
	if err != nil {
		return err
	}
	if strings.HasPrefix(eventType, "rpcws.") {
		return fmt.Errorf("rpcws: publish: event type %q: the prefix rpcws. is reserved for the library", eventType)
	}
	frame, err := codec.EncodeEvent(eventType, data)
	if err != nil {
		return err
	}
	c := h.cluster
	if c.maxFrame > 0 && len(frame) > c.maxFrame {
		return fmt.Errorf("rpcws: publish to %s: %w", to, codec.ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := appendBrokerEnvelope(make([]byte, 0, 3+len(to.except)+len(target)+len(frame)), to.except, target)
	msg = append(msg, frame...)
	bctx, cancel := brokerContext(ctx)
	defer cancel()
	if err := c.publish(bctx, to, subject, msg); err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err() // the caller gave up: not the engine's fault
		}
		c.warn(&c.logPublish, "publish failed: the broker did not take the event", "to", to.String(), "error", err)
		return &BrokerError{Op: "publish to " + to.String(), Err: err}
	}
	c.published.Add(1)
	return nil
}

// publish hands msg to the broker: with history, an event to a topic is
// appended to the topic's history and gets its position.
func (c *cluster) publish(ctx context.Context, to Address, subject string, msg []byte) error {
	if to.kind == kindTopic && c.hist.on() {
		_, err := c.hist.hb.PublishHistory(ctx, subject, msg, c.hist.policy)
		return err
	}
	return c.broker.Publish(ctx, subject, msg)
}

// Receive delivers a message from the broker to the local connections its
// subject addresses, as a frame built anew (see rebuildEvent): what is not
// a valid event is dropped and counted. It never waits on a connection.
func (c *cluster) Receive(subject string, msg []byte) {
	if len(msg) > 0 && msg[0] == controlVersion {
		c.control(subject, msg)
		return
	}
	env, frame, ok := c.readEvent(subject, msg)
	if !ok {
		return
	}
	for _, p := range c.recipients(subject, env.target) {
		if env.except != "" && p.id == env.except {
			continue
		}
		c.push(p, frame, subject)
	}
}

// readEvent counts a message from the broker and returns its envelope
// and its event frame built anew (see rebuildEvent); a message that is
// not a valid event is refused (counted and logged) and ok is false.
func (c *cluster) readEvent(subject string, msg []byte) (env brokerEnvelope, frame []byte, ok bool) {
	c.received.Add(1)
	if env, ok = parseBrokerEnvelope(msg); !ok {
		c.refuse(subject, errNotEnvelope, len(msg))
		return env, nil, false
	}
	frame, err := rebuildEvent(env.frame, c.maxFrame)
	if err != nil {
		c.refuse(subject, err, len(msg))
		return env, nil, false
	}
	return env, frame, true
}

// refuse counts and logs, rate-limited, a message dropped unread.
func (c *cluster) refuse(subject string, why error, n int) {
	c.malformed.Add(1)
	c.warn(&c.logMalformed, "dropped a message from the broker", "subject", subject, "reason", why.Error(), "bytes", n)
}

// recipients returns the local connections that subject addresses.
func (c *cluster) recipients(subject, target string) []*Peer {
	if subject == subjectAll {
		return c.h.Peers()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if strings.HasPrefix(subject, subjectNode) {
		if p := c.peers[target]; p != nil {
			return []*Peer{p}
		}
		return nil
	}
	s := c.subs[subject]
	to := make([]*Peer, 0, len(s.membersOf()))
	for p := range s.membersOf() {
		to = append(to, p)
	}
	return to
}

// push queues frame to p, counting and logging a drop.
func (c *cluster) push(p *Peer, frame []byte, subject string) {
	switch err := p.enqueue(frame); {
	case err == nil:
		c.delivered.Add(1)
	case errors.Is(err, ErrSlowConsumer):
		c.dropped.Add(1)
		c.warn(&c.logSlow, "dropped a published event: connection closed as a slow consumer",
			"subject", subject, "peer", p.id, "remote", p.remoteAddr)
	}
}

// Lost sends a resync event to every local connection that the lost
// subjects address (every connection, for nil, the broadcast subject or
// the node subject): its data lists the connection's topics among those
// lost, or all its topics when it may have missed anything.
func (c *cluster) Lost(subjects []string) {
	if subjects == nil {
		c.logger().Info("rpcws: messages from the broker may have been lost: sending rpcws.resync to every connection")
	} else {
		c.logger().Info("rpcws: messages from the broker may have been lost: sending rpcws.resync to the connections concerned",
			"subjects", len(subjects), "first", subjects[0])
	}
	c.resync(subjects, "")
}

// resync counts a gap and sends the resync events that Lost describes; why,
// when not empty, is logged at debug level.
func (c *cluster) resync(subjects []string, why string) {
	c.gaps.Add(1)
	if why != "" {
		c.logger().Debug("rpcws: "+why+": sending rpcws.resync", "subjects", len(subjects), "first", subjects[0])
	}
	everyone, lostTopics, lostUsers := c.lostAddresses(subjects)
	for _, p := range c.h.Peers() {
		c.mu.RLock()
		all := everyone || (p.addr.user != "" && lostUsers[p.addr.user])
		var topics []string
		if all {
			topics = p.topicsLocked()
		} else {
			for t := range p.addr.topics {
				if lostTopics[t] {
					topics = append(topics, t)
				}
			}
		}
		c.mu.RUnlock()
		if !all && len(topics) == 0 {
			continue
		}
		frame, err := codec.EncodeEvent(ResyncEvent, struct {
			Topics []string `json:"topics"`
		}{sorted(topics)})
		if err != nil {
			continue
		}
		p.forgetEpochs(topics) // told now: the next epoch is taken without a resync of its own
		c.resyncs.Add(1)
		c.push(p, frame, ResyncEvent)
	}
}

// lostAddresses maps lost subjects to the addresses they carry.
func (c *cluster) lostAddresses(subjects []string) (everyone bool, topics, users map[string]bool) {
	everyone = subjects == nil
	topics, users = make(map[string]bool), make(map[string]bool)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, s := range subjects {
		sub := c.subs[s]
		switch {
		case s == subjectAll || strings.HasPrefix(s, subjectNode):
			everyone = true
		case sub != nil && sub.kind == kindTopic:
			topics[sub.name] = true
		case sub != nil && sub.kind == kindUser:
			users[sub.name] = true
		}
	}
	return everyone, topics, users
}

// BrokerStats returns the counts of published, received, delivered and
// dropped events since the handler was made.
func (h *Handler) BrokerStats() BrokerStats {
	c := h.cluster
	return BrokerStats{
		Published: c.published.Load(),
		Received:  c.received.Load(),
		Delivered: c.delivered.Load(),
		Dropped:   c.dropped.Load(),
		Malformed: c.malformed.Load(),
		Gaps:      c.gaps.Load(),
		Resyncs:   c.resyncs.Load(),
	}
}

// Logger is the handler's logger, for its broker (see [BrokerReceiver]).
func (c *cluster) Logger() *slog.Logger { return c.logger() }
