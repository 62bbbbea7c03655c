package rpcws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The handler's side of history, sessions and presence (PROTOCOL.md,
// "Sessions and recovery"): the optional broker interfaces it found, the
// options with their defaults, and the keeper goroutine that vouches for
// the live sessions and presence entries of this replica.

// ErrNoHistory is the error of [Handler.History] on a handler without
// history: [HandlerOptions.History] is nil, or its broker keeps none.
var ErrNoHistory = errors.New("rpcws: this handler keeps no topic history")

// ErrNoPresence is the error of [Handler.Presence] on a handler without
// presence: [HandlerOptions.Presence] is nil, or its broker keeps none.
var ErrNoPresence = errors.New("rpcws: this handler keeps no presence")

// ErrBadLimit is the error of a [Handler.History] whose limit is not
// within 1..[MaxHistoryLimit].
var ErrBadLimit = errors.New("rpcws: a history limit is 1 to 1000 events")

// MaxHistoryLimit is the most events one [Handler.History] returns.
const MaxHistoryLimit = 1000

// TopicHistory is what [Handler.History] returns: the topic's position and
// its last events, oldest first.
type TopicHistory struct {
	Epoch  string       `json:"epoch"`
	Offset uint64       `json:"offset"` // of the topic's last event
	Events []TopicEvent `json:"events"`
}

// TopicEvent is one event of a [TopicHistory].
type TopicEvent struct {
	Offset uint64          `json:"offset"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
}

// history is what a handler keeps of history, sessions and presence; nil
// fields are turned off.
type history struct {
	hb       HistoryBroker  // with sb, or both nil
	sb       SessionBroker  // with hb, or both nil
	pb       PresenceBroker // nil: no presence
	policy   HistoryPolicy
	window   time.Duration // the recovery window
	presTTL  time.Duration
	stop     chan struct{} // closed at Shutdown: the keeper ends
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// startHistory finds the broker interfaces that the options ask for and
// starts the keeper. A broker that lacks one turns its feature off, with
// an Error line: the handler runs without it.
func (c *cluster) startHistory() {
	o := c.h.opts
	hs := &history{stop: make(chan struct{})}
	if o.History != nil {
		hb, ok1 := c.broker.(HistoryBroker)
		sb, ok2 := c.broker.(SessionBroker)
		if ok1 && ok2 {
			hs.hb, hs.sb = hb, sb
			hs.policy = HistoryPolicy{Size: orDefault(o.History.Size, DefaultHistorySize), TTL: orDefault(o.History.TTL, DefaultHistoryTTL)}
			hs.window = orDefault(o.History.RecoveryWindow, DefaultRecoveryWindow)
		} else {
			c.logger().Error("rpcws: HandlerOptions.History is set but the broker keeps no history or sessions: running without them",
				"broker", fmt.Sprintf("%T", c.broker))
		}
	}
	if o.Presence != nil {
		if pb, ok := c.broker.(PresenceBroker); ok {
			hs.pb = pb
			hs.presTTL = orDefault(o.Presence.TTL, DefaultPresenceTTL)
		} else {
			c.logger().Error("rpcws: HandlerOptions.Presence is set but the broker keeps no presence: running without it",
				"broker", fmt.Sprintf("%T", c.broker))
		}
	}
	c.hist = hs
	if hs.hb != nil {
		hs.wg.Add(1)
		go c.keep(hs.window/3, c.touchSessions)
	}
	if hs.pb != nil {
		hs.wg.Add(1)
		go c.keep(hs.presTTL/3, c.refreshPresence)
	}
}

// on reports whether history and sessions are kept.
func (hs *history) on() bool { return hs != nil && hs.hb != nil }

// engine reports whether joins and leaves have anything to keep in the
// engine: history and sessions, or presence.
func (hs *history) engine() bool { return hs != nil && (hs.hb != nil || hs.pb != nil) }

// stopHistory ends the keeper and waits for it.
func (c *cluster) stopHistory() {
	hs := c.hist
	if hs == nil {
		return
	}
	hs.stopOnce.Do(func() { close(hs.stop) })
	hs.wg.Wait()
}

// keep runs f every interval until the handler shuts down.
func (c *cluster) keep(interval time.Duration, f func(ctx context.Context)) {
	defer c.hist.wg.Done()
	t := time.NewTicker(max(interval, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.hist.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
		f(ctx)
		cancel()
	}
}

// History returns the last limit events (1 to [MaxHistoryLimit]) of topic
// that the broker still keeps, oldest first, with the topic's position: an
// application's scrollback. Events are as they were published: their
// types and data. Errors: [ErrNoHistory] when the handler keeps none,
// [ErrBadLimit], [ErrBadName], or a [*BrokerError] when the engine did
// not answer.
func (h *Handler) History(ctx context.Context, topic string, limit int) (TopicHistory, error) {
	c := h.cluster
	if !c.hist.on() {
		return TopicHistory{}, ErrNoHistory
	}
	if limit < 1 || limit > MaxHistoryLimit {
		return TopicHistory{}, fmt.Errorf("%w: %d", ErrBadLimit, limit)
	}
	subject, _, err := Topic(topic).subject()
	if err != nil {
		return TopicHistory{}, err
	}
	bctx, cancel := brokerContext(ctx)
	defer cancel()
	pos, events, err := c.hist.hb.History(bctx, subject, 0, limit)
	if err != nil {
		if ctx.Err() != nil {
			return TopicHistory{}, ctx.Err()
		}
		return TopicHistory{}, &BrokerError{Op: "read the history of topic " + fmt.Sprintf("%q", topic), Err: err}
	}
	th := TopicHistory{Epoch: pos.Epoch, Offset: pos.Offset, Events: make([]TopicEvent, 0, len(events))}
	for _, e := range events {
		env, ok := parseBrokerEnvelope(e.Msg)
		if !ok {
			continue
		}
		var ev struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if _, err := rebuildEvent(env.frame, c.maxFrame); err != nil || json.Unmarshal(env.frame, &ev) != nil {
			continue
		}
		if ev.Data == nil {
			ev.Data = json.RawMessage("null")
		}
		th.Events = append(th.Events, TopicEvent{Offset: e.Offset, Type: ev.Type, Data: ev.Data})
	}
	return th, nil
}

// brokerContext bounds ctx by brokerTimeout when it has no deadline.
func brokerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, brokerTimeout)
}

// joinContext bounds a broker call that a join or a close waits for by the
// join timeout (brokerTimeout when joins never wait), and by ctx.
func (c *cluster) joinContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.joinTimeout
	if d <= 0 {
		d = brokerTimeout
	}
	return context.WithTimeout(ctx, d)
}
