package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// engineTimeout bounds a read of presence or history from the broker's
// engine, so that a stalled engine fails the request rather than holding it.
const engineTimeout = 5 * time.Second

// PresenceArgs is the data of topic.presence.
type PresenceArgs struct {
	Topic json.RawMessage `json:"topic"`
	rpcws.Caller
}

// Member is one connection in a topic's presence.
type Member struct {
	Peer string `json:"peer"`
	User string `json:"user"`
}

// PresenceReply is the result of topic.presence.
type PresenceReply struct {
	Topic   string   `json:"topic"`
	Members []Member `json:"members"`
}

// Presence lists every connection in the topic on every replica, once
// each.
func (t *topics) Presence(args *PresenceArgs, reply *PresenceReply) error {
	topic, err := name("topic", args.Topic)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext(args.Peer())
	defer cancel()
	members, err := t.s.rpc.Presence(ctx, topic)
	if err != nil {
		return engineError(err)
	}
	reply.Topic = topic
	reply.Members = make([]Member, 0, len(members))
	for _, m := range members {
		reply.Members = append(reply.Members, Member{Peer: m.Peer, User: m.User})
	}
	return nil
}

// HistoryArgs is the data of topic.history.
type HistoryArgs struct {
	Topic json.RawMessage `json:"topic"`
	Limit json.RawMessage `json:"limit"`
	rpcws.Caller
}

// HistoryEvent is one event of topic.history's result.
type HistoryEvent struct {
	Offset uint64          `json:"offset"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
}

// HistoryReply is the result of topic.history.
type HistoryReply struct {
	Topic  string         `json:"topic"`
	Epoch  string         `json:"epoch"`
	Offset uint64         `json:"offset"`
	Events []HistoryEvent `json:"events"`
}

// History returns the topic's last limit events still in history, oldest
// first, and its position: an application's scrollback.
func (t *topics) History(args *HistoryArgs, reply *HistoryReply) error {
	topic, err := name("topic", args.Topic)
	if err != nil {
		return err
	}
	limit, err := historyLimit(args.Limit)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext(args.Peer())
	defer cancel()
	h, err := t.s.rpc.History(ctx, topic, limit)
	if err != nil {
		return engineError(err)
	}
	*reply = HistoryReply{Topic: topic, Epoch: h.Epoch, Offset: h.Offset, Events: make([]HistoryEvent, 0, len(h.Events))}
	for _, e := range h.Events {
		reply.Events = append(reply.Events, HistoryEvent{Offset: e.Offset, Type: e.Type, Data: orNull(e.Data)})
	}
	return nil
}

// historyLimit decodes topic.history's limit: a JSON integer from 1 to
// rpcws.MaxHistoryLimit (1000). Anything else is InvalidParams.
func historyLimit(raw json.RawMessage) (int, error) {
	var n int
	if len(raw) == 0 || json.Unmarshal(raw, &n) != nil || n < 1 || n > rpcws.MaxHistoryLimit {
		return 0, &codec.Error{Code: codec.CodeInvalidParams, Message: "limit must be an integer from 1 to 1000"}
	}
	return n, nil
}

// requestContext is the context of a read from the engine: the
// connection's, bounded by engineTimeout.
func requestContext(p *rpcws.Peer) (context.Context, context.CancelFunc) {
	ctx := context.Background()
	if p != nil {
		ctx = p.Context()
	}
	return context.WithTimeout(ctx, engineTimeout)
}

// CodeNotKept is the error code of topic.history on a server started
// with -history-size 0, and of topic.presence on one without presence.
const CodeNotKept = "NotKept"

// engineError gives the handler's "not kept here" errors a code of their
// own; any other error goes out as the handler made it.
func engineError(err error) error {
	if errors.Is(err, rpcws.ErrNoHistory) || errors.Is(err, rpcws.ErrNoPresence) {
		return &codec.Error{Code: CodeNotKept, Message: err.Error()}
	}
	return err
}
