package rpcws

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// The hub is the local index of a replica's connections: by ID, by topic and
// by user. Its state lives in the cluster, under cluster.mu; the broker's
// side of each subscription is brought in line with it by interest.go,
// never under a lock held across a broker call.

// CodeTooManyTopics is the error code of a join over a topic limit (see
// [HandlerOptions.MaxTopicsPerConn] and [HandlerOptions.MaxTopics]) or
// beyond the byte budget; [ErrTooManyTopics] matches it with errors.Is.
const CodeTooManyTopics = "TooManyTopics"

// ErrTooManyTopics matches, with errors.Is, the error of a [Peer.Join] over
// a topic limit. A method that returns it fails with code TooManyTopics.
var ErrTooManyTopics error = &codec.Error{Code: CodeTooManyTopics}

// membershipBytes is what one topic membership is charged against its
// connection's byte budget, besides its name: what BenchmarkMemberships
// measures of the index and the in-process broker for a topic of its own
// (659 B with a 32-byte name, at 10,000 memberships).
const membershipBytes = 640

// peerAddr is what the hub knows of one connection; guarded by cluster.mu.
type peerAddr struct {
	user    string                   // "" for none
	topics  map[string]*subscription // by topic name
	charged int64                    // bytes held in the connection's budget for its topics
	gone    bool                     // closed: joins nothing any more
}

// subscription is the local interest in one topic or user subject, and
// the state of the broker's subscription to it; guarded by cluster.mu.
type subscription struct {
	subject string
	name    string
	kind    addrKind // kindTopic or kindUser
	members map[*Peer]struct{}

	held      bool          // Subscribe was called (whatever it returned), and no Unsubscribe since
	confirmed bool          // the last Subscribe returned nil: the interest is in effect
	busy      bool          // a worker is calling the broker for it
	queued    bool          // in a work queue, or parked for a retry
	late      bool          // a member was let in before the broker confirmed: resync it once in effect
	ready     chan struct{} // closed when Subscribe returns; nil while no one waits
}

func (s *subscription) membersOf() map[*Peer]struct{} {
	if s == nil {
		return nil
	}
	return s.members
}

// addMember makes p a member of the subscription to subject, creating it,
// and has the broker's side brought in line.
func (c *cluster) addMember(p *Peer, kind addrKind, name, subject string) *subscription {
	s := c.subs[subject]
	if s == nil {
		s = &subscription{subject: subject, name: name, kind: kind, members: make(map[*Peer]struct{})}
		c.subs[subject] = s
	}
	if len(s.members) == 0 && kind == kindTopic {
		c.topics++
	}
	s.members[p] = struct{}{}
	c.reconcile(s)
	return s
}

// removeMember takes p out of subscription s.
func (c *cluster) removeMember(p *Peer, s *subscription) {
	if _, in := s.membersOf()[p]; !in {
		return
	}
	delete(s.members, p)
	if len(s.members) == 0 && s.kind == kindTopic {
		c.topics--
	}
	c.reconcile(s)
}

// admit checks that p may join one more topic, and charges it; the caller
// holds cluster.mu.
func (c *cluster) admit(p *Peer, name, subject string) error {
	if n := c.maxPerConn; n > 0 && len(p.addr.topics) >= n {
		return &codec.Error{Code: CodeTooManyTopics, Message: "rpcws: a connection is in at most " + strconv.Itoa(n) + " topics"}
	}
	if n := c.maxTopics; n > 0 && len(c.subs[subject].membersOf()) == 0 && c.topics >= n {
		return &codec.Error{Code: CodeTooManyTopics, Message: "rpcws: this server holds at most " + strconv.Itoa(n) + " topics"}
	}
	cost := membershipBytes + int64(len(name))
	if p.adm != nil && !p.adm.Hold(cost) {
		return &codec.Error{Code: CodeTooManyTopics, Message: "rpcws: the server's memory budget has no room for another topic"}
	}
	p.addr.charged += cost
	return nil
}

// release gives back what p's topic name was charged.
func (c *cluster) release(p *Peer, name string) {
	cost := membershipBytes + int64(len(name))
	p.addr.charged -= cost
	if p.adm != nil {
		p.adm.Charge(-cost)
	}
}

