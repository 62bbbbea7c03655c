package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A metric is one figure that a workload measures.
type metric struct {
	Key      string `json:"key"`
	Title    string `json:"title"`
	Unit     string `json:"unit"`
	Higher   bool   `json:"higher_is_better"`
	decimals int    // shown after the decimal point

	// Ceiling names the peer whose median is this metric's ×ceiling, if
	// not the ceiling of the other workloads (ceilingPeer).
	Ceiling string `json:"ceiling,omitempty"`
}

// metricsFor returns the metrics of a run with cfg, in the order of the
// report.
func metricsFor(cfg config) []metric {
	shared := fmt.Sprintf("%d callers sharing 1 connection", cfg.Callers)
	return slices.Concat([]metric{
		{Key: "serial.rate", Title: "1 caller, Arith.Multiply: throughput", Unit: "calls/s", Higher: true},
		{Key: "serial.p50", Title: "1 caller, Arith.Multiply: median latency", Unit: "µs", decimals: 1},
		{Key: "serial.p99", Title: "1 caller, Arith.Multiply: 99th percentile latency", Unit: "µs", decimals: 1},
		{Key: "serial.allocs", Title: "1 caller, Arith.Multiply: allocations per call (client + server)", Unit: "allocs/call", decimals: 1},
		{Key: "serial.bytes", Title: "1 caller, Arith.Multiply: bytes allocated per call (client + server)", Unit: "B/call"},
		{Key: "shared.rate", Title: shared + ", Arith.Multiply", Unit: "calls/s", Higher: true},
		{Key: "echo.rate", Title: fmt.Sprintf("%s, Echo.Echo of %d bytes", shared, cfg.Payload), Unit: "calls/s", Higher: true},
		{Key: "conns.rate", Title: fmt.Sprintf("%d connections, 1 caller each, Arith.Multiply", cfg.Callers), Unit: "calls/s", Higher: true},
		{Key: "idle.bytes", Title: fmt.Sprintf("%d idle connections: heap + stacks per connection (both ends)", cfg.Idle), Unit: "B/conn"},
		{Key: "idle.goroutines", Title: fmt.Sprintf("%d idle connections: goroutines per connection (both ends)", cfg.Idle), Unit: "goroutines/conn", decimals: 2},
	},
		fanoutMetrics(cfg),
		jsMetrics(cfg),
	)
}

// A workload drives one peer and returns figures keyed by metric key.
type workload struct {
	key string
	run func(b *bench, c *cell) (map[string]float64, error)
}

// The workloads, in the order they run within a repetition.
var workloads = []workload{
	{"serial", (*bench).serial},
	{"shared", (*bench).shared},
	{"echo", (*bench).echo},
	{"conns", (*bench).conns},
	{"idle", (*bench).idle},
	{"fanout", (*bench).fanout},
	{"js", (*bench).jsClient},
}

// bench holds the settings of a run and the buffers its cells reuse.
type bench struct {
	cfg config
	lat []time.Duration // latencies of the serial workload, reused by every cell
	msg string          // the echo payload
}

func newBench(cfg config) *bench {
	return &bench{
		cfg: cfg,
		lat: make([]time.Duration, 0, cfg.MaxCalls),
		msg: payload(cfg.Payload),
	}
}

// A cell is one workload run against one peer: a server and the connections
// dialed to it. A cell that overruns its time limit is aborted: its
// connections are closed, which fails any call in flight.
type cell struct {
	p    peer
	addr string
	stop func()

	stopOnce sync.Once

	mu      sync.Mutex // guards callers and aborted
	callers []caller
	aborted bool
}

var errAborted = errors.New("cell overran its time limit and was aborted")

// dial opens a connection for the cell.
func (c *cell) dial() (caller, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := c.p.dial(ctx, c.addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		cl.close()
		return nil, errAborted
	}
	c.callers = append(c.callers, cl)
	return cl, nil
}

// closeAll closes every connection of the cell and stops its server.
func (c *cell) closeAll(abort bool) {
	c.mu.Lock()
	callers := c.callers
	c.callers = nil
	c.aborted = c.aborted || abort
	c.mu.Unlock()
	for _, cl := range callers {
		cl.close()
	}
	c.stopOnce.Do(c.stop)
}

// runCell runs w against p with a fresh server, within a time limit.
func (b *bench) runCell(w workload, p peer) (map[string]float64, error) {
	before := runtime.NumGoroutine()
	addr, stop, err := p.start()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	c := &cell{p: p, addr: addr, stop: stop}
	limit := 2*(b.cfg.Warmup+b.cfg.Duration) + 30*time.Second
	if w.key == "idle" {
		limit = 60*time.Second + time.Duration(b.cfg.Idle)*10*time.Millisecond
	}
	watchdog := time.AfterFunc(limit, func() { c.closeAll(true) })
	res, err := w.run(b, c)
	watchdog.Stop()
	c.mu.Lock()
	if c.aborted {
		err = errAborted
	}
	c.mu.Unlock()
	c.closeAll(false)
	settle(before)
	return res, err
}

