package codec

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Defaults of [AdmissionOptions].
const (
	DefaultMaxInFlight  = 64      // requests in flight per connection
	DefaultMaxConnBytes = 4 << 20 // bytes held per connection: 4 MiB
)

// What a request costs against the budgets beyond its frame: the goroutine
// that net/rpc runs it on and the codec's record of it; and for each
// function given to [ServerCodec.AfterReply], the goroutine it runs on.
const (
	requestCost    = 4 << 10
	afterReplyCost = 4 << 10
)

// ErrDraining is the error of [Admission.Acquire] once the connection is
// draining: the codec answers such a request with code Unavailable.
var ErrDraining = errors.New("codec: connection is draining")

// AdmissionOptions configures an [Admission]. A nil *AdmissionOptions is
// valid and means all defaults. Zero means the default, negative none.
type AdmissionOptions struct {
	// MaxInFlight caps the requests being served at once, with the work
	// they leave behind ([ServerCodec.AfterReply]). Zero means
	// [DefaultMaxInFlight].
	MaxInFlight int

	// MaxConnBytes bounds the bytes the connection holds: its requests in
	// flight (their frames, and requestCost each), the frames queued or
	// being written, and a large frame being read. Zero means
	// [DefaultMaxConnBytes].
	MaxConnBytes int64

	// Budget, if set, is charged with the same bytes, shared with other
	// connections: while it is spent, none of them takes a request.
	Budget *Budget

	// Share, if set, bounds the requests in flight of a group of
	// connections (those of one client address) together.
	Share *Share
}

// admissionState is the life of a connection, as admission sees it.
type admissionState uint8

const (
	admitting admissionState = iota // takes requests
	draining                        // refuses new requests; those in flight finish
	closed                          // takes and writes nothing more
)

// Admission is the policy of one server connection: whether, and when, it
// takes another request. The [ServerCodec] asks it before serving each
// request and tells it when the request is done; the [Outbox] charges it
// with the frames it holds; a transport with a large frame being read holds
// bytes of it. While the connection is at its in-flight cap, or its bytes or
// the shared [Budget] are spent, the reader waits (the connection is
// paused), so that a flood from one peer is held back by the transport
// rather than by memory.
//
// Its states are admitting, draining ([Admission.Drain]) and closed
// ([Admission.Close]), under one lock. Its context ends when it closes.
type Admission struct {
	maxSlots int64
	maxBytes int64 // <= 0: none
	budget   *Budget
	share    *Share

	ctx    context.Context
	cancel context.CancelFunc
	paused atomic.Bool // the reader waits in Acquire

	mu      sync.Mutex // guards the fields below
	state   admissionState
	slots   int64         // requests in flight
	bytes   int64         // bytes held
	changed chan struct{} // closed when slots or bytes fall, or the state changes; nil if no one waits
}

