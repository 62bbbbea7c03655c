package codec

import (
	"context"
	"sync"
	"sync/atomic"
)

// A Budget bounds, in bytes, what server connections hold: requests read and
// not yet done, replies being written, frames queued to be written. A codec
// stops reading its connection while its own budget or the shared one is
// spent, and reads on once enough has been answered or written; nothing is
// refused. One Budget shared by every connection of a server bounds them
// together, so that many clients at once cannot exhaust its memory.
//
// A Budget is safe for concurrent use.
type Budget struct {
	max     int64
	used    atomic.Int64
	waiting atomic.Int32 // readers in wait

	mu   sync.Mutex
	wake chan struct{} // closed when used falls below max; nil if no one waits
}

// NewBudget returns a budget of max bytes; max <= 0 means no bound.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// InUse returns the bytes held against the budget now.
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// add adds n (negative: frees -n) to what is held.
func (b *Budget) add(n int64) {
	if b == nil {
		return
	}
	used := b.used.Add(n)
	if n < 0 && used < b.max && b.waiting.Load() > 0 {
		b.mu.Lock()
		if b.wake != nil {
			close(b.wake)
			b.wake = nil
		}
		b.mu.Unlock()
	}
}

// room reports whether n more bytes fit in the budget.
func (b *Budget) room(n int64) bool {
	return b == nil || b.max <= 0 || b.used.Load()+n <= b.max
}

// spent reports whether the budget is used up.
func (b *Budget) spent() bool {
	return b != nil && b.max > 0 && b.used.Load() >= b.max
}

// wait returns once the budget is not used up, or with ctx's error.
func (b *Budget) wait(ctx context.Context) error {
	for b.spent() {
		b.mu.Lock()
		b.waiting.Add(1)
		if !b.spent() { // freed since: add may not have seen this waiter
			b.waiting.Add(-1)
			b.mu.Unlock()
			return nil
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
			b.waiting.Add(-1)
		case <-ctx.Done():
			b.waiting.Add(-1)
			return ctx.Err()
		}
	}
	return nil
}
