package codec

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrQueueFull is the error of a frame that a connection's outbound queue
// has no room for. [ServerCodec.Enqueue] returns it at once; a peer that
// cannot take a frame is reading too slowly.
var ErrQueueFull = errors.New("codec: outbound queue full: peer reads too slowly")

// outbox is the one path by which a server codec writes its connection:
// replies, error replies and pushed events, in the order they were handed to
// it. Whoever finds it idle writes on its own goroutine, and then writes
// whatever others queued meanwhile, so a lone reply crosses no goroutine and
// a connection keeps no writer goroutine while idle. Frames that arrive while
// a write is under way wait in a queue bounded in bytes.
type outbox struct {
	conn   Conn
	ctx    context.Context // bounds writes: the codec's life
	max    int64           // queued bytes allowed; > 0
	charge func(n int64)   // counts bytes held against the budgets; may be nil

	mu      sync.Mutex // guards the fields below
	queue   [][]byte
	queued  int64         // bytes in queue
	writing bool          // a goroutine is writing
	room    chan struct{} // closed when the queue shrinks or the outbox ends; nil if no one waits
	idle    chan struct{} // closed when writing stops; nil if no one waits
	sealed  bool          // no frame is taken any more
	err     error         // after a write failed: every later write fails with it (it matches ErrClosed)
}

// write writes frame, or queues it behind the write under way. own means the
// caller may reuse frame once write returns: a queued frame is then copied.
// With wait, a caller that finds the outbox idle writes frame itself, and one
// that finds the queue full waits for room until ctx ends. Without wait,
// write never blocks: it queues frame and, if no one is writing, starts a
// goroutine that does; on a full queue it returns [ErrQueueFull].
func (o *outbox) write(ctx context.Context, frame []byte, own, wait bool) error {
	n := int64(len(frame))
	o.mu.Lock()
	for {
		if o.sealed {
			o.mu.Unlock()
			return ErrClosed
		}
		if o.err != nil {
			err := o.err
			o.mu.Unlock()
			return err
		}
		if !o.writing && wait {
			break
		}
		if o.queued == 0 || o.queued+n <= o.max {
			if own {
				frame = append([]byte(nil), frame...)
			}
			o.queue = append(o.queue, frame)
			o.queued += n
			start := !o.writing
			o.writing = true
			o.mu.Unlock()
			o.count(n)
			if start {
				go o.run()
			}
			return nil
		}
		if !wait {
			o.mu.Unlock()
			return ErrQueueFull
		}
		if o.room == nil {
			o.room = make(chan struct{})
		}
		room := o.room
		o.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
	// Idle: write on this goroutine, then whatever was queued meanwhile.
	o.writing = true
	o.mu.Unlock()
	o.count(n)
	err := o.conn.WriteFrame(o.ctx, frame)
	o.count(-n)
	o.mu.Lock()
	o.drain(err)
	if err != nil {
		err = o.err
	}
	o.mu.Unlock()
	return err
}

// run writes the queue on a goroutine of its own until it is empty.
func (o *outbox) run() {
	o.mu.Lock()
	o.drain(nil)
	o.mu.Unlock()
}

// drain writes the queue until it is empty, then marks the outbox idle.
// first is the result of the write the caller just made. o.mu is held, and
// released while writing.
func (o *outbox) drain(first error) {
	err := first
	for {
		if err != nil && o.err == nil {
			o.err = fmt.Errorf("%w: %w", ErrClosed, err)
			o.dropQueue()
		}
		if len(o.queue) == 0 || o.err != nil {
			break
		}
		frame := o.queue[0]
		o.queue[0] = nil
		o.queue = o.queue[1:]
		n := int64(len(frame))
		o.queued -= n
		o.signalRoom()
		o.mu.Unlock()
		err = o.conn.WriteFrame(o.ctx, frame)
		o.count(-n) // held until written
		o.mu.Lock()
	}
	o.queue = nil
	o.writing = false
	o.signalRoom()
	if o.idle != nil {
		close(o.idle)
		o.idle = nil
	}
}

// dropQueue forgets the frames queued. o.mu is held.
func (o *outbox) dropQueue() {
	if o.queued > 0 {
		o.count(-o.queued)
	}
	o.queue, o.queued = nil, 0
	o.signalRoom()
}

func (o *outbox) signalRoom() {
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
}

func (o *outbox) count(n int64) {
	if o.charge != nil {
		o.charge(n)
	}
}

// flush waits until nothing is written or queued, or ctx ends.
func (o *outbox) flush(ctx context.Context) error {
	o.mu.Lock()
	if !o.writing {
		o.mu.Unlock()
		return nil
	}
	if o.idle == nil {
		o.idle = make(chan struct{})
	}
	idle := o.idle
	o.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// seal makes the outbox take no more frames and drops those queued; a write
// under way finishes. It is what a connection that is being torn down does
// first, so that no reply is written for work cut short.
func (o *outbox) seal() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sealed = true
	o.dropQueue()
}
