package rpcws

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// The in-process MemoryBus keeps history, sessions and presence for the
// handlers that share it: the reference implementation of HistoryBroker,
// SessionBroker and PresenceBroker (broker_history.go). It never loses
// an event, so a topic's epoch lasts as long as the bus.

// memoryState is what a MemoryBus keeps besides its subscriptions.
type memoryState struct {
	mu        sync.Mutex // guards what follows
	topics    map[string]*memoryTopic
	sessions  map[string]memoryRecord
	presence  map[string]map[string]memoryRecord // by subject, then peer
	lastSweep time.Time
}

// memoryTopic is one topic's history. deliver is held while its events
// are handed to subscribers, so that they arrive in offset order.
type memoryTopic struct {
	deliver sync.Mutex
	pos     Position
	events  []memoryEvent // oldest first, at most the policy's size
	touched time.Time     // the last publish, or the topic's creation
	ttl     time.Duration // of its events, from the last publish's policy; <= 0: none
}

// keep is how long the topic's position outlives its last publish.
func (t *memoryTopic) keep() time.Duration { return max(t.ttl, minPositionKeep) }

// expired reports whether event e is past the topic's TTL at now.
func (t *memoryTopic) expired(e memoryEvent, now time.Time) bool {
	return t.ttl > 0 && now.Sub(e.at) > t.ttl
}

type memoryEvent struct {
	offset uint64
	at     time.Time
	msg    []byte
}

// memoryRecord is a session's record or a presence entry's info, and when
// it expires.
type memoryRecord struct {
	data    []byte
	expires time.Time
}

// minPositionKeep is how long a topic's position outlives its last
// publish at least (HistoryPolicy.TTL).
const minPositionKeep = 24 * time.Hour

// newEpoch returns a random epoch: 16 bytes in base64url.
func newEpoch() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// topic returns the history of subject, created when missing; s.mu held.
func (s *memoryState) topic(subject string, now time.Time) *memoryTopic {
	if s.topics == nil {
		s.topics = make(map[string]*memoryTopic)
	}
	t := s.topics[subject]
	if t == nil {
		t = &memoryTopic{pos: Position{Epoch: newEpoch()}, touched: now}
		s.topics[subject] = t
	}
	return t
}

// sweep drops, at most once a minute, the topics whose position expired
// and the sessions and presence entries that expired; s.mu held.
func (s *memoryState) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for name, t := range s.topics {
		if now.Sub(t.touched) > t.keep() {
			delete(s.topics, name)
		}
	}
	for id, r := range s.sessions {
		if !now.Before(r.expires) {
			delete(s.sessions, id)
		}
	}
	for subject, m := range s.presence {
		for peer, r := range m {
			if !now.Before(r.expires) {
				delete(m, peer)
			}
		}
		if len(m) == 0 {
			delete(s.presence, subject)
		}
	}
}

// PublishHistory appends msg to the topic's history and delivers it to
// every subscribed node, in offset order, before it returns.
func (m *memoryBroker) PublishHistory(ctx context.Context, subject string, msg []byte, p HistoryPolicy) (Position, error) {
	if m.isClosed() {
		return Position{}, ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	s := &m.bus.state
	now := time.Now()
	s.mu.Lock()
	s.sweep(now)
	t := s.topic(subject, now)
	t.deliver.Lock() // before s.mu is released: offsets are delivered in order
	defer t.deliver.Unlock()
	t.pos.Offset++
	pos := t.pos
	t.events = append(t.events, memoryEvent{offset: pos.Offset, at: now, msg: append([]byte(nil), msg...)})
	if n := len(t.events) - max(p.Size, 1); n > 0 {
		t.events = append(t.events[:0:0], t.events[n:]...)
	}
	t.touched, t.ttl = now, p.TTL
	s.mu.Unlock()

	for _, n := range m.bus.nodes(subject) {
		n.deliverAt(subject, pos, msg)
	}
	return pos, nil
}

// History returns the topic's position and its last limit events above
// after that are younger than the policy's TTL of their publish.
func (m *memoryBroker) History(ctx context.Context, subject string, after uint64, limit int) (Position, []HistoryEvent, error) {
	if m.isClosed() {
		return Position{}, nil, ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return Position{}, nil, err
	}
	s := &m.bus.state
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topic(subject, now)
	var out []HistoryEvent
	for i := len(t.events) - 1; i >= 0 && len(out) < limit; i-- {
		e := t.events[i]
		if e.offset <= after || t.expired(e, now) {
			break
		}
		out = append(out, HistoryEvent{Offset: e.offset, Msg: e.msg})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return t.pos, out, nil
}

// lockState returns the bus's state, locked, or ErrBrokerClosed.
func (m *memoryBroker) lockState() (*memoryState, error) {
	if m.isClosed() {
		return nil, ErrBrokerClosed
	}
	s := &m.bus.state
	s.mu.Lock()
	return s, nil
}

// SaveSession stores record under id until ttl from now.
func (m *memoryBroker) SaveSession(ctx context.Context, id string, record []byte, ttl time.Duration) error {
	s, err := m.lockState()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := time.Now()
	s.sweep(now)
	if s.sessions == nil {
		s.sessions = make(map[string]memoryRecord)
	}
	s.sessions[id] = memoryRecord{data: append([]byte(nil), record...), expires: now.Add(ttl)}
	return nil
}

// TouchSessions moves the expiry of the sessions of ids that exist.
func (m *memoryBroker) TouchSessions(ctx context.Context, ids []string, ttl time.Duration) error {
	s, err := m.lockState()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := time.Now()
	for _, id := range ids {
		if r, ok := s.sessions[id]; ok && now.Before(r.expires) {
			r.expires = now.Add(ttl)
			s.sessions[id] = r
		}
	}
	return nil
}

// TakeSession returns and deletes the record of id.
func (m *memoryBroker) TakeSession(ctx context.Context, id string) ([]byte, error) {
	s, err := m.lockState()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	r, ok := s.sessions[id]
	delete(s.sessions, id)
	if !ok || !time.Now().Before(r.expires) {
		return nil, ErrNoSession
	}
	return r.data, nil
}

// AddPresence records entries until ttl from now.
func (m *memoryBroker) AddPresence(ctx context.Context, ttl time.Duration, entries ...PresenceEntry) error {
	s, err := m.lockState()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := time.Now()
	s.sweep(now)
	if s.presence == nil {
		s.presence = make(map[string]map[string]memoryRecord)
	}
	for _, e := range entries {
		t := s.presence[e.Topic]
		if t == nil {
			t = make(map[string]memoryRecord)
			s.presence[e.Topic] = t
		}
		t[e.Peer] = memoryRecord{data: append([]byte(nil), e.Info...), expires: now.Add(ttl)}
	}
	return nil
}

// RemovePresence deletes entries.
func (m *memoryBroker) RemovePresence(ctx context.Context, entries ...PresenceEntry) error {
	s, err := m.lockState()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, e := range entries {
		if t := s.presence[e.Topic]; t != nil {
			delete(t, e.Peer)
			if len(t) == 0 {
				delete(s.presence, e.Topic)
			}
		}
	}
	return nil
}

// Presence returns the topic's entries that have not expired.
func (m *memoryBroker) Presence(ctx context.Context, subject string) ([]PresenceEntry, error) {
	s, err := m.lockState()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := time.Now()
	var out []PresenceEntry
	for peer, r := range s.presence[subject] {
		if now.Before(r.expires) {
			out = append(out, PresenceEntry{Topic: subject, Peer: peer, Info: r.data})
		}
	}
	return out, nil
}