// settle waits, up to two seconds, for the goroutines of a finished cell to
// end, so that they do not weigh on the next one.
func settle(goroutines int) {
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// drive runs goroutines that each call call with callers[i%len(callers)]
// until d has passed or they have made maxCalls calls between them. It
// returns how many calls succeeded and how long they took; the first error
// stops every goroutine.
func drive(callers []caller, goroutines int, d time.Duration, maxCalls int, call func(caller) error) (int, time.Duration, error) {
	var (
		stop     atomic.Bool
		total    atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	perG := max(maxCalls/goroutines, 1)
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	start := time.Now()
	for i := range goroutines {
		c := callers[i%len(callers)]
		wg.Go(func() {
			n := 0
			for n < perG && !stop.Load() {
				if err := call(c); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					break
				}
				n++
			}
			total.Add(int64(n))
		})
	}
	wg.Wait()
	return int(total.Load()), time.Since(start), firstErr
}

// rate returns calls per second.
func rate(calls int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(calls) / elapsed.Seconds()
}

// multiplyCall is the small call of every workload.
func multiplyCall(c caller) error { return checkMultiply(c, 7, 6) }

// serial makes one call at a time on one connection, timing each, and counts
// what the calls allocate at both ends.
func (b *bench) serial(c *cell) (map[string]float64, error) {
	cl, err := c.dial()
	if err != nil {
		return nil, err
	}
	if _, _, err := drive([]caller{cl}, 1, b.cfg.Warmup, b.cfg.MaxCalls, multiplyCall); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	lat := b.lat[:0]
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	deadline := start.Add(b.cfg.Duration)
	for len(lat) < cap(lat) {
		t0 := time.Now()
		if err := multiplyCall(cl); err != nil {
			return nil, err
		}
		t1 := time.Now()
		lat = append(lat, t1.Sub(t0))
		if t1.After(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&m1)
	slices.Sort(lat)
	n := float64(len(lat))
	return map[string]float64{
		"serial.rate":   rate(len(lat), elapsed),
		"serial.p50":    float64(percentile(lat, 50)) / float64(time.Microsecond),
		"serial.p99":    float64(percentile(lat, 99)) / float64(time.Microsecond),
		"serial.allocs": float64(m1.Mallocs-m0.Mallocs) / n,
		"serial.bytes":  float64(m1.TotalAlloc-m0.TotalAlloc) / n,
	}, nil
}

// throughput warms up and then measures goroutines calling call on callers.
func (b *bench) throughput(callers []caller, call func(caller) error) (float64, error) {
	g := b.cfg.Callers
	if _, _, err := drive(callers, g, b.cfg.Warmup, b.cfg.MaxCalls, call); err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	n, elapsed, err := drive(callers, g, b.cfg.Duration, b.cfg.MaxCalls, call)
	if err != nil {
		return 0, err
	}
	return rate(n, elapsed), nil
}

// shared has many callers share one connection for the small method.
func (b *bench) shared(c *cell) (map[string]float64, error) {
	cl, err := c.dial()
	if err != nil {
		return nil, err
	}
	r, err := b.throughput([]caller{cl}, multiplyCall)
	return map[string]float64{"shared.rate": r}, err
}

// echo has many callers share one connection for the payload method.
func (b *bench) echo(c *cell) (map[string]float64, error) {
	cl, err := c.dial()
	if err != nil {
		return nil, err
	}
	r, err := b.throughput([]caller{cl}, func(cl caller) error { return checkEcho(cl, b.msg) })
	return map[string]float64{"echo.rate": r}, err
}

// conns gives each caller a connection of its own.
func (b *bench) conns(c *cell) (map[string]float64, error) {
	callers := make([]caller, b.cfg.Callers)
	for i := range callers {
		cl, err := c.dial()
		if err != nil {
			return nil, err
		}
		callers[i] = cl
	}
	r, err := b.throughput(callers, multiplyCall)
	return map[string]float64{"conns.rate": r}, err
}

// idle opens many connections, makes one call on each so that both ends are
// fully set up, and weighs what they hold while idle: live heap plus
// goroutine stacks, after garbage collection, against the same figure with
// the server running and no connection open.
func (b *bench) idle(c *cell) (map[string]float64, error) {
	n := b.cfg.Idle
	c.mu.Lock()
	c.callers = slices.Grow(c.callers, n) // not counted against the peer
	c.mu.Unlock()
	heap0, g0 := weigh()
	for range n {
		cl, err := c.dial()
		if err != nil {
			return nil, err
		}
		if err := multiplyCall(cl); err != nil {
			return nil, err
		}
	}
	steady()
	heap1, g1 := weigh()
	return map[string]float64{
		"idle.bytes":      float64(int64(heap1)-int64(heap0)) / float64(n),
		"idle.goroutines": float64(g1-g0) / float64(n),
	}, nil
}

// weigh collects garbage and returns the live heap plus stack memory, and
// the number of goroutines.
func weigh() (bytes uint64, goroutines int) {
	runtime.GC()
	runtime.GC() // a second cycle also frees what sync.Pools held
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse, runtime.NumGoroutine()
}

// steady waits, up to a second, until the number of goroutines stops
// changing: goroutines that served the last calls are still ending.
func steady() {
	last := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		now := runtime.NumGoroutine()
		if now == last {
			return
		}
		last = now
	}
}