// NewAdmission returns the admission of one connection.
func NewAdmission(opts *AdmissionOptions) *Admission {
	var o AdmissionOptions
	if opts != nil {
		o = *opts
	}
	a := &Admission{maxSlots: int64(o.MaxInFlight), maxBytes: o.MaxConnBytes, budget: o.Budget, share: o.Share}
	switch {
	case a.maxSlots == 0:
		a.maxSlots = DefaultMaxInFlight
	case a.maxSlots < 0:
		a.maxSlots = 1 << 62
	}
	if a.maxBytes == 0 {
		a.maxBytes = DefaultMaxConnBytes
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// Context returns a context that ends when the admission closes.
func (a *Admission) Context() context.Context { return a.ctx }

// Acquire waits until the connection may take one more request, then takes
// a slot for it, one of the connection's and one of its [Share]'s, and
// charges cost bytes. It returns [ErrDraining] while the connection drains
// and [ErrClosed] once it is closed, taking nothing. Give the slot and the
// bytes back with [Admission.Done].
func (a *Admission) Acquire(cost int64) error {
	a.paused.Store(true)
	defer a.paused.Store(false)
	if err := a.takeSlot(cost); err != nil {
		return err
	}
	if a.budget.wait(a.ctx) != nil || a.share.acquire(a.ctx) != nil {
		a.mu.Lock()
		a.slots--
		a.bytes -= cost
		a.signal()
		a.mu.Unlock()
		return ErrClosed
	}
	a.budget.add(cost)
	return nil
}

// takeSlot waits for a slot of the connection's own, and for its bytes to
// fall below the bound, then takes the slot and charges cost to them.
func (a *Admission) takeSlot(cost int64) error {
	a.mu.Lock()
	for {
		switch {
		case a.state == closed:
			a.mu.Unlock()
			return ErrClosed
		case a.state == draining:
			a.mu.Unlock()
			return ErrDraining
		case a.slots < a.maxSlots && (a.maxBytes < 0 || a.bytes < a.maxBytes):
			a.slots++
			a.bytes += cost
			a.mu.Unlock()
			return nil
		}
		ch := a.waitChange()
		a.mu.Unlock()
		<-ch
		a.mu.Lock()
	}
}

// waitChange returns the channel closed at the next change. a.mu is held.
func (a *Admission) waitChange() chan struct{} {
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	return a.changed
}

// signal wakes whoever waits for a change. a.mu is held.
func (a *Admission) signal() {
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
}

// Done gives back the slot of a finished request, with the cost in bytes it
// was charged.
func (a *Admission) Done(cost int64) {
	a.mu.Lock()
	a.slots--
	a.bytes -= cost
	a.signal()
	a.mu.Unlock()
	a.budget.add(-cost)
	a.share.release()
}

// Charge adds n bytes (negative: frees -n) to what the connection holds,
// and to the shared budget.
func (a *Admission) Charge(n int64) {
	a.mu.Lock()
	a.bytes += n
	if n < 0 {
		a.signal()
	}
	a.mu.Unlock()
	a.budget.add(n)
}

// Hold charges n bytes of a large frame being read, unless the shared
// budget has no room for them: it then reports false and charges nothing.
// (The connection's own bytes may run over by a frame: it takes no request
// before they fall again.) Give them back with Charge(-n).
func (a *Admission) Hold(n int64) bool {
	if !a.budget.room(n) {
		return false
	}
	a.Charge(n)
	return true
}

// Paused reports whether the reader waits for room now: a transport whose
// keepalive counts on reads (pongs arrive with them) learns here not to.
func (a *Admission) Paused() bool { return a.paused.Load() }

// InFlight returns the requests in flight.
func (a *Admission) InFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.slots)
}

// Drain makes the connection refuse new requests, and waits until those in
// flight are done, or ctx ends.
func (a *Admission) Drain(ctx context.Context) error {
	a.mu.Lock()
	if a.state == admitting {
		a.state = draining
		a.signal()
	}
	for a.slots > 0 {
		ch := a.waitChange()
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
	}
	a.mu.Unlock()
	return nil
}

// Close makes the admission take nothing more and ends its context. The
// [Outbox] writes nothing from then on.
func (a *Admission) Close() {
	a.mu.Lock()
	a.state = closed
	a.signal()
	a.mu.Unlock()
	a.cancel()
}

// isClosed reports whether the admission is closed.
func (a *Admission) isClosed() bool { return a.ctx.Err() != nil }

// A Share bounds the requests in flight of a group of connections together:
// those of one client address, so that an address that opens many
// connections gets no more of the server than its share. A reader that
// finds the share taken waits in line, in order of arrival, which also
// makes the readers of a flooding group take turns. A nil *Share bounds
// nothing.
type Share struct{ sem *semaphore.Weighted }

// NewShare returns a share of n requests in flight; n <= 0 returns nil, no
// bound.
func NewShare(n int) *Share {
	if n <= 0 {
		return nil
	}
	return &Share{sem: semaphore.NewWeighted(int64(n))}
}

func (s *Share) acquire(ctx context.Context) error {
	if s == nil || s.sem.TryAcquire(1) {
		return nil
	}
	return s.sem.Acquire(ctx, 1)
}

func (s *Share) release() {
	if s != nil {
		s.sem.Release(1)
	}
}

// Turn waits for a turn in the share and gives it back at once: a frame
// that is no request (a ping) waits its turn as a request does, so that a
// group cannot take the server's time with frames that hold no slot.
func (s *Share) Turn(ctx context.Context) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	s.release()
	return nil
}
