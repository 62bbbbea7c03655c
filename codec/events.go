package codec

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// DefaultMaxQueuedEventBytes is how many bytes of received events may wait
// for [ClientOptions.OnEvent] unless [ClientOptions.MaxQueuedEventBytes]
// says otherwise: 1 MiB, as much as one frame of a server with default
// limits.
const DefaultMaxQueuedEventBytes = 1 << 20

// eventCost is what an event costs in the queue beyond its type and data:
// the queue's slot and the two allocations behind it, rounded up. It makes
// a flood of empty events count too.
const eventCost = 64

// eventQueue holds the events received but not yet handed to OnEvent, and
// runs the goroutine that hands them over while there are any. The reading
// goroutine adds; the delivering goroutine takes.
type eventQueue struct {
	onEvent  func(string, json.RawMessage) // nil: events are ignored
	maxBytes int                           // < 0: no cap
	logf     func(msg string, args ...any)
	dropped  atomic.Uint64
	stopped  atomic.Bool // set by Close: deliver no more

	mu      sync.Mutex // guards the fields below
	events  []event
	bytes   int  // what the queued events cost
	running bool // the delivering goroutine runs
}

type event struct {
	typ  string
	data json.RawMessage
}

func (q *eventQueue) init(onEvent func(string, json.RawMessage), maxBytes int, logf func(string, ...any)) {
	q.onEvent, q.logf = onEvent, logf
	q.maxBytes = maxBytes
	if q.maxBytes == 0 {
		q.maxBytes = DefaultMaxQueuedEventBytes
	}
}

// add queues an event, copying typ and data, and starts the goroutine that
// delivers events if it is not running. An event that does not fit in the
// byte budget is dropped, unless the queue is empty: then it is taken,
// whatever its size, so that the queue never holds more than the budget
// plus one frame.
func (q *eventQueue) add(typ, data []byte) {
	if q.onEvent == nil {
		return
	}
	cost := len(typ) + len(data) + eventCost
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.maxBytes >= 0 && len(q.events) > 0 && q.bytes+cost > q.maxBytes {
		q.dropped.Add(1)
		q.logf("dropped an event: OnEvent is behind", "type", string(typ))
		return
	}
	var raw json.RawMessage
	if data != nil {
		raw = append(json.RawMessage(nil), data...)
	}
	q.events = append(q.events, event{string(typ), raw})
	q.bytes += cost
	if !q.running {
		q.running = true
		go q.deliver()
	}
}

// deliver hands queued events to OnEvent one at a time, and exits when the
// queue is empty, so that an idle client keeps no goroutine for it.
func (q *eventQueue) deliver() {
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

// stop makes the delivering goroutine exit before the next event.
func (q *eventQueue) stop() { q.stopped.Store(true) }
