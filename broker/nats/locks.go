package nats

import (
	"context"
	"sync"
)

// topicLocks lets one publish with history per topic at a time on this
// node: the node's own publishers then queue for a topic instead of
// racing each other for its next offset (each race lost costs a publish
// and a read). Entries live while a publish holds or awaits them.
type topicLocks struct {
	mu sync.Mutex // guards m
	m  map[string]*topicLock
}

type topicLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

// lock takes subject's lock, or fails when ctx ends first; unlock gives
// it back.
func (l *topicLocks) lock(ctx context.Context, subject string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*topicLock)
	}
	t := l.m[subject]
	if t == nil {
		t = &topicLock{ch: make(chan struct{}, 1)}
		l.m[subject] = t
	}
	t.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if t.refs--; t.refs == 0 {
			delete(l.m, subject)
		}
		l.mu.Unlock()
	}
	select {
	case t.ch <- struct{}{}:
		return func() { <-t.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
