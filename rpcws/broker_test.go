package rpcws_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// The in-process broker passes the conformance suite: handlers sharing one
// bus, as replicas share an engine.
func TestMemoryBroker(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	brokertest.Run(t, func(*testing.T) rpcws.Broker { return bus.NewBroker() })
}

// A method served by another codec has a nil Peer: joining fails cleanly.
func TestJoinNilPeer(t *testing.T) {
	t.Parallel()
	var p *rpcws.Peer
	ctx := context.Background()
	if err := p.Join(ctx, "t"); !errors.Is(err, rpcws.ErrNoPeer) {
		t.Errorf("Join on nil Peer: got %v, want ErrNoPeer", err)
	}
	if err := p.Leave(ctx, "t"); !errors.Is(err, rpcws.ErrNoPeer) {
		t.Errorf("Leave on nil Peer: got %v, want ErrNoPeer", err)
	}
	if got := p.Topics(); got != nil {
		t.Errorf("Topics on nil Peer: %v", got)
	}
	if p.ID() != "" || p.User() != "" {
		t.Errorf("nil Peer has an ID or user")
	}
}

func TestPublishBadAddress(t *testing.T) {
	t.Parallel()
	h := rpcws.NewHandler(nil, nil)
	defer h.Shutdown(context.Background())
	ctx := context.Background()
	long := string(make([]rune, rpcws.MaxNameLen+1))
	for _, to := range []rpcws.Address{rpcws.Topic(""), rpcws.User(long), rpcws.Topic("\xff")} {
		if err := h.Publish(ctx, to, "e", 1); !errors.Is(err, rpcws.ErrBadName) {
			t.Errorf("Publish to %v: got %v, want ErrBadName", to, err)
		}
	}
	if err := h.Publish(ctx, rpcws.Address{}, "e", 1); err == nil {
		t.Errorf("Publish to the zero Address succeeded")
	}
	if err := h.Publish(ctx, rpcws.ToPeer("nodot"), "e", 1); err == nil {
		t.Errorf("Publish to a bad peer ID succeeded")
	}
	ok := string(make([]rune, rpcws.MaxNameLen))
	if err := h.Publish(ctx, rpcws.Topic(ok), "e", 1); err != nil {
		t.Errorf("Publish to a 128-character topic: %v", err)
	}
}
