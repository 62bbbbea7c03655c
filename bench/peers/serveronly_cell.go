package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A soCell is one server-only cell: conns connections with one request
// outstanding each, Arith.Multiply or (with echo) Echo.Echo of the payload.
type soCell struct {
	Key   string `json:"cell"`
	Conns int    `json:"conns"`
	Echo  bool   `json:"echo"`
}

// serverOnlyCells are the cells of -server-only, in the order of the report.
var serverOnlyCells = []soCell{
	{Key: "multiply/1", Conns: 1},
	{Key: "multiply/64", Conns: 64},
	{Key: "multiply/1000", Conns: 1000},
	{Key: "echo/64", Conns: 64, Echo: true},
}

// soResult is what one run of a cell found.
type soResult struct {
	Calls int64 `json:"calls"`
	// CPU is the server's CPU time over the measured calls, Wall their
	// wall-clock time.
	CPU  time.Duration `json:"server_cpu_ns"`
	Wall time.Duration `json:"wall_ns"`
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	// Max is the slowest call: with few calls, a stall of the machine
	// shows here and in calls/s rather than in the p99.
	Max time.Duration `json:"max_ns"`
}

// cpuPerCall is the server's CPU time per call, in µs.
func (r soResult) cpuPerCall() float64 {
	return float64(r.CPU.Microseconds()) / float64(r.Calls)
}

// rate is the calls per second.
func (r soResult) rate() float64 { return float64(r.Calls) / r.Wall.Seconds() }

// soOptions bound a cell.
type soOptions struct {
	Warmup, Duration time.Duration
	MaxCalls         int
	Payload          int
	Pin              bool // pin the server to CPU 0
}

// soFrame returns the request of peer name in cell c as the bytes around
// its id, and a piece of the reply that a correct answer contains.
func soFrame(name string, c soCell, payloadLen int) (prefix, suffix, want string) {
	const uuidHead = `{"id":"6ba7b810-9dad-41d1-80b4-` // the id is a UUID's last group
	body := payload(payloadLen)
	switch {
	case name == classicPeer && c.Echo:
		return `{"method":"Echo.Echo","params":["` + body + `"],"id":`, `}`, `"result":"` + body + `","error":null`
	case name == classicPeer:
		return `{"method":"Arith.Multiply","params":[{"A":7,"B":6}],"id":`, `}`, `"result":42,"error":null`
	case c.Echo:
		suffix = `","type":"echo.echo","data":"` + body + `"}`
		want = `"type":"echo.echo.response","data":"` + body + `"`
	default:
		suffix = `","type":"arith.multiply","data":{"A":7,"B":6}}`
		want = `"type":"arith.multiply.response","data":42`
	}
	if name == ceilingPeer {
		want = suffix // the frame comes back as it went
	}
	return uuidHead, suffix, want
}

// measureCell runs cell c against a fresh server child of t.
func measureCell(t soTarget, c soCell, o soOptions) (soResult, error) {
	srv, err := startServer(t, o.Pin)
	if err != nil {
		return soResult{}, err
	}
	defer srv.stop()
	prefix, suffix, want := soFrame(t.Peer, c, o.Payload)
	conns, err := dialRawConns(srv.addr, c.Conns, prefix, suffix)
	defer func() {
		for _, rc := range conns {
			rc.close()
		}
	}()
	if err != nil {
		return soResult{}, err
	}
	deadline := time.Now().Add(o.Warmup + o.Duration + 30*time.Second)
	for _, rc := range conns {
		rc.c.SetDeadline(deadline)
	}
	return runLoad(srv, conns, []byte(want), o)
}

// dialRawConns opens n connections to addr, 32 at a time.
func dialRawConns(addr string, n int, prefix, suffix string) ([]*rawConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conns := make([]*rawConn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			conns[i], errs[i] = dialRaw(ctx, addr, prefix, suffix)
		})
	}
	wg.Wait()
	var opened []*rawConn
	for _, rc := range conns {
		if rc != nil {
			opened = append(opened, rc)
		}
	}
	return opened, errors.Join(errs...)
}

// loadState is what the load goroutines of a cell share.
type loadState struct {
	phase    atomic.Int32 // 0 warm-up, 1 measured, 2 stop
	measured atomic.Int64 // calls completed in phase 1
	max      int64
	full     chan struct{} // closed when measured reaches max
	once     sync.Once
	errs     chan error
}

// load calls over rc until the phase is 2, recording the latencies of the
// measured calls.
func (s *loadState) load(rc *rawConn, want []byte) (lat []time.Duration) {
	for id := uint64(idBase); s.phase.Load() < 2; id++ {
		t0 := time.Now()
		reply, err := rc.call(id)
		if err == nil && !bytes.Contains(reply, want) {
			err = fmt.Errorf("%w: unexpected reply %.200q", errWrongReply, reply)
		}
		if err != nil {
			s.errs <- err
			return lat
		}
		if s.phase.Load() == 1 {
			lat = append(lat, time.Since(t0))
			if s.measured.Add(1) == s.max {
				s.once.Do(func() { close(s.full) })
			}
		}
	}
	return lat
}

// runLoad runs the warm-up and the measured interval over conns and reads
// the server's CPU time at either end of the interval.
func runLoad(srv *serverProc, conns []*rawConn, want []byte, o soOptions) (soResult, error) {
	s := &loadState{max: int64(o.MaxCalls), full: make(chan struct{}), errs: make(chan error, len(conns))}
	lats := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Go(func() { lats[i] = s.load(rc, want) })
	}
	defer wg.Wait()
	defer s.phase.Store(2)
	select {
	case <-time.After(o.Warmup):
	case err := <-s.errs:
		return soResult{}, err
	}
	cpu0, err := srv.cpu()
	if err != nil {
		return soResult{}, err
	}
	t0 := time.Now()
	s.phase.Store(1)
	select {
	case <-time.After(o.Duration):
	case <-s.full:
	case err := <-s.errs:
		return soResult{}, err
	}
	s.phase.Store(2)
	wall := time.Since(t0)
	calls := s.measured.Load()
	cpu1, err := srv.cpu()
	if err != nil {
		return soResult{}, err
	}
	wg.Wait()
	select {
	case err := <-s.errs:
		return soResult{}, err
	default:
	}
	all := slices.Concat(lats...)
	if calls == 0 || len(all) == 0 {
		return soResult{}, errors.New("no call completed in the measured interval")
	}
	slices.Sort(all)
	return soResult{Calls: calls, CPU: cpu1 - cpu0, Wall: wall, P50: percentile(all, 50), P99: percentile(all, 99), Max: all[len(all)-1]}, nil
}
