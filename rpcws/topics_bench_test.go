package rpcws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/rpc"
	"runtime"
	"strings"
	"testing"

	"github.com/rpcws/rpcws/rpcws"
)

// Joiner joins its caller to many topics at once, for the benchmarks.
type Joiner struct{}

// JoinArgs names N topics: Prefix followed by 0 to N-1.
type JoinArgs struct {
	N      int
	Prefix string
	rpcws.Caller
}

func (Joiner) Join(a *JoinArgs, ok *bool) error {
	p := a.Peer()
	for i := range a.N {
		if err := p.Join(p.Context(), a.Prefix+fmt.Sprint(i)); err != nil {
			return err
		}
	}
	*ok = true
	return nil
}

// BenchmarkMemberships measures the heap that 10,000 topic memberships
// take on a replica: one connection joins 10,000 topics of 32-character
// names (each also a subscription of the in-process broker). It reports
// bytes per membership.
func BenchmarkMemberships(b *testing.B) {
	const n = 10_000
	prefix := strings.Repeat("t", 27)
	var perMembership float64
	for range b.N {
		srv := rpc.NewServer()
		srv.Register(Joiner{})
		h := rpcws.NewHandler(srv, membershipOptions())
		hs := httptest.NewServer(h)
		c, err := rpcws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
		if err != nil {
			b.Fatal(err)
		}
		var ok bool
		if err := c.Call("Joiner.Join", &JoinArgs{N: 1, Prefix: "warm"}, &ok); err != nil {
			b.Fatal(err)
		}
		before := heap()
		if err := c.Call("Joiner.Join", &JoinArgs{N: n, Prefix: prefix}, &ok); err != nil {
			b.Fatal(err)
		}
		perMembership = float64(heap()-before) / n
		c.Close()
		h.Shutdown(context.Background())
		hs.Close()
	}
	b.ReportMetric(perMembership, "B/membership")
	b.ReportMetric(perMembership*10_000/1024, "KiB/10k")
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func membershipOptions() *rpcws.HandlerOptions {
	return &rpcws.HandlerOptions{MaxTopicsPerConn: -1}
}
