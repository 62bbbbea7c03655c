package codec

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// Default of [NewOutbox]'s bound.
const DefaultMaxQueuedBytes = 64 << 10 // bytes queued per connection: 64 KiB

// ErrQueueFull is the error of [Outbox.TryWrite] for a frame that the queue
// has no room for: the peer reads too slowly.
var ErrQueueFull = errors.New("codec: outbound queue full: peer reads too slowly")

// ErrTooLarge is the error of an event larger than the peer's frame limit.
var ErrTooLarge = errors.New("codec: frame larger than the peer's limit")

// A BatchConn is a [Conn] that can write several frames with one send. The
// [Outbox] hands it the frames that queued while it wrote the last ones, so
// that the replies and events of a busy connection leave together: batching
// follows from load, with no timer.
type BatchConn interface {
	Conn
	// WriteFrames writes the frames, in order, as WriteFrame would each.
	// It must not keep them after it returns.
	WriteFrames(ctx context.Context, frames [][]byte) error
}

// Outbox is the one writer of a connection: a server's replies, error
// replies and pushed events, or a client's requests, leave through it, in
// the order they were handed to it. Whoever finds it idle writes on its
// own goroutine, then writes whatever others queued meanwhile, all at once
// over a [BatchConn]; so a lone reply crosses no goroutine and an idle
// connection keeps no writer goroutine. Under load, frames gather into
// larger batches (see drain). Frames wait in a queue bounded in bytes;
// every byte queued or being written is charged to the connection's
// [Admission] until the connection has taken it. Once the admission
// closes, the outbox writes nothing more and drops what is queued.
//
// It is safe for concurrent use.
type Outbox struct {
	conn  Conn
	batch BatchConn // conn, when it is one
	adm   *Admission
	max   int64  // bytes queued; > 0
	yield func() // runtime.Gosched; a test's hook (see drain)

	mu      sync.Mutex // guards the fields below
	queue   [][]byte
	queued  int64         // bytes in queue
	copies  *[]byte       // holds the queued frames that Write was lent (see keep); nil when none
	writing bool          // a goroutine is writing
	busy    int           // sends of one frame to come before the outbox is quiet again (see drain)
	room    chan struct{} // closed when the queue shrinks or the outbox ends; nil if no one waits
	idle    chan struct{} // closed when writing stops; nil if no one waits
	err     error         // after a write failed: every later write fails with it (it matches ErrClosed)
}

// busyAfterBatch is how many sends of one frame in a row end the busy
// spell that a send of several frames begins (see drain).
const busyAfterBatch = 8

// NewOutbox returns the writer of conn, which charges adm with the bytes it
// holds. maxQueued bounds the bytes queued behind the write under way: zero
// means [DefaultMaxQueuedBytes], negative no bound (the transport's write
// timeout still bounds a peer that stops reading).
func NewOutbox(conn Conn, adm *Admission, maxQueued int) *Outbox {
	o := &Outbox{conn: conn, adm: adm, max: int64(maxQueued), yield: runtime.Gosched}
	o.batch, _ = conn.(BatchConn)
	switch {
	case o.max == 0:
		o.max = DefaultMaxQueuedBytes
	case o.max < 0:
		o.max = 1 << 62
	}
	return o
}

