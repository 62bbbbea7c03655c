package rpcws_test

import (
	"context"
	"net/http/httptest"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// BenchArith and BenchEcho are the services the benchmarks call: a small
// method, and a 1 KiB echo.
type BenchArith struct{}

func (BenchArith) Multiply(args *Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

type BenchEcho struct{}

func (BenchEcho) Echo(args string, reply *string) error {
	*reply = args
	return nil
}

func benchServer(b *testing.B) string {
	b.Helper()
	srv := rpc.NewServer()
	srv.Register(BenchArith{})
	srv.Register(BenchEcho{})
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{MaxInFlight: 256})
	hs := httptest.NewServer(h)
	b.Cleanup(func() {
		h.Shutdown(context.Background())
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func benchDial(b *testing.B, url string) *rpcws.Client {
	b.Helper()
	c, err := rpcws.Dial(context.Background(), url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// latencies records call durations and reports their p50 and p99.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// One caller, a small method: latency and allocations per call, client and
// server together.
func BenchmarkCallSmall(b *testing.B) {
	c := benchDial(b, benchServer(b))
	var lat latencies
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		var reply int
		if err := c.Call("BenchArith.Multiply", &Args{i, 2}, &reply); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	lat.add(d)
	lat.report(b)
}

// One caller with CallContext.
func BenchmarkCallContextSmall(b *testing.B) {
	c := benchDial(b, benchServer(b))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var reply int
		if err := c.CallContext(ctx, "BenchArith.Multiply", &Args{i, 2}, &reply); err != nil {
			b.Fatal(err)
		}
	}
}

// parallelCalls runs b.N calls from 64 goroutines over the given clients,
// shared round-robin.
func parallelCalls(b *testing.B, clients []*rpcws.Client, method string, args func(i int) any, reply func() any) {
	var lat latencies
	b.ReportAllocs()
	b.SetParallelism((64 + 1) / 2) // GOMAXPROCS is 2 here: 64 goroutines
	var next sync.Mutex
	k := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		c := clients[k%len(clients)]
		k++
		next.Unlock()
		var d []time.Duration
		for i := 0; pb.Next(); i++ {
			start := time.Now()
			if err := c.Call(method, args(i), reply()); err != nil {
				b.Error(err)
				return
			}
			d = append(d, time.Since(start))
		}
		lat.add(d)
	})
	b.StopTimer()
	lat.report(b)
}

// 64 callers sharing one connection, a small method.
func BenchmarkShared64Small(b *testing.B) {
	c := benchDial(b, benchServer(b))
	parallelCalls(b, []*rpcws.Client{c}, "BenchArith.Multiply",
		func(i int) any { return &Args{i, 2} }, func() any { return new(int) })
}

var kib = strings.Repeat("x", 1024)

// One caller, a 1 KiB echo: frames larger than the buffer coder/websocket
// writes through.
func BenchmarkCallEcho1KiB(b *testing.B) {
	c := benchDial(b, benchServer(b))
	var lat latencies
	d := make([]time.Duration, 0, b.N)
	b.SetBytes(2 * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		var reply string
		if err := c.Call("BenchEcho.Echo", kib, &reply); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	lat.add(d)
	lat.report(b)
}

// 64 callers sharing one connection, a 1 KiB echo.
func BenchmarkShared64Echo1KiB(b *testing.B) {
	c := benchDial(b, benchServer(b))
	b.SetBytes(2 * 1024)
	parallelCalls(b, []*rpcws.Client{c}, "BenchEcho.Echo",
		func(int) any { return kib }, func() any { return new(string) })
}

// 64 connections with one caller each, a small method.
func BenchmarkConns64Small(b *testing.B) {
	url := benchServer(b)
	clients := make([]*rpcws.Client, 64)
	for i := range clients {
		clients[i] = benchDial(b, url)
	}
	parallelCalls(b, clients, "BenchArith.Multiply",
		func(i int) any { return &Args{i, 2} }, func() any { return new(int) })
}