// topicsOf returns p's topics, sorted; the caller holds cluster.mu.
func (p *Peer) topicsLocked() []string {
	out := make([]string, 0, len(p.addr.topics))
	for t := range p.addr.topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// attach gives p its place in the index and joins it to its user's
// address. It runs before the connection's first request is read, and
// never waits on the broker: the user's subject is subscribed in the
// background, and when the broker takes longer than the join timeout, or
// fails, the connection gets a resync once it is subscribed.
func (h *Handler) attach(p *Peer) {
	c := h.cluster
	user := h.userName(p.identity)
	if user != "" && !validName(user) {
		c.warn(&c.logSubscribe, "connection has no user address: bad user name", "remote", p.remoteAddr, "error", ErrBadName)
		user = ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p.addr.user = user
	c.peers[p.id] = p
	if user != "" {
		s := c.addMember(p, kindUser, user, User(user).mustSubject())
		if ready := s.readyOf(); ready != nil {
			c.watchLate(s, ready)
		}
	}
}

// watchLate marks s late if its subscription is not in effect within the
// join timeout, so that its members get a resync once it is.
func (c *cluster) watchLate(s *subscription, ready <-chan struct{}) {
	if c.joinTimeout < 0 {
		s.late = true
		return
	}
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTimer(c.joinTimeout)
		defer t.Stop()
		select {
		case <-ready:
		case <-t.C:
			c.markLate(s)
		}
	}()
}

// detach takes a closed connection out of every address. It never waits
// on the broker: the subjects left without members are unsubscribed in
// the background, after any subscription that a join waits for. It leaves
// the topics detachBatch at a time, letting joins and new connections take
// the lock in between: a connection in 100,000 topics held joins up for a
// second when it left them all at once (TestDetachHoldsNoOne).
func (h *Handler) detach(p *Peer) {
	c := h.cluster
	c.mu.Lock()
	p.addr.gone = true
	delete(c.peers, p.id)
	if p.addr.user != "" {
		c.removeMember(p, c.subs[User(p.addr.user).mustSubject()])
	}
	topics, charged := p.addr.topics, p.addr.charged
	p.addr.topics, p.addr.charged = nil, 0
	c.mu.Unlock()
	if charged != 0 && p.adm != nil {
		p.adm.Charge(-charged)
	}
	n := 0
	c.mu.Lock()
	for _, s := range topics {
		c.removeMember(p, s)
		if n++; n%detachBatch == 0 {
			c.mu.Unlock()
			if c.betweenBatches != nil {
				c.betweenBatches()
			}
			c.mu.Lock()
		}
	}
	c.mu.Unlock()
	c.closeTopics(p, topics)
}

// detachBatch is how many topics detach leaves under the lock at once.
const detachBatch = 256

// join adds p to a topic. It waits for the broker's subscription at most
// the join timeout, never under a lock. With history, it then writes the
// connection's rpcws.joined frame, with the topic's position, before any
// event of the topic (see positions.go); with presence, it records p in
// the topic's presence; with sessions, it saves p's session.
func (c *cluster) join(ctx context.Context, p *Peer, name string) error {
	subject := Topic(name).mustSubject()
	s, g, ready, err := c.enter(p, name, subject)
	if err != nil || s == nil {
		return err
	}
	if ready != nil {
		c.awaitInEffect(ctx, s, ready)
	}
	if !c.hist.engine() {
		return nil
	}
	// The engine's other steps share one more join timeout.
	ectx, cancel := c.joinContext(ctx)
	defer cancel()
	if g != nil {
		if err := c.joinAt(ctx, ectx, p, name, subject, g); err != nil {
			return err
		}
	}
	c.addPresence(ectx, p, subject)
	c.changed(ectx, p)
	return nil
}

// enter makes p a member of a topic, under the lock, with a held gate when
// the handler keeps history. It returns a nil subscription when p was a
// member already, and the channel to wait on for the broker, if any.
func (c *cluster) enter(p *Peer, name, subject string) (s *subscription, g *gate, ready chan struct{}, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.addr.gone {
		return nil, nil, nil, ErrClosed
	}
	if _, in := c.subs[subject].membersOf()[p]; in {
		return nil, nil, nil, nil
	}
	if err := c.admit(p, name, subject); err != nil {
		return nil, nil, nil, err
	}
	s = c.addMember(p, kindTopic, name, subject)
	if p.addr.topics == nil {
		p.addr.topics = make(map[string]*subscription)
	}
	p.addr.topics[name] = s
	if c.hist.on() {
		g = p.hold(name)
	}
	return s, g, s.readyOf(), nil
}

// joinAt reads the topic's position, once the subscription is in effect,
// and opens p's gate with the joined frame. When the engine does not tell
// the position within ectx (ctx bounded by the join timeout), the join is
// undone and fails.
func (c *cluster) joinAt(ctx, ectx context.Context, p *Peer, name, subject string, g *gate) error {
	pos, _, err := c.hist.hb.History(ectx, subject, 0, 0)
	if err != nil {
		c.exit(p, name)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.warn(&c.logSubscribe, "join failed: the broker did not tell the topic's position", "topic", name, "error", err)
		return &BrokerError{Op: "join topic " + strconv.Quote(name), Err: err}
	}
	frame, err := codec.EncodeEvent(JoinedEvent, JoinedData{Topic: name, Epoch: pos.Epoch, Offset: pos.Offset})
	if err != nil {
		c.exit(p, name)
		return err
	}
	// Written within the connection's life, not the caller's context: a
	// gate left held would take no more events.
	overflow, err := c.open(p.Context(), p, name, g, pos, [][]byte{frame})
	if err != nil {
		return err
	}
	if overflow {
		c.resyncTopic(p, name)
	}
	return nil
}

// leave takes p out of a topic; the subject is unsubscribed in the
// background when p was its last local member. With history it writes
// rpcws.left, as Notify writes; with presence or sessions it waits for the
// engine at most the join timeout.
func (c *cluster) leave(ctx context.Context, p *Peer, name string) {
	var was bool
	if c.hist.on() {
		// No join of the topic writes its joined frame between the exit
		// and the left frame.
		p.pos.writing.Lock()
		was = c.exit(p, name)
		if frame, err := codec.EncodeEvent(LeftEvent, LeftData{Topic: name}); err == nil {
			p.send(ctx, frame) // as Notify writes
		}
		p.pos.writing.Unlock()
	} else {
		was = c.exit(p, name)
	}
	if was && c.hist.engine() {
		ectx, cancel := c.joinContext(ctx)
		defer cancel()
		c.removePresence(ectx, p, Topic(name).mustSubject())
		c.changed(ectx, p)
	}
}

// exit takes p out of a topic under the lock, and reports whether it was
// a member.
func (c *cluster) exit(p *Peer, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, in := p.addr.topics[name]
	if !in {
		return false
	}
	delete(p.addr.topics, name)
	c.release(p, name)
	c.removeMember(p, s)
	p.dropGate(name)
	return true
}
