package rpcws

import (
	"encoding/json"
	"maps"
	"sync"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/eventq"
)

// maxTrackedTopics caps the topics whose positions a client keeps: more
// than a server lets a connection join (128 by default), and few enough
// that its rpcws.recover fits in a frame. A topic beyond it is not listed
// on recovery, and the server then names it in its rpcws.resync.
const maxTrackedTopics = 1024

// snapshot is what a reconnecting client recovers: the session of its last
// connection and where each of its topics stood.
type snapshot struct {
	session string // secret: never logged
	topics  map[string]Position
}

// tracker follows one connection's session and topic positions from the
// library's frames and the positions of topic events (PROTOCOL.md,
// "Sessions and recovery"), and hands the application's events to its
// queue. onEvent runs on the connection's reading goroutine; the
// reconnecting goroutine reads and resets the tracker.
type tracker struct {
	events *eventq.Queue
	logf   func(string, ...any)

	mu      sync.Mutex // guards the fields below
	session string     // from the connection's rpcws.session
	topics  map[string]Position
	joined  map[string]bool     // topics of rpcws.joined on this connection
	old     map[string]struct{} // the topics of the session it recovers
	taken   bool                // the server has restored that session here: see took
}

// newTracker returns the tracker of a new connection that will recover
// snap: it starts from snap's positions, which the replayed events move
// on. Without a session to recover, it starts with no topic.
func newTracker(snap snapshot, events *eventq.Queue, logf func(string, ...any)) *tracker {
	t := &tracker{events: events, logf: logf, topics: make(map[string]Position), joined: make(map[string]bool), old: make(map[string]struct{})}
	if snap.session != "" {
		maps.Copy(t.topics, snap.topics)
		for topic := range snap.topics {
			t.old[topic] = struct{}{}
		}
	}
	return t
}

// took notes whether an event shows that the server restored the old
// session on this connection: an event of one of its topics that this
// connection did not join itself (restoring writes no rpcws.joined), or a
// resync of them. A recovery cut short before its reply is then tried
// again with this connection's session, which now holds the topics: the
// old one is used up.
func (t *tracker) took(topic string) {
	if _, ok := t.old[topic]; ok && !t.joined[topic] {
		t.taken = true
	}
}

// onEvent takes one event of the connection: it keeps the library's frames
// to itself, drops an event it has had already, notes a topic event's
// position and queues the event for the application.
func (t *tracker) onEvent(ev codec.Event) {
	if libraryEvent(ev.Type) {
		t.libraryFrame(ev)
		return
	}
	if ev.Offset > 0 && validPosition(ev.Topic, ev.Epoch) {
		t.mu.Lock()
		p, ok := t.topics[ev.Topic]
		if ok && p.Epoch == ev.Epoch && ev.Offset <= p.Offset {
			t.mu.Unlock()
			return // had already: a server must send none twice
		}
		if ok || len(t.topics) < maxTrackedTopics {
			t.topics[ev.Topic] = Position{Epoch: ev.Epoch, Offset: ev.Offset}
		}
		t.took(ev.Topic)
		t.mu.Unlock()
	}
	if ev.Type == ResyncEvent && len(t.old) > 0 {
		t.resynced(ev.Data)
	}
	t.events.Add(ev.Type, ev.Data)
}

// resynced notes the topics of a resync (all of them when it names none).
func (t *tracker) resynced(data []byte) {
	var gap struct{ Topics []string }
	json.Unmarshal(data, &gap)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(gap.Topics) == 0 {
		t.taken = true
	}
	for _, topic := range gap.Topics {
		t.took(topic)
	}
}

// libraryFrame takes an event of the library's: rpcws.session,
// rpcws.joined, rpcws.left, and any other that this client does not know,
// which the application never sees either.
func (t *tracker) libraryFrame(ev codec.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Type {
	case SessionEvent:
		var d SessionData
		if json.Unmarshal(ev.Data, &d) == nil && d.ID != "" && len(d.ID) <= 128 {
			t.session = d.ID
		}
	case JoinedEvent:
		var d JoinedData
		if json.Unmarshal(ev.Data, &d) != nil || !validPosition(d.Topic, d.Epoch) {
			return
		}
		if _, ok := t.topics[d.Topic]; !ok && len(t.topics) >= maxTrackedTopics {
			t.logf("too many topics to keep their positions", "topic", d.Topic)
			return
		}
		t.topics[d.Topic] = Position{Epoch: d.Epoch, Offset: d.Offset}
		t.joined[d.Topic] = true
	case LeftEvent:
		var d LeftData
		if json.Unmarshal(ev.Data, &d) == nil {
			delete(t.topics, d.Topic)
			delete(t.joined, d.Topic)
		}
	}
}

// validPosition reports whether a topic and its epoch are what a server
// sends (a name of [MaxNameLen] characters at most, an epoch of 64 bytes
// at most), so that what the client keeps of a topic stays small.
func validPosition(topic, epoch string) bool {
	return validName(topic) && epoch != "" && len(epoch) <= 64
}

// snapshot returns the connection's session and positions, to recover on
// the next connection.
func (t *tracker) snapshot() snapshot { return t.snapshotAs("") }

// snapshotAs is snapshot with session in place of the connection's own
// (when session is not ""). After a recovery cut short, the session to
// recover next is the old one, unless the server has restored it here
// (see took), and the positions are those of the events received
// meanwhile.
func (t *tracker) snapshotAs(session string) snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if session == "" || t.taken && t.session != "" {
		session = t.session
	}
	return snapshot{session: session, topics: maps.Clone(t.topics)}
}

// recovered takes in the reply of rpcws.recover: the connection is in the
// reply's topics, at the position of the reply or of a later event
// received since, and in those it joined meanwhile.
func (t *tracker) recovered(reply *RecoverReply) {
	t.mu.Lock()
	defer t.mu.Unlock()
	topics := make(map[string]Position, len(reply.Topics))
	for topic, tr := range reply.Topics {
		if len(topics) == maxTrackedTopics {
			break
		}
		p := Position{Epoch: tr.Epoch, Offset: tr.Offset}
		if q, ok := t.topics[topic]; ok && q.Epoch == p.Epoch && q.Offset > p.Offset {
			p = q
		}
		topics[topic] = p
	}
	for topic := range t.joined {
		if _, ok := topics[topic]; !ok {
			topics[topic] = t.topics[topic]
		}
	}
	t.topics = topics
}

// notRecovered forgets the old connection's topics: the connection is in
// those it joined itself, if any.
func (t *tracker) notRecovered() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic := range t.topics {
		if !t.joined[topic] {
			delete(t.topics, topic)
		}
	}
}
