package rpcws

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
)

// A connection's session (PROTOCOL.md, "Sessions and recovery"): its
// secret id, told to the client in the connection's first frame, and its
// record in the broker's engine: the connection's topics, identity, peer
// ID and replica, saved when its topics change, vouched for while it
// lives, saved to outlive it by the recovery window when it ends. The id
// is never logged; where it is compared, it is compared in constant time.

// sessionIDBytes is the randomness of a session id: 192 bits.
const sessionIDBytes = 24

// maxSessionID is the longest session id a client may send back.
const maxSessionID = 128

// session is one connection's session.
type session struct {
	id   string
	hash [sha256.Size]byte // of id: what a takeover names
	user string            // identityKey of the connection

	sem chan struct{} // one save at a time; guards what follows
	// version counts the changes of the connection's topics, from 1;
	// saved is the version the engine holds (0: none saved yet).
	version atomic.Uint64
	saved   uint64
	taken   atomic.Bool // recovered by another connection: never saved again
	ended   atomic.Bool // its connection closed: endSession saves it last
}

// sessionRecord is what the broker keeps of a session.
type sessionRecord struct {
	User   string   `json:"u"` // identityKey
	Peer   string   `json:"p"`
	Node   string   `json:"n"`
	Topics []string `json:"t"`
}

// newSession returns a session for a connection of identity.
func (h *Handler) newSession(identity any) *session {
	b := make([]byte, sessionIDBytes)
	rand.Read(b) // never fails (crypto/rand)
	id := base64.RawURLEncoding.EncodeToString(b)
	s := &session{id: id, hash: sha256.Sum256([]byte(id)), user: h.identityKey(identity), sem: make(chan struct{}, 1)}
	s.version.Store(1)
	return s
}

// identityKey is what binds a session to an identity: a hash of the user
// name, or, for an identity without one, of its Go type and value; "" for
// none (a nil identity with no user name).
func (h *Handler) identityKey(identity any) string {
	var key string
	switch name := h.userName(identity); {
	case name != "":
		key = "user\x00" + name
	case identity == nil:
		return ""
	default:
		key = fmt.Sprintf("identity\x00%T\x00%v", identity, identity)
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// sameUser compares identity keys in constant time.
func sameUser(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// openSession gives p its session and queues its frame, the connection's
// first, when the handler keeps history.
func (h *Handler) openSession(p *Peer) {
	hs := h.cluster.hist
	if !hs.on() {
		return
	}
	p.sess = h.newSession(p.identity)
	frame, err := codec.EncodeEvent(SessionEvent, SessionData{ID: p.sess.id, Window: hs.window.Milliseconds()})
	if err == nil {
		p.out.TryWrite(frame) // the queue is empty: it fits
	}
}

// changed notes that p's topics changed, and saves its session within
// ctx: a join or leave waits for the engine at most that long.
func (c *cluster) changed(ctx context.Context, p *Peer) {
	s := p.sess
	if s == nil {
		return
	}
	s.version.Add(1)
	ctx, cancel := c.joinContext(ctx)
	defer cancel()
	c.saveSession(ctx, p)
}

// saveSession saves p's session unless the engine holds its latest
// version already (or it was taken over). Saves of one session run one at
// a time, so that an older record never replaces a newer one.
func (c *cluster) saveSession(ctx context.Context, p *Peer) {
	s := p.sess
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return // another save is under way: it or the next one saves this
	}
	defer func() { <-s.sem }()
	v := s.version.Load()
	if s.taken.Load() || s.ended.Load() || s.saved == v {
		return
	}
	rec, err := json.Marshal(sessionRecord{User: s.user, Peer: p.id, Node: c.node, Topics: p.Topics()})
	if err != nil {
		return
	}
	if err := c.hist.sb.SaveSession(ctx, s.id, rec, c.hist.window); err != nil {
		c.warn(&c.logSubscribe, "could not save a session: a client that reconnects may not recover", "peer", p.id, "error", err)
		return
	}
	s.saved = v
}

// endSession makes p's session outlive its connection by the recovery
// window: saved when the engine does not hold its last version, else only
// vouched for, so that a session taken meanwhile is not brought back.
func (c *cluster) endSession(ctx context.Context, p *Peer, topics []string) {
	s := p.sess
	if s == nil {
		return
	}
	s.ended.Store(true) // a join's save that comes later would store no topics
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.sem }()
	if s.taken.Load() {
		return
	}
	var err error
	if s.saved == s.version.Load() {
		err = c.hist.sb.TouchSessions(ctx, []string{s.id}, c.hist.window)
	} else {
		var rec []byte
		rec, err = json.Marshal(sessionRecord{User: s.user, Peer: p.id, Node: c.node, Topics: topics})
		if err == nil {
			err = c.hist.sb.SaveSession(ctx, s.id, rec, c.hist.window)
		}
	}
	if err != nil && !errors.Is(err, ErrBrokerClosed) { // closed: the replica is gone, as a crash would be
		c.warn(&c.logSubscribe, "could not save a closed connection's session: its client may not recover", "peer", p.id, "error", err)
	}
}

// touchSessions vouches for the sessions of the live connections: their
// records expire a window after the replica stops doing so.
func (c *cluster) touchSessions(ctx context.Context) {
	var ids []string
	for _, p := range c.h.Peers() {
		if p.sess != nil {
			ids = append(ids, p.sess.id)
		}
	}
	if len(ids) == 0 {
		return
	}
	if err := c.hist.sb.TouchSessions(ctx, ids, c.hist.window); err != nil {
		c.warn(&c.logSubscribe, "could not vouch for the live sessions", "sessions", len(ids), "error", err)
	}
}

// takeSession takes the session id for p: it must be known, not expired,
// not taken before, and of p's identity.
func (c *cluster) takeSession(ctx context.Context, p *Peer, id string) (sessionRecord, bool) {
	var rec sessionRecord
	if id == "" || len(id) > maxSessionID {
		return rec, false
	}
	raw, err := c.hist.sb.TakeSession(ctx, id)
	if err != nil {
		return rec, false
	}
	if json.Unmarshal(raw, &rec) != nil || !sameUser(rec.User, p.sess.user) {
		return rec, false
	}
	return rec, true
}

// putBack saves a session taken by a recovery that did not reach its
// client, under its id, for the recovery window: the client sends it
// again. It is bounded by the join timeout.
func (c *cluster) putBack(id string, rec sessionRecord) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return
	}
	ctx, cancel := c.joinContext(context.Background())
	defer cancel()
	if err := c.hist.sb.SaveSession(ctx, id, raw, c.hist.window); err != nil && !errors.Is(err, ErrBrokerClosed) {
		c.warn(&c.logSubscribe, "could not put back a session whose recovery did not reach its client", "error", err)
	}
}

