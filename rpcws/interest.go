package rpcws

import (
	"context"
	"time"
)

// The broker's side of the hub: a few workers bring the broker's
// subscriptions in line with the local interest, taking subjects from two
// queues, subscribes first (a join waits on them) and unsubscribes after (a
// closed connection's topics wait on no one). No lock is held across a
// broker call; a subject is handled by one worker at a time, so its
// Subscribe and Unsubscribe calls stay in order. A Subscribe that fails
// parks its subject for a retry: the members it let in get a resync once it
// succeeds.

const (
	// interestWorkers bounds the broker calls under way at once, and
	// unsubscribeWorkers those of them that unsubscribe, so that joins
	// always find a worker free however slowly a closed connection's
	// topics are unsubscribed.
	interestWorkers    = 8
	unsubscribeWorkers = interestWorkers / 2
	// retryMin and retryMax bound the wait before failed subscriptions are
	// tried again; it doubles with each failure in a row.
	retryMin, retryMax = 250 * time.Millisecond, 5 * time.Second
)

// reconcile queues s for a worker when the broker's side differs from the
// interest, or forgets s when it has neither members nor subscription. The
// caller holds cluster.mu.
func (c *cluster) reconcile(s *subscription) {
	if s.queued || s.busy {
		return // its worker, or its retry, looks at it again
	}
	want := len(s.members) > 0
	switch {
	case want && !s.confirmed:
		c.subQ = append(c.subQ, s)
	case !want && s.held:
		c.unsubQ = append(c.unsubQ, s)
	default:
		if !want && s.ready != nil {
			// Its members left before it was subscribed: a join that
			// waits for it waits no more.
			close(s.ready)
			s.ready = nil
		}
		if !want && c.subs[s.subject] == s {
			delete(c.subs, s.subject)
		}
		return
	}
	s.queued = true
	if c.workers < interestWorkers && !c.closed {
		c.workers++
		c.wg.Add(1)
		go c.work()
	}
}

// next takes the next subscription to work on: subscribes first, then
// unsubscribes while fewer than unsubscribeWorkers are under way.
func (c *cluster) next() *subscription {
	var s *subscription
	switch {
	case len(c.subQ) > 0:
		s, c.subQ[0] = c.subQ[0], nil
		c.subQ = c.subQ[1:]
	case len(c.unsubQ) > 0 && c.unsubscribing < unsubscribeWorkers:
		s, c.unsubQ[0] = c.unsubQ[0], nil
		c.unsubQ = c.unsubQ[1:]
	}
	if len(c.subQ) == 0 && len(c.unsubQ) == 0 {
		c.subQ, c.unsubQ = nil, nil // let the backing arrays of a storm go
	}
	return s
}

// work calls the broker for queued subjects until the queues are empty.
func (c *cluster) work() {
	defer c.wg.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed {
		s := c.next()
		if s == nil {
			break
		}
		s.queued = false
		want := len(s.members) > 0
		if want && s.confirmed || !want && !s.held {
			c.reconcile(s)
			continue
		}
		s.busy = true
		if !want {
			c.unsubscribing++
			// From now on the broker may drop the subscription: a join
			// meanwhile waits for it to be made again.
			s.confirmed = false
		}
		c.mu.Unlock()
		err := c.callBroker(want, s.subject)
		c.mu.Lock()
		if !want {
			c.unsubscribing--
		}
		s.busy = false
		if c.settle(s, want, err) {
			c.mu.Unlock()
			c.resync([]string{s.subject}, "a subscription took effect late")
			c.mu.Lock()
		}
	}
	c.workers--
}

// callBroker subscribes to subject, or unsubscribes, within brokerTimeout.
func (c *cluster) callBroker(subscribe bool, subject string) error {
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	if subscribe {
		return c.broker.Subscribe(ctx, subject)
	}
	return c.broker.Unsubscribe(ctx, subject)
}

// settle records what the broker answered for s, wakes the joins waiting
// on it and queues s again when the interest changed meanwhile. It reports
// whether s's members need a resync: the subscription is in effect and a
// member was let in before it was.
func (c *cluster) settle(s *subscription, subscribed bool, err error) (resync bool) {
	if subscribed {
		s.held = true
		s.confirmed = err == nil
		if s.ready != nil {
			close(s.ready) // a join that waited is let in, late when it failed
			s.ready = nil
		}
		if err != nil {
			s.late = true
			c.warn(&c.logSubscribe, "broker subscribe failed; retrying", "subject", s.subject, "error", err)
			c.park(s)
			return false
		}
		c.retryWait = 0
		resync, s.late = s.late && len(s.members) > 0, false
	} else {
		s.held, s.confirmed = false, false
		if err != nil {
			c.warn(&c.logSubscribe, "broker unsubscribe failed", "subject", s.subject, "error", err)
		}
	}
	c.reconcile(s)
	return resync
}

// park holds s until the next retry.
func (c *cluster) park(s *subscription) {
	s.queued = true
	c.parked = append(c.parked, s)
	if c.retry != nil || c.closed {
		return
	}
	c.retryWait = min(max(2*c.retryWait, retryMin), retryMax)
	c.retry = time.AfterFunc(c.retryWait, c.unpark)
}

// unpark queues the parked subscriptions again.
func (c *cluster) unpark() {
	c.mu.Lock()
	defer c.mu.Unlock()
	parked := c.parked
	c.parked, c.retry = nil, nil
	for _, s := range parked {
		s.queued = false
		c.reconcile(s)
	}
}

// awaitInEffect waits until s's subscription is in effect, for at most the
// join timeout or until ctx ends. A join that stops waiting first is let in
// late: its connection gets a resync once the subscription is in effect.
func (c *cluster) awaitInEffect(ctx context.Context, s *subscription, ready <-chan struct{}) {
	if c.joinTimeout < 0 {
		c.markLate(s)
		return
	}
	t := time.NewTimer(c.joinTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	c.markLate(s)
}

func (c *cluster) markLate(s *subscription) {
	c.mu.Lock()
	if !s.confirmed {
		s.late = true
	}
	c.mu.Unlock()
}

// readyOf returns a channel closed when s's pending Subscribe returns, or
// nil when there is no need to wait: the subscription is in effect, or is
// known to be late already. The caller holds cluster.mu.
func (s *subscription) readyOf() chan struct{} {
	if s.confirmed || s.late {
		return nil
	}
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
	return s.ready
}

// stopInterest stops the workers and the retries, after the broker has
// closed (so that no worker waits on it), and waits for the workers.
func (c *cluster) stopInterest() {
	c.mu.Lock()
	c.closed = true
	if c.retry != nil {
		c.retry.Stop()
		c.retry = nil
	}
	for _, s := range c.subs {
		if s.ready != nil {
			close(s.ready)
			s.ready = nil
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
}
