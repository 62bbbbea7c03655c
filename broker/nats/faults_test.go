package nats_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// A broker with 100,000 subscriptions of long subjects, whose server
// restarts, subscribes again and reports the gap.
func TestResubscribeStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 100,000 subscriptions; not in -short")
	}
	srv := engines.StartT(t, engines.NATS)
	brokertest.Resubscribe(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, 100_000, srv.RestartT)
}

// With NATS stopped (SIGSTOP), joins return within the join timeout and
// new connections are served; the member gets its resync after.
func TestStall(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.Stall(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) },
		func() { srv.Pause(t) }, srv.Resume)
}

// A broker that connects at once reports no gap: nothing was lost.
func TestNoGapAtStart(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	b := newBroker(t, srv.URL())
	r := &gaps{n: make(chan []string, 1)}
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Absence can only be waited for: nats.go runs its connect handler
	// within microseconds of connecting.
	select {
	case s := <-r.n:
		t.Fatalf("a gap reported at start-up: Lost(%q)", s)
	case <-time.After(time.Second):
	}
}

// A broker that starts while NATS is unreachable reports a gap once it
// connects: connections may have joined topics meanwhile.
func TestGapWhenLate(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	srv.Stop()
	b := newBroker(t, srv.URL())
	r := &gaps{n: make(chan []string, 1)}
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv.RestartT(t)
	select {
	case <-r.n:
	case <-time.After(brokertest.Wait):
		t.Fatal("no gap reported after a late first connection")
	}
}

type gaps struct{ n chan []string }

func (g *gaps) Receive(string, []byte) {}
func (g *gaps) Lost(s []string) {
	select {
	case g.n <- s:
	default:
	}
}
func (g *gaps) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
