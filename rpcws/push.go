package rpcws

import (
	"context"
	"errors"
	"sync"

	"github.com/coder/websocket"
)

// ErrSlowConsumer is the error of a push to a connection whose queue of
// events is full: the peer reads too slowly. The connection is closed with
// status 1008 (policy violation) and the reason [SlowConsumerReason].
var ErrSlowConsumer = errors.New("rpcws: event queue full: peer reads too slowly")

// SlowConsumerReason is the close reason sent to a peer whose event queue
// overflowed.
const SlowConsumerReason = "rpcws: event queue overflow: client reads too slowly"

// ErrClosed is the error of a push to a connection that has closed.
var ErrClosed = errors.New("rpcws: connection closed")

// pushQueue is a connection's bounded queue of events to push. A goroutine
// writes it, and runs only while the queue has some: an idle connection keeps
// none.
type pushQueue struct {
	conn transport
	max  int // <= 0: no cap

	mu      sync.Mutex // guards the fields below
	queue   [][]byte
	writing bool          // the writing goroutine is running
	idle    chan struct{} // closed when it stops; nil when it never ran
	closed  bool
}

// push queues an event frame without waiting. frame must not change
// afterwards; it may be shared between connections.
func (q *pushQueue) push(frame []byte) error {
	q.mu.Lock()
	if q.closed || q.conn.context().Err() != nil {
		q.mu.Unlock()
		return ErrClosed
	}
	if q.max > 0 && len(q.queue) >= q.max {
		q.closed = true
		q.queue = nil
		q.mu.Unlock()
		go q.conn.closeWith(websocket.StatusPolicyViolation, SlowConsumerReason)
		return ErrSlowConsumer
	}
	q.queue = append(q.queue, frame)
	start := !q.writing
	if start {
		q.writing = true
		q.idle = make(chan struct{})
	}
	q.mu.Unlock()
	if start {
		go q.write()
	}
	return nil
}

// write writes queued events until the queue is empty.
func (q *pushQueue) write() {
	ctx := q.conn.context()
	for {
		q.mu.Lock()
		if len(q.queue) == 0 || q.closed {
			q.queue = nil
			q.writing = false
			close(q.idle)
			q.mu.Unlock()
			return
		}
		frame := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		if err := q.conn.WriteFrame(ctx, frame); err != nil {
			q.mu.Lock()
			q.closed = true
			q.mu.Unlock()
			q.conn.closeWith(websocket.StatusInternalError, "")
		}
	}
}

// waitFlushed waits until no event waits to be written, or ctx ends.
func (q *pushQueue) waitFlushed(ctx context.Context) error {
	q.mu.Lock()
	writing, idle := q.writing, q.idle
	q.mu.Unlock()
	if !writing {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
