package rpcws

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/rpcws/rpcws/codec"
)

// ResyncEvent is the type of the reserved event a connection receives when
// published events addressed to it may have been lost: its data is
// {"topics": [...]}, the connection's own topics at that moment (empty when
// it is in none, since broadcasts and user events may have been lost too).
// The client should then reload what it shows. Event types that start with
// "rpcws." are reserved for the library.
const ResyncEvent = "rpcws.resync"

// MaxNameLen is the longest topic or user name, in Unicode code points.
const MaxNameLen = 128

// ErrBadName is the error of a topic or user name that is empty, longer
// than [MaxNameLen] code points, or not valid UTF-8.
var ErrBadName = errors.New("rpcws: a topic or user name is 1 to 128 characters of valid UTF-8")

// validName reports whether s is a topic or user name.
func validName(s string) bool {
	return s != "" && utf8.ValidString(s) && utf8.RuneCountInString(s) <= MaxNameLen
}

// Address says which connections a published event goes to, on every
// replica: [All], a [Topic], a [User] or one connection ([ToPeer]),
// optionally except one connection (see [Address.Except]).
type Address struct {
	kind   byte // 'a', 't', 'u' or 'p'
	name   string
	except string // a peer's ID, or ""
}

// All addresses every connection.
func All() Address { return Address{kind: 'a'} }

// Topic addresses the members of a topic (see [Peer.Join]). The name is
// taken literally: "room.*" is a topic, not a pattern.
func Topic(name string) Address { return Address{kind: 't', name: name} }

// User addresses every connection of a user: those whose identity
// [HandlerOptions.UserName] maps to name.
func User(name string) Address { return Address{kind: 'u', name: name} }

// ToPeer addresses one connection by its [Peer.ID], on whichever replica
// serves it.
func ToPeer(id string) Address { return Address{kind: 'p', name: id} }

// Except returns the address without connection p, typically the sender.
// A nil p changes nothing.
func (a Address) Except(p *Peer) Address {
	if p != nil {
		a.except = p.id
	}
	return a
}

func (a Address) String() string {
	var s string
	switch a.kind {
	case 'a':
		s = "all"
	case 't':
		s = "topic " + strconv.Quote(a.name)
	case 'u':
		s = "user " + strconv.Quote(a.name)
	case 'p':
		s = "peer " + a.name
	default:
		s = "no address"
	}
	if a.except != "" {
		s += " except " + a.except
	}
	return s
}

// Subjects on the broker. Names are escaped so that every engine takes them
// literally: a NATS subject treats '.', '*', '>' and white space specially.
const (
	subjectAll   = "rpcws.all"
	subjectTopic = "rpcws.t."
	subjectUser  = "rpcws.u."
	subjectNode  = "rpcws.n."
)

// escapeName maps a name to one subject token: ASCII letters, digits and '-'
// stay, every other byte becomes '_' and two hex digits. The mapping is one
// to one.
func escapeName(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// BrokerStats counts what a [Handler] published and received through its
// broker, and what it could not deliver.
type BrokerStats struct {
	Published uint64 // messages handed to the broker by Publish
	Received  uint64 // messages the broker delivered to this replica
	Delivered uint64 // event frames queued to local connections
	Dropped   uint64 // event frames a local connection could not take: it was closed as a slow consumer
	Malformed uint64 // messages from the broker that were not the handler's, discarded
	Gaps      uint64 // reports from the broker that messages may have been lost
	Resyncs   uint64 // rpcws.resync events queued to local connections
}

// peerAddr is what the cluster knows of one connection; guarded by
// cluster.mu.
type peerAddr struct {
	user   string // "" for none
	topics map[string]struct{}
	gone   bool // closed: joins nothing any more
}

// subscription is the local interest in one topic or user subject.
type subscription struct {
	name    string
	kind    byte // 't' or 'u'
	members map[*Peer]struct{}
}

// cluster is a Handler's side of publishing: its broker and the local index
// of connections by topic, user and ID.
type cluster struct {
	h      *Handler
	broker Broker
	node   string // this replica's ID, part of every peer's ID
	nextID atomic.Uint64

	// subMu orders changes of interest on the broker: a subject's first
	// member subscribes before any other member is added, and its last
	// member's unsubscribe completes before a new first member subscribes.
	subMu sync.Mutex

	mu    sync.RWMutex // guards subs, peers and every peerAddr
	subs  map[string]*subscription
	peers map[string]*Peer // by ID

	closeOnce sync.Once

	published, received, delivered, dropped, malformed, gaps, resyncs atomic.Uint64
}

// brokerTimeout bounds the broker calls that no caller's context bounds:
// at start, and when a closing connection leaves its topics.
const brokerTimeout = 5 * time.Second

// startCluster sets up publishing for h: its broker (an in-process one when
// none is given), started, with the broadcast and node subjects subscribed.
func (h *Handler) startCluster() {
	b := h.opts.Broker
	if b == nil {
		b = new(MemoryBus).NewBroker()
	}
	c := &cluster{h: h, broker: b, node: uuid.NewString(),
		subs: make(map[string]*subscription), peers: make(map[string]*Peer)}
	h.cluster = c
	if err := b.Start(c); err != nil {
		h.log("broker did not start", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	for _, s := range []string{subjectAll, subjectNode + escapeName(c.node)} {
		if err := b.Subscribe(ctx, s); err != nil {
			h.log("broker subscribe failed; it retries when connected", "subject", s, "error", err)
		}
	}
}

// closeCluster closes the broker, once.
func (h *Handler) closeCluster() {
	h.cluster.closeOnce.Do(func() {
		if err := h.cluster.broker.Close(); err != nil {
			h.log("broker close failed", "error", err)
		}
	})
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

// attach gives p its ID and joins it to its user's address. It runs before
// the connection's first request is read.
func (h *Handler) attach(p *Peer) {
	c := h.cluster
	user := h.userName(p.identity)
	if user != "" && !validName(user) {
		h.log("connection has no user address: bad user name", "remote", p.remoteAddr, "error", ErrBadName)
		user = ""
	}
	c.mu.Lock()
	p.addr.user = user
	c.peers[p.id] = p
	c.mu.Unlock()
	if user != "" {
		ctx, cancel := context.WithTimeout(p.Context(), brokerTimeout)
		defer cancel()
		if err := c.join(ctx, p, 'u', user); err != nil && !errors.Is(err, ErrClosed) {
			h.log("user subscribe failed", "user", user, "error", err)
		}
	}
}

// detach takes a closed connection out of every address.
func (h *Handler) detach(p *Peer) {
	c := h.cluster
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	p.addr.gone = true
	delete(c.peers, p.id)
	var empty []string
	leave := func(subject string) {
		if s := c.subs[subject]; s != nil {
			delete(s.members, p)
			if len(s.members) == 0 {
				delete(c.subs, subject)
				empty = append(empty, subject)
			}
		}
	}
	for t := range p.addr.topics {
		leave(subjectTopic + escapeName(t))
	}
	if p.addr.user != "" {
		leave(subjectUser + escapeName(p.addr.user))
	}
	p.addr.topics = nil
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	for _, s := range empty {
		if err := c.broker.Unsubscribe(ctx, s); err != nil {
			h.log("broker unsubscribe failed", "subject", s, "error", err)
		}
	}
}

// join adds p to a topic ('t') or user ('u') address, subscribing to its
// subject first when p is its first local member.
func (c *cluster) join(ctx context.Context, p *Peer, kind byte, name string) error {
	subject := subjectTopic + escapeName(name)
	if kind == 'u' {
		subject = subjectUser + escapeName(name)
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.RLock()
	gone := p.addr.gone
	s := c.subs[subject]
	_, in := s.membersOf()[p]
	c.mu.RUnlock()
	if gone {
		return ErrClosed
	}
	if in {
		return nil
	}
	if s == nil {
		// The interest is kept even on error: the broker subscribes again
		// once connected and reports the gap, which reaches p as a resync.
		if err := c.broker.Subscribe(ctx, subject); err != nil {
			c.h.log("broker subscribe failed; it retries when connected", "subject", subject, "error", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s = c.subs[subject]; s == nil {
		s = &subscription{name: name, kind: kind, members: make(map[*Peer]struct{})}
		c.subs[subject] = s
	}
	s.members[p] = struct{}{}
	if kind == 't' {
		if p.addr.topics == nil {
			p.addr.topics = make(map[string]struct{})
		}
		p.addr.topics[name] = struct{}{}
	}
	return nil
}

func (s *subscription) membersOf() map[*Peer]struct{} {
	if s == nil {
		return nil
	}
	return s.members
}

// leave takes p out of a topic, unsubscribing when it was the last local
// member.
func (c *cluster) leave(ctx context.Context, p *Peer, name string) error {
	subject := subjectTopic + escapeName(name)
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	s := c.subs[subject]
	_, in := s.membersOf()[p]
	if !in {
		c.mu.Unlock()
		return nil
	}
	delete(s.members, p)
	delete(p.addr.topics, name)
	last := len(s.members) == 0
	if last {
		delete(c.subs, subject)
	}
	c.mu.Unlock()
	if last {
		return c.broker.Unsubscribe(ctx, subject)
	}
	return nil
}

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
// when it closes. On a nil *Peer Join returns [ErrNoPeer]; a bad name is
// [ErrBadName]; after the connection closed, [ErrClosed]. When the broker
// is unreachable Join still succeeds: the connection receives a
// [ResyncEvent] once the broker is back.
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
	return p.h.cluster.join(ctx, p, 't', topic)
}

// Leave takes the connection out of topic. Leaving a topic one is not in
// succeeds. On a nil *Peer it returns [ErrNoPeer]; a bad name is
// [ErrBadName].
func (p *Peer) Leave(ctx context.Context, topic string) error {
	if p == nil || p.h == nil {
		return ErrNoPeer
	}
	if !validName(topic) {
		return fmt.Errorf("%w: topic %q", ErrBadName, topic)
	}
	return p.h.cluster.leave(ctx, p, topic)
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

func (p *Peer) topicsLocked() []string {
	out := make([]string, 0, len(p.addr.topics))
	for t := range p.addr.topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Publish sends the event {"type": eventType, "data": data} to the
// connections at address to, on every replica that shares the handler's
// broker. The event is encoded once. Events published one after another to
// one address reach each connection in that order, at most once: a gap
// (the broker connection dropped, a slow subscriber cut) is told to the
// connections concerned with a [ResyncEvent]. A connection that cannot take
// the event is closed as a slow consumer, and counted in [BrokerStats].
//
// Unlike [Handler.Broadcast] and [Peer.Notify], which stay on this replica,
// Publish goes through the broker, even to local connections.
func (h *Handler) Publish(ctx context.Context, to Address, eventType string, data any) error {
	var subject, target string
	switch to.kind {
	case 'a':
		subject = subjectAll
	case 't', 'u':
		if !validName(to.name) {
			return fmt.Errorf("%w: %s", ErrBadName, to)
		}
		subject = subjectTopic + escapeName(to.name)
		if to.kind == 'u' {
			subject = subjectUser + escapeName(to.name)
		}
	case 'p':
		i := strings.LastIndexByte(to.name, '.')
		if i <= 0 {
			return fmt.Errorf("rpcws: publish: not a peer ID: %q", to.name)
		}
		subject, target = subjectNode+escapeName(to.name[:i]), to.name
	default:
		return errors.New("rpcws: publish: the zero Address addresses no one")
	}
	frame, err := codec.EncodeEvent(eventType, data)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := appendEnvelope(make([]byte, 0, 3+len(to.except)+len(target)+len(frame)), to.except, target)
	msg = append(msg, frame...)
	if err := h.cluster.broker.Publish(ctx, subject, msg); err != nil {
		return fmt.Errorf("rpcws: publish to %s: %w", to, err)
	}
	h.cluster.published.Add(1)
	return nil
}

// The envelope of a message on the broker: a version byte, then the
// excepted peer's ID and the target peer's ID, each as a uvarint length and
// bytes, then the event frame as the clients receive it.
const envelopeVersion = 1

func appendEnvelope(b []byte, except, target string) []byte {
	b = append(b, envelopeVersion)
	b = binary.AppendUvarint(b, uint64(len(except)))
	b = append(b, except...)
	b = binary.AppendUvarint(b, uint64(len(target)))
	return append(b, target...)
}

func parseEnvelope(msg []byte) (except, target string, frame []byte, ok bool) {
	if len(msg) == 0 || msg[0] != envelopeVersion {
		return "", "", nil, false
	}
	rest := msg[1:]
	field := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return "", false
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, true
	}
	if except, ok = field(); !ok {
		return
	}
	if target, ok = field(); !ok {
		return
	}
	return except, target, rest, len(rest) > 0
}

// Receive delivers a message from the broker to the local connections its
// subject addresses. It never waits on a connection.
func (c *cluster) Receive(subject string, msg []byte) {
	c.received.Add(1)
	except, target, frame, ok := parseEnvelope(msg)
	if !ok {
		c.malformed.Add(1)
		c.h.log("discarded a broker message that is not an event", "subject", subject)
		return
	}
	var to []*Peer
	switch {
	case subject == subjectAll:
		to = c.h.Peers()
	case strings.HasPrefix(subject, subjectNode):
		c.mu.RLock()
		if p := c.peers[target]; p != nil {
			to = append(to, p)
		}
		c.mu.RUnlock()
	default:
		c.mu.RLock()
		if s := c.subs[subject]; s != nil {
			to = make([]*Peer, 0, len(s.members))
			for p := range s.members {
				to = append(to, p)
			}
		}
		c.mu.RUnlock()
	}
	if len(to) == 0 {
		return
	}
	frame = bytes.Clone(frame) // shared by the connections' queues
	for _, p := range to {
		if except != "" && p.id == except {
			continue
		}
		c.push(p, frame, subject)
	}
}

// push queues frame to p, counting and logging a drop.
func (c *cluster) push(p *Peer, frame []byte, subject string) {
	switch err := p.enqueue(frame); {
	case err == nil:
		c.delivered.Add(1)
	case errors.Is(err, ErrSlowConsumer):
		c.dropped.Add(1)
		c.h.log("dropped a published event: connection closed as a slow consumer",
			"subject", subject, "peer", p.id, "remote", p.remoteAddr)
	}
}

// Lost sends a resync event to every local connection that the lost
// subjects address (every connection, for nil, the broadcast subject or
// the node subject): its data lists the connection's topics among those
// lost, or all its topics when it may have missed anything.
func (c *cluster) Lost(subjects []string) {
	c.gaps.Add(1)
	c.h.log("messages from the broker may have been lost; sending resync", "subjects", len(subjects))
	everyone := subjects == nil
	lostTopics := make(map[string]bool)
	lostUsers := make(map[string]bool)
	c.mu.RLock()
	for _, s := range subjects {
		switch {
		case s == subjectAll || strings.HasPrefix(s, subjectNode):
			everyone = true
		case c.subs[s] != nil && c.subs[s].kind == 't':
			lostTopics[c.subs[s].name] = true
		case c.subs[s] != nil:
			lostUsers[c.subs[s].name] = true
		}
	}
	c.mu.RUnlock()
	for _, p := range c.h.Peers() {
		c.mu.RLock()
		all := everyone || (p.addr.user != "" && lostUsers[p.addr.user])
		topics := p.topicsLocked()
		c.mu.RUnlock()
		if !all {
			topics = slices.DeleteFunc(topics, func(t string) bool { return !lostTopics[t] })
			if len(topics) == 0 {
				continue
			}
		}
		frame, err := codec.EncodeEvent(ResyncEvent, struct {
			Topics []string `json:"topics"`
		}{topics})
		if err != nil {
			continue
		}
		c.resyncs.Add(1)
		c.push(p, frame, ResyncEvent)
	}
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

// newPeerID returns a new connection ID: the node's ID and a sequence
// number.
func (c *cluster) newPeerID() string {
	return c.node + "." + strconv.FormatUint(c.nextID.Add(1), 10)
}
