package main

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// gclient is the rpcws Go client with Reconnect: it recovers by itself, and
// the test sees only what the application would, through OnEvent.
type gclient struct {
	name string
	c    *rpcws.Client

	mu      sync.Mutex
	seqs    []int    // data.data of each topic.message of "feed", in order
	resyncs []string // rpcws.resync data
	drops   int      // times the client went reconnecting
	changed chan struct{}
}

// dialGClient connects a Go client with Reconnect to url, joins topics, and
// closes it at cleanup.
func dialGClient(t *testing.T, name, url string, topics []string) *gclient {
	t.Helper()
	g := &gclient{name: name, changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{
		OnEvent:             g.onEvent,
		MaxQueuedEventBytes: 4 << 20,
		Reconnect: &rpcws.ReconnectOptions{Delay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond,
			OnState: func(s rpcws.ConnState) {
				if s == rpcws.StateReconnecting {
					g.record(func() { g.drops++ })
				}
			}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	g.c = c
	for _, topic := range topics {
		cctx, cancel := context.WithTimeout(context.Background(), wait)
		err := c.CallContext(cctx, "Topic.Join", map[string]any{"topic": topic}, new(json.RawMessage))
		cancel()
		if err != nil {
			t.Fatalf("%s: join %s: %v", name, topic, err)
		}
	}
	return g
}

func (g *gclient) onEvent(typ string, data json.RawMessage) {
	switch typ {
	case "topic.message":
		var m struct {
			Topic string `json:"topic"`
			Data  int    `json:"data"`
		}
		if json.Unmarshal(data, &m) == nil && m.Topic == "feed" {
			g.record(func() { g.seqs = append(g.seqs, m.Data) })
		}
	case rpcws.ResyncEvent:
		g.record(func() { g.resyncs = append(g.resyncs, string(data)) })
	}
}

func (g *gclient) record(change func()) {
	g.mu.Lock()
	change()
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// check waits until g has the last event, then checks that it has every
// event once, in order, and no resync, and is connected.
func (g *gclient) check(t *testing.T) (drops int) {
	t.Helper()
	timeout := time.After(wait)
	for {
		g.mu.Lock()
		done := slices.Contains(g.seqs, events-1)
		g.mu.Unlock()
		if done {
			break
		}
		select {
		case <-g.changed:
		case <-timeout:
			g.mu.Lock()
			defer g.mu.Unlock()
			t.Fatalf("%s: not the last event within %v: %d events, drops %d, resyncs %v, state %v", g.name, wait, len(g.seqs), g.drops, g.resyncs, g.c.State())
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	want := make([]int, events)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(g.seqs, want) || len(g.resyncs) != 0 {
		t.Errorf("%s: %d events (%d gaps, in order and once each: %v), resyncs %v; want all %d, none",
			g.name, len(g.seqs), gaps(g.seqs), slices.IsSorted(g.seqs) && len(slices.Compact(slices.Clone(g.seqs))) == len(g.seqs), g.resyncs, events)
	}
	if g.drops > 1 || g.c.State() != rpcws.StateConnected {
		t.Errorf("%s: %d drops, state %v", g.name, g.drops, g.c.State())
	}
	return g.drops
}
