// Package eventq is the queue between a client's reading goroutine and its
// application's event handler: package codec's client hands events to
// OnEvent through one, and package rpcws's reconnecting client feeds one
// from each of its connections in turn, so that the handler sees every
// connection's events in order, one at a time.
package eventq

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// DefaultMaxBytes is how many bytes of events a queue holds unless told
// otherwise: 1 MiB, as much as one frame of a server with default limits.
const DefaultMaxBytes = 1 << 20

// eventCost is what an event costs in the queue beyond its type and data:
// the queue's slot and the two allocations behind it, rounded up. It makes
// a flood of empty events count too.
const eventCost = 64

// Queue holds the events received but not yet handed to its handler, and
// runs the goroutine that hands them over while there are any. Readers add;
// the delivering goroutine takes. Its zero value ignores every event; Init
// gives it a handler.
type Queue struct {
	onEvent  func(string, json.RawMessage) // nil: events are ignored
	maxBytes int                           // < 0: no cap
	logf     func(msg string, args ...any)
	dropped  atomic.Uint64
	stopped  atomic.Bool // set by Stop: deliver no more

	mu      sync.Mutex // guards the fields below
	events  []event
	bytes   int  // what the queued events cost
	running bool // the delivering goroutine runs
}

type event struct {
	typ  string
	data json.RawMessage
}

// Init sets the queue's handler, its byte budget (zero: DefaultMaxBytes;
// negative: none) and where it reports a dropped event (nil: nowhere).
// Call it before the first Add.
func (q *Queue) Init(onEvent func(string, json.RawMessage), maxBytes int, logf func(string, ...any)) {
	q.onEvent, q.logf = onEvent, logf
	q.maxBytes = maxBytes
	if q.maxBytes == 0 {
		q.maxBytes = DefaultMaxBytes
	}
}

// Enabled reports whether the queue has a handler: without, Add does
// nothing.
func (q *Queue) Enabled() bool { return q.onEvent != nil }

// Add queues an event, copying data, and starts the goroutine that
// delivers events if it is not running. An event that does not fit in the
// byte budget is dropped and counted, unless the queue is empty: then it
// is taken, whatever its size, so that the queue never holds more than the
// budget plus one frame.
func (q *Queue) Add(typ string, data []byte) {
	if q.onEvent == nil || q.stopped.Load() {
		return
	}
	cost := len(typ) + len(data) + eventCost
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.maxBytes >= 0 && len(q.events) > 0 && q.bytes+cost > q.maxBytes {
		q.dropped.Add(1)
		if q.logf != nil {
			q.logf("dropped an event: OnEvent is behind", "type", typ)
		}
		return
	}
	var raw json.RawMessage
	if data != nil {
		raw = append(json.RawMessage(nil), data...)
	}
	q.events = append(q.events, event{typ, raw})
	q.bytes += cost
	if !q.running {
		q.running = true
		go q.deliver()
	}
}

// deliver hands queued events to the handler one at a time, and exits when
// the queue is empty, so that an idle client keeps no goroutine for it.
func (q *Queue) deliver() {
	for {
		q.mu.Lock()
		if len(q.events) == 0 || q.stopped.Load() {
			q.events, q.bytes = nil, 0
			q.running = false
			q.mu.Unlock()
			return
		}
		ev := q.events[0]
		q.events[0] = event{}
		q.events = q.events[1:]
		q.bytes -= len(ev.typ) + len(ev.data) + eventCost
		q.mu.Unlock()
		q.onEvent(ev.typ, ev.data)
	}
}

// Stop makes the delivering goroutine exit before the next event; events
// still queued, or added later, are not delivered.
func (q *Queue) Stop() { q.stopped.Store(true) }

// Dropped returns how many events did not fit in the budget.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }
