package rpcws

import (
	"sync"
	"sync/atomic"
	"time"
)

// A connection's requests are served on the goroutine that read them: it
// reads a request, runs the method, writes the reply and reads the next
// request, each through [rpc.Server.ServeRequest]. A call then crosses no
// goroutine on the server, where [rpc.Server.ServeCodec] starts one for
// every request, and wakes no other thread to run it: on two cores that
// hand-off costs about as much as the call's own work.
//
// A method that runs long must not hold up the requests behind it, nor the
// reading of the connection. The handler's [watch] looks at the
// connections running a method every handOffTick; one whose method has run
// since the last look, for between one and two ticks, gets a new goroutine
// to read on, and the one running the method ends when it returns. Requests
// that arrive behind a slow method thus wait at most two ticks. A request
// that finds the next one already arriving hands the reading on at once,
// and a connection that keeps doing so is served by ServeCodec from then on
// (see pipelinedAfter).
//
// A per-request timer would hand off sooner, but setting one wakes another
// thread to watch it, which is the cost this saves.

// pipelinedAfter is when a connection is served by ServeCodec from then on:
// each request that finds the next one arriving counts two, each that finds
// none takes one away, and a connection whose count reaches pipelinedAfter
// keeps many calls in flight. (A read may end at a frame's end however busy
// the connection: a run of them would not tell.)
const pipelinedAfter = 16

// handOffTick is how often the watch looks at the methods running.
const handOffTick = 500 * time.Microsecond

// quietLooks is how many looks in a row must find a connection reading,
// with no request lent since, before the watch forgets it: 2 ms.
const quietLooks = 4

// watchIdleTicks is how many ticks that find no connection listed the watch
// goes on before it stops: 10 ms, from quietLooks after the last method
// returned.
const watchIdleTicks = 20

// runState is how a connection's requests are being served (see above).
type runState struct {
	a  *admission  // the connection's place in the handler; its end runs when the connection is done
	in *lazyReader // the connection's input, asked whether the next request has begun to arrive

	// state is the number of requests lent to their methods so far, times
	// two, plus one while the reader runs a method. The reader alone
	// changes it, but for a hand-off: lent (odd) to the next even value,
	// which the reader's own return to reading, lent to lent-1, then
	// cannot match.
	state   atomic.Uint64
	seen    uint64         // state at the watch's last look; the watch's own
	quiet   uint8          // looks in a row that found it reading, at the same state; the watch's own
	workers sync.WaitGroup // the goroutines serving the connection
	listed  atomic.Bool    // in the watch's set

	// The reader's own: its ReadRequestHeader failed; the connection is
	// served by ServeCodec now; how often requests found the next one
	// arriving (see pipelinedAfter).
	failed    bool
	pipelined bool
	busy      uint8
}

// serveRequests serves the connection on the calling goroutine, and on more
// when a method runs long, until it ends; then its admission's end runs. It returns
// when the calling goroutine's part is done, which may be before the end.
func (s *serverCodec) serveRequests() {
	s.run.workers.Add(1)
	if s.run.in = s.peer.conn.input(); s.run.in == nil {
		// Requests run inline would queue behind a method that blocks
		// until the watch looks: without knowing that more have arrived,
		// serve them as ServeCodec does.
		s.run.pipelined = true
		s.serveCodec()
		return
	}
	s.work()
}

// work reads and serves requests until the connection ends or another
// goroutine took over the reading.
func (s *serverCodec) work() {
	r := &s.run
	for {
		base := r.state.Load() // even: this goroutine reads, and nobody else changes it
		r.in.await()
		r.a.h.srv.ServeRequest(s) // errors are answered, or are the end, which r.failed says
		lent := base + 3
		if r.state.CompareAndSwap(lent, lent-1) {
			continue // the method returned: read on
		}
		if r.state.Load() != base {
			// The watch gave the reading to another goroutine.
			r.workers.Done()
			return
		}
		if r.failed { // nothing was lent: the read failed
			s.finish()
			return
		}
	}
}

// lend marks the request just read as running on the reader's goroutine:
// from now the watch may hand the reading to another. The reader calls it
// after each request it read, whether net/rpc will run it or answer it.
func (s *serverCodec) lend() {
	r := &s.run
	if r.pipelined {
		return // net/rpc's ServeCodec runs the method on a goroutine of its own
	}
	// Look before lending: from then on another goroutine may be reading,
	// and the fields that are the reader's are its.
	more := r.in.buffered()
	if more {
		// The next request has begun to arrive. A connection that keeps
		// many calls in flight is handed to ServeCodec for good: its
		// goroutine per request lets the replies that complete together go
		// out in one write, and its reader stays the same goroutine.
		if r.busy += 2; r.busy >= pipelinedAfter {
			r.pipelined = true
		}
	} else if r.busy > 0 {
		r.busy--
	}
	st := r.state.Add(3) // even to odd: (n+1)*2 + 1
	if more {
		// While this request runs, another goroutine reads the next, so
		// that many calls on one connection run in parallel.
		r.handOff(s, st)
		return
	}
	// A load first: a listed connection, the usual case, costs no
	// read-modify-write. Seeing true here is safe: the watch unlists before
	// it looks at state, so its look then sees this lend.
	if !r.listed.Load() && !r.listed.Swap(true) {
		r.a.h.watch.add(s)
	}
}

// handOff starts a goroutine to read on in place of the one running the
// method lent at state st, unless that method has returned.
func (r *runState) handOff(s *serverCodec, st uint64) {
	r.workers.Add(1)
	if !r.state.CompareAndSwap(st, st+1) {
		r.workers.Done() // it returned, or was handed off already
		return
	}
	if r.pipelined {
		go s.serveCodec()
	} else {
		go s.work()
	}
}

// serveCodec serves the rest of a pipelined connection with ServeCodec,
// then ends it as work does.
func (s *serverCodec) serveCodec() {
	s.run.a.h.srv.ServeCodec(s) // its Close is deferred to here (serverCodec.Close)
	s.finish()
}

// finish ends the connection once its reading has: after the methods still
// running return, it closes the codec and runs the admission's end.
func (s *serverCodec) finish() {
	r := &s.run
	r.workers.Done()
	r.workers.Wait()
	s.ServerCodec.Close()
	r.a.end(s)
}

// watch hands the reading of a connection to a new goroutine when its
// reader has run one method for a tick or more. One serves a Handler. It is
// a timer, not a goroutine: it ticks while connections run methods (or ran
// one in the last quietLooks ticks), and stops after watchIdleTicks that
// found none listed. Setting the timer from a
// request would wake a thread on the request's path; resetting it from
// its own tick does not, so it goes on ticking through short lulls.
type watch struct {
	mu      sync.Mutex // guards the fields below
	conns   map[*serverCodec]struct{}
	timer   *time.Timer // of tick
	running bool        // timer is set
	idle    int         // ticks in a row that found no connection
}

func (w *watch) add(s *serverCodec) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns == nil {
		w.conns = make(map[*serverCodec]struct{})
	}
	w.conns[s] = struct{}{}
	switch {
	case w.running:
	case w.timer == nil:
		w.timer = time.AfterFunc(handOffTick, w.tick)
	default:
		w.timer.Reset(handOffTick)
	}
	w.running = true
}

func (w *watch) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range w.conns {
		w.look(s)
	}
	if len(w.conns) > 0 {
		w.idle = 0
	} else if w.idle++; w.idle >= watchIdleTicks {
		w.running = false
		return
	}
	w.timer.Reset(handOffTick)
}

// look checks one connection; w.mu is held. A connection stays listed
// until quietLooks looks in a row found it reading and nothing lent since:
// one that calls again soon is not listed anew, under w.mu, on every call.
func (w *watch) look(s *serverCodec) {
	r := &s.run
	// Unlist first, then look: a lend after the look lists the connection
	// again, as it sees listed false.
	r.listed.Store(false)
	st := r.state.Load()
	if st != r.seen {
		r.seen, r.quiet = st, 0
		r.listed.Store(true)
		return // reading after a call, or a method that started since the last look
	}
	if st&1 == 0 { // reading, or idle, since the last look
		if r.quiet++; r.quiet >= quietLooks {
			delete(w.conns, s)
			return
		}
		r.listed.Store(true)
		return
	}
	r.listed.Store(true)
	// The same method as at the last look: let another goroutine read.
	// The connection stays listed; the next look sees what the new reader
	// does.
	r.handOff(s, st)
}