// The control message that closes a connection whose session another
// connection took over: version byte controlVersion, the target peer's ID
// (uvarint length and bytes), then the SHA-256 of the session's id. It
// goes to the target's node subject. A replica closes the target only
// when that connection's session id hashes to what the message carries:
// whoever can publish to the broker but does not know the session id can
// close no connection with it (a publish to a peer can already fill its
// queue and cut it as a slow consumer; this can do no more).
const controlVersion = 2

// TakenOverReason is the close reason, with status 1008, of a connection
// whose session a new connection recovered.
const TakenOverReason = "rpcws: session taken over by a new connection"

// takeOver asks the replica of the record's connection, if it is still
// open, to close it.
func (c *cluster) takeOver(ctx context.Context, rec sessionRecord, id string) {
	if rec.Node == "" || rec.Peer == "" {
		return
	}
	sum := sha256.Sum256([]byte(id))
	msg := []byte{controlVersion}
	msg = appendUvarintString(msg, rec.Peer)
	msg = append(msg, sum[:]...)
	bctx, cancel := c.joinContext(ctx)
	defer cancel()
	if err := c.broker.Publish(bctx, nodeSubject(rec.Node), msg); err != nil {
		c.warn(&c.logPublish, "could not ask for a taken-over connection to close", "peer", rec.Peer, "error", err)
	}
}

// control handles a control message from the broker.
func (c *cluster) control(subject string, msg []byte) {
	target, rest, ok := readUvarintString(msg[1:])
	if !ok || len(rest) != sha256.Size || subject != nodeSubject(c.node) {
		c.refuse(subject, errNotEnvelope, len(msg))
		return
	}
	c.mu.RLock()
	p := c.peers[target]
	c.mu.RUnlock()
	if p == nil || p.sess == nil {
		return
	}
	s := p.sess
	if subtle.ConstantTimeCompare(s.hash[:], rest) != 1 {
		return
	}
	s.taken.Store(true)
	go p.conn.closeWith(websocket.StatusPolicyViolation, TakenOverReason)
}