// Write writes frame after the frames handed over before it, waiting for
// room in the queue until ctx ends (it then returns ctx's error). A frame
// larger than the queue's bound waits for an empty queue. An idle outbox
// writes frame on the calling goroutine, unless it is busy (see drain).
// With own, the caller may reuse frame once Write returns (a queued frame
// is copied); without, frame must not change afterwards, and may be shared
// between connections. It returns an error matching [ErrClosed] once the
// outbox writes no more.
func (o *Outbox) Write(ctx context.Context, frame []byte, own bool) error {
	n := int64(len(frame))
	o.mu.Lock()
	for {
		if err := o.closedErr(); err != nil {
			o.mu.Unlock()
			return err
		}
		if !o.writing && o.busy == 0 {
			return o.writeNow(frame) // unlocks
		}
		if o.fits(n) {
			if own {
				frame = o.keep(frame)
			}
			o.enqueue(frame)
			o.mu.Unlock()
			return nil
		}
		room := o.waitRoom()
		o.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
}

// TryWrite queues frame without waiting, and starts a goroutine to write it
// when no one is writing; frame must not change afterwards. When the queue
// has no room it returns [ErrQueueFull] at once. One frame always fits an
// empty queue.
func (o *Outbox) TryWrite(frame []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.closedErr(); err != nil {
		return err
	}
	if !o.fits(int64(len(frame))) {
		return ErrQueueFull
	}
	o.enqueue(frame)
	return nil
}

// keep returns a copy of frame, made in o.copies, for the queue: under
// load every frame queues, and a copy apiece would be an allocation per
// call (BenchmarkShared64Small). o.mu is held.
func (o *Outbox) keep(frame []byte) []byte {
	if o.copies == nil {
		o.copies = copiesPool.Get().(*[]byte)
	}
	b := *o.copies
	start := len(b)
	b = append(b, frame...) // frames copied before stay where they are
	*o.copies = b
	return b[start:len(b):len(b)]
}

// copiesPool holds the storage of Outbox.copies between batches: an idle
// outbox keeps none.
var copiesPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxKeptCopies is the largest storage of copies given back to the pool.
const maxKeptCopies = 64 << 10

// freeCopies gives back the storage of the copies of a batch once sent or
// dropped.
func freeCopies(b *[]byte) {
	if b != nil && cap(*b) <= maxKeptCopies {
		*b = (*b)[:0]
		copiesPool.Put(b)
	}
}

// fits reports whether n more bytes fit the queue. o.mu is held.
func (o *Outbox) fits(n int64) bool { return o.queued == 0 || o.queued+n <= o.max }

// enqueue queues frame and charges it, and starts a goroutine to write the
// queue if no one is writing. o.mu is held.
func (o *Outbox) enqueue(frame []byte) {
	o.queue = append(o.queue, frame)
	o.queued += int64(len(frame))
	o.adm.Charge(int64(len(frame)))
	if !o.writing {
		o.writing = true
		go o.run()
	}
}

// closedErr returns why the outbox writes no more, or nil. o.mu is held.
func (o *Outbox) closedErr() error {
	if o.err != nil {
		return o.err
	}
	if o.adm.isClosed() {
		return ErrClosed
	}
	return nil
}

// writeNow writes frame on the calling goroutine, then the queue. o.mu is
// held, and released.
func (o *Outbox) writeNow(frame []byte) error {
	o.writing = true
	o.mu.Unlock()
	n := int64(len(frame))
	o.adm.Charge(n)
	err := o.conn.WriteFrame(o.adm.Context(), frame)
	o.adm.Charge(-n)
	o.mu.Lock()
	o.drain(err, true)
	err = o.err
	o.mu.Unlock()
	return err
}

// run writes the queue on a goroutine of its own until it is empty.
func (o *Outbox) run() {
	o.mu.Lock()
	o.drain(nil, false)
	o.mu.Unlock()
}

// drain writes the queue until it is empty, then marks the outbox idle.
// first is the result of the write the caller just made, if sent: sent
// tells that a send just ended. o.mu is held, and released while writing.
//
// Batching under load: frames that queued during a send, or while the
// outbox is busy, wait while the drainer yields its processor once, so
// that the goroutines ready to write (the replies of a burst of requests,
// the calls of many callers) join the batch. After a send of several
// frames the outbox is busy until busyAfterBatch sends of one frame in a
// row: meanwhile Write queues its frame for a goroutine that drains so,
// rather than writing it at once. Neither needs a clock, and a lone call,
// or one call on each of many connections, meets neither.
//
// Side by side in bench/peers (64 callers on one connection, medians of 5
// alternated rounds), neither / the yield / the queueing (busy for one
// send) / both: 63,060 / 79,300 / 70,130 / 79,510 calls/s, and on the
// 1 KiB echo 53,290 / 60,500 / 49,230 / 69,730; both ends' writes per call
// fell from 1.56 to 0.68. Busy for 1 / 4 / 8 / 16 single sends, in
// BenchmarkShared64Small (medians of 5 alternated runs): 87,455 / 103,260
// / 107,116 / 111,227 calls/s, 0.70 / 0.20 / 0.19 / 0.17 writes per call;
// BenchmarkConns64Small and BenchmarkCallSmall did not move. See
// bench/peers/README.md.
func (o *Outbox) drain(first error, sent bool) {
	err := first
	yielded := false
	for {
		if err == nil && o.adm.isClosed() {
			err = ErrClosed
		}
		if err != nil && o.err == nil {
			o.err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		if o.err != nil {
			o.dropQueue()
		}
		if len(o.queue) == 0 {
			break
		}
		if (sent || o.busy > 0) && !yielded {
			o.mu.Unlock()
			o.yield()
			o.mu.Lock()
			yielded = true
			continue // the outbox may have closed meanwhile
		}
		yielded = false
		frames, n, copies := o.queue, o.queued, o.copies
		o.queue, o.queued, o.copies = nil, 0, nil
		if len(frames) > 1 {
			o.busy = busyAfterBatch
		} else if o.busy > 0 {
			o.busy--
		}
		o.signalRoom()
		o.mu.Unlock()
		err = o.send(frames)
		freeCopies(copies)
		o.adm.Charge(-n) // held until written
		o.mu.Lock()
		sent = true
	}
	o.writing = false
	o.signalRoom()
	if o.idle != nil {
		close(o.idle)
		o.idle = nil
	}
}

// send writes frames: at once over a BatchConn, else one by one.
func (o *Outbox) send(frames [][]byte) error {
	ctx := o.adm.Context()
	if o.batch != nil && len(frames) > 1 {
		return o.batch.WriteFrames(ctx, frames)
	}
	for _, f := range frames {
		if err := o.conn.WriteFrame(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// dropQueue forgets the frames queued. o.mu is held.
func (o *Outbox) dropQueue() {
	if o.queued > 0 {
		o.adm.Charge(-o.queued)
	}
	o.queue, o.queued = nil, 0
	freeCopies(o.copies)
	o.copies = nil
	o.signalRoom()
}

// waitRoom returns a channel closed when the queue shrinks. o.mu is held.
func (o *Outbox) waitRoom() chan struct{} {
	if o.room == nil {
		o.room = make(chan struct{})
	}
	return o.room
}

func (o *Outbox) signalRoom() {
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
}

// Flush waits until nothing is written or queued, or ctx ends.
func (o *Outbox) Flush(ctx context.Context) error {
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
