package rpcws

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"unicode/utf8"

	"github.com/rpcws/rpcws/codec"
)

// Recovery (PROTOCOL.md, "Sessions and recovery", Recovering): the
// handler answers rpcws.recover itself, on the connection's reading
// goroutine, before it reads the next frame; the request never reaches
// net/rpc. It must be the connection's first frame.

// sessionConn is the codec's view of a connection whose handler keeps
// history: it takes rpcws.recover requests out of the frames it reads.
type sessionConn struct {
	transport
	p    *Peer
	read bool // a frame was read before: a recover now is BadRequest
}

// mayRecover reports whether frame may be a recover request: one of the
// markers is in every such frame, however its type is escaped. Frames
// without are passed on unparsed.
func mayRecover(frame []byte) bool {
	return bytes.Contains(frame, []byte("recover")) || bytes.Contains(frame, []byte(`\u`))
}

// ReadFrame reads the next frame for the codec, answering the recover
// requests among them.
func (c *sessionConn) ReadFrame(ctx context.Context, buf []byte) ([]byte, error) {
	for {
		frame, err := c.transport.ReadFrame(ctx, buf)
		if err != nil || !mayRecover(frame) {
			c.read = true
			return frame, err
		}
		id, data, ok := parseRecover(frame)
		if !ok {
			c.read = true
			return frame, nil // not one: the codec answers what it is
		}
		first := !c.read
		c.read = true
		switch {
		case id == nil:
			c.p.h.logAt(slog.LevelDebug, "dropped an rpcws.recover notification: it needs an id")
		case !first:
			c.p.replyError(id, codec.CodeBadRequest, "rpcws.recover must be the connection's first request")
		default:
			c.p.h.cluster.recoverRequest(c.p, id, data)
		}
		buf = frame
	}
}

// parseRecover reads frame as a recover request: it returns its id (nil
// for none) and data, and false when the frame is not one.
func parseRecover(frame []byte) (id, data json.RawMessage, ok bool) {
	if !utf8.Valid(frame) {
		return nil, nil, false
	}
	var req struct {
		ID   json.RawMessage `json:"id"`
		Type *string         `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(frame, &req) != nil || req.Type == nil || *req.Type != RecoverMethod || len(req.ID) > codec.MaxIDLength {
		return nil, nil, false
	}
	if bytes.Equal(req.ID, []byte("null")) {
		req.ID = nil
	}
	return req.ID, req.Data, true
}

// replyError writes an error reply to request id, waiting for room.
func (p *Peer) replyError(id json.RawMessage, code, message string) {
	p.send(p.Context(), codec.EncodeErrorReply(id, code, message))
}

// reply writes the success reply to request id of type typ.
func (p *Peer) reply(id json.RawMessage, typ string, v any) error {
	frame, err := codec.EncodeReply(id, typ, v)
	if err != nil {
		return err
	}
	return p.send(p.Context(), frame)
}

// recoverRequest serves one rpcws.recover request of p.
func (c *cluster) recoverRequest(p *Peer, id, data json.RawMessage) {
	var args RecoverArgs
	if len(data) > 0 && !bytes.Equal(data, []byte("null")) {
		if err := json.Unmarshal(data, &args); err != nil {
			p.replyError(id, codec.CodeInvalidParams, "rpcws.recover: data must be {\"session\": string, \"topics\": {topic: {\"epoch\": string, \"offset\": number}}}")
			return
		}
	}
	reply, taken, ok := c.recover(p.Context(), p, args)
	if ok && p.reply(id, RecoverMethod, reply) == nil {
		return
	}
	// The connection closed before its client had the reply: the client
	// will recover again with the session it sent, so the session is put
	// back as it was, for the recovery window.
	if taken != nil {
		c.putBack(args.Session, *taken)
	}
}

// restoring is one topic of a session being restored.
type restoring struct {
	name, subject string
	s             *subscription
	g             *gate
	ready         chan struct{}
}

// recover restores p's session from args: its topics, the events they
// missed, a resync for what cannot be, and the reply. taken is the
// session's record when it was taken for p; ok is false when the
// connection closed meanwhile.
func (c *cluster) recover(ctx context.Context, p *Peer, args RecoverArgs) (reply RecoverReply, taken *sessionRecord, ok bool) {
	reply = RecoverReply{Topics: map[string]TopicRecovery{}}
	// The engine's reads of a recovery share brokerTimeout: past it, the
	// topics left are joined, unrecovered.
	ctx, cancel := context.WithTimeout(ctx, brokerTimeout)
	defer cancel()
	rec, ok := c.takeSession(ctx, p, args.Session)
	if !ok {
		var lost []string
		for t := range args.Topics {
			if validName(t) {
				lost = append(lost, t)
			}
		}
		return reply, nil, c.sendResync(p, lost)
	}
	reply.Recovered, taken = true, &rec
	c.takeOver(ctx, rec, args.Session)
	var topics []restoring
	var lost []string
	for _, name := range dedupe(rec.Topics) {
		if !validName(name) {
			continue
		}
		r := restoring{name: name, subject: Topic(name).mustSubject()}
		var err error
		if r.s, r.g, r.ready, err = c.enter(p, name, r.subject); err != nil || r.s == nil {
			lost = append(lost, name) // over a limit, say
			continue
		}
		topics = append(topics, r)
	}
	for _, r := range topics {
		if r.ready != nil {
			c.awaitInEffect(ctx, r.s, r.ready)
		}
	}
	subjects := make([]string, 0, len(topics))
	for _, r := range topics {
		tr, err := c.restore(ctx, p, r, rec.Peer, args.Topics)
		if err != nil {
			return reply, taken, false
		}
		if !tr.Recovered {
			lost = append(lost, r.name)
		}
		reply.Topics[r.name] = tr
		subjects = append(subjects, r.subject)
	}
	if !c.sendResync(p, lost) {
		return reply, taken, false
	}
	c.addPresence(p.Context(), p, subjects...)
	c.changed(p.Context(), p)
	return reply, taken, true
}

// restore replays one topic's missed events to p, if they are all still
// in history, and opens its gate.
func (c *cluster) restore(ctx context.Context, p *Peer, r restoring, oldPeer string, listed map[string]Position) (TopicRecovery, error) {
	at, has := listed[r.name]
	after, limit := uint64(0), 0
	if has && at.Epoch != "" {
		after, limit = at.Offset, c.hist.policy.Size
	}
	pos, events, err := c.hist.hb.History(ctx, r.subject, after, limit)
	if err != nil {
		c.warn(&c.logSubscribe, "recovery: the broker did not tell a topic's history", "topic", r.name, "error", err)
		pos = Position{} // the first live event sets it
	}
	ok := err == nil && limit > 0 && at.Epoch == pos.Epoch && complete(events, after, pos.Offset)
	var replay [][]byte
	if ok {
		// The replay's bytes count in the connection's budgets until
		// written, as its replies do: a replay the shared budget has no
		// room for is not made, and the topic is resynced instead.
		held := replayBytes(events)
		if ok = p.adm.Hold(held); ok {
			defer p.adm.Charge(-held)
			replay = c.replayFrames(r.name, pos.Epoch, events, oldPeer)
		}
	}
	events = nil // not kept while the replay is written
	overflow, err := c.open(p.Context(), p, r.name, r.g, pos, replay)
	if err != nil {
		return TopicRecovery{}, err
	}
	now, _ := p.positionOf(r.name)
	return TopicRecovery{Epoch: now.Epoch, Offset: now.Offset, Recovered: ok && !overflow}, nil
}

// replayBytes is what a replay of events holds until written: each
// event's message, and its frame built from it.
func replayBytes(events []HistoryEvent) int64 {
	var n int64
	for _, e := range events {
		n += 2 * int64(len(e.Msg))
	}
	return n
}

// complete reports whether events are every event after offset after up
// to offset last, in order.
func complete(events []HistoryEvent, after, last uint64) bool {
	if last < after || uint64(len(events)) != last-after {
		return false
	}
	for i, e := range events {
		if e.Offset != after+uint64(i)+1 {
			return false
		}
	}
	return true
}

// replayFrames returns the frames of events as the connection would have
// received them live: those that excluded the old connection are left
// out, as they did not reach it.
func (c *cluster) replayFrames(topic, epoch string, events []HistoryEvent, oldPeer string) [][]byte {
	out := make([][]byte, 0, len(events))
	for _, e := range events {
		env, ok := parseBrokerEnvelope(e.Msg)
		if !ok || env.except != "" && env.except == oldPeer {
			continue
		}
		frame, err := rebuildEvent(env.frame, c.maxFrame)
		if err != nil {
			continue
		}
		frame = codec.AppendPosition(nil, frame, topic, epoch, e.Offset)
		if c.maxFrame > 0 && len(frame) > c.maxFrame {
			continue
		}
		out = append(out, frame)
	}
	return out
}

// sendResync writes one resync naming topics to p, if there are any,
// waiting for room; it reports false when the connection closed.
func (c *cluster) sendResync(p *Peer, topics []string) bool {
	if len(topics) == 0 {
		return true
	}
	frame, err := resyncFrame(sorted(topics))
	if err != nil {
		return true
	}
	if p.maxFrame > 0 && len(frame) > p.maxFrame {
		// Too many to name (a client listed thousands): an empty list
		// tells that anything may have been lost.
		frame, _ = resyncFrame(nil)
	}
	c.resyncs.Add(1)
	return p.send(p.Context(), frame) == nil
}

// dedupe returns s sorted, without repeats.
func dedupe(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
