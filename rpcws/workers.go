package rpcws

import (
	"sync"
	"time"
)

// workers runs the requests of a Handler's connections on goroutines that
// outlive them: a goroutine that has served a request waits a moment for
// another, and serves it on the stack it grew for the first. A new
// goroutine's stack starts small, and is copied as it grows to decode a
// request and write its reply: a fifth of the server's CPU with 64
// connections, one request outstanding on each (the server-only cells of
// bench/peers, multiply/64: see bench/peers/README.md).
type workers struct {
	work chan func()   // unbuffered: a send finds a waiting worker, or none
	quit chan struct{} // closed by stop: no worker waits from then on
	once sync.Once
}

// workerIdle is how long a worker waits for another request before it
// ends, give or take as much again: far longer than the time between a
// busy server's requests, and short enough that an idle server keeps none.
const workerIdle = 5 * time.Millisecond

func newWorkers() *workers {
	return &workers{work: make(chan func()), quit: make(chan struct{})}
}

// stop ends the waits of idle workers, and makes every worker end when its
// request does: the Handler is shutting down.
func (w *workers) stop() { w.once.Do(func() { close(w.quit) }) }

// Go runs f on a waiting worker, or on a new one.
func (w *workers) Go(f func()) {
	select {
	case w.work <- f:
	default:
		go w.serve(f)
	}
}

// serve runs f, then the requests handed to it, until it has served none
// for a whole tick of its timer. The timer ticks every workerIdle and is
// not reset per request: resetting a timer may wake the thread that polls
// the network. BenchmarkCallSmall, medians of 5 alternated runs, with the
// reset / with the tick: 10,286 / 10,471 calls/s, and with the write
// deadline renewed lazily as well (corkConn.renewDeadline), 11,216.
func (w *workers) serve(f func()) {
	idle := time.NewTicker(workerIdle)
	defer idle.Stop()
	for f != nil {
		f()
		f = w.next(idle.C)
	}
}

// next waits for the next request, and returns nil when none came for a
// whole tick, or when the workers stop.
func (w *workers) next(tick <-chan time.Time) func() {
	for served := true; ; served = false {
		select {
		case f := <-w.work:
			return f
		case <-tick:
			if !served {
				return nil
			}
		case <-w.quit:
			return nil
		}
	}
}
