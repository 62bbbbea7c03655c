package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// wait bounds every wait for an event that must come.
const wait = 10 * time.Second

// cluster is three replicas on one broker.
type cluster struct {
	engine   *engines.Server // nil for in-process
	replicas []*replica
}

// replica is one cluster server on an httptest listener.
type replica struct {
	srv  *server
	hs   *httptest.Server
	once sync.Once
}

// newCluster starts an engine of kind ("memory", "redis" or "nats") and n
// replicas on it, with history, sessions and presence as the server's
// flags have them by default. In-process replicas share one bus, as the
// replicas of one process would.
func newCluster(t *testing.T, kind string, n int) *cluster {
	t.Helper()
	return newClusterWith(t, kind, n, defaultKept(t))
}

// defaultKept is the options of history and presence that the server's
// flags give by default.
func defaultKept(t *testing.T) options {
	t.Helper()
	h, p, err := keepFlags{rpcws.DefaultHistorySize, rpcws.DefaultHistoryTTL, rpcws.DefaultRecoveryWindow, rpcws.DefaultPresenceTTL}.options()
	if err != nil {
		t.Fatal(err)
	}
	return options{History: h, Presence: p}
}

// newClusterWith is newCluster with opts (less the broker) for every
// replica.
func newClusterWith(t *testing.T, kind string, n int, opts options) *cluster {
	t.Helper()
	c := &cluster{}
	var bus rpcws.MemoryBus
	if kind != "memory" {
		c.engine = engines.StartT(t, kind)
	}
	for range n {
		var b rpcws.Broker
		if c.engine == nil {
			b = bus.NewBroker()
		} else {
			var err error
			if b, err = newBroker(c.engine.URL()); err != nil {
				t.Fatal(err)
			}
		}
		opts.Broker = b
		r := &replica{srv: newServer(opts)}
		r.hs = httptest.NewServer(r.srv)
		t.Cleanup(r.stop)
		c.replicas = append(c.replicas, r)
	}
	return c
}

// stop ends the replica at once, as a crash or a redeploy would.
func (r *replica) stop() {
	r.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r.srv.Shutdown(ctx)
		r.hs.Close()
	})
}

func (r *replica) url() string { return "ws" + strings.TrimPrefix(r.hs.URL, "http") + "/rpc" }

// client is a WebSocket client and the events it received.
type client struct {
	name string
	user string
	c    *rpcws.Client

	mu     sync.Mutex
	events []event
	signal chan struct{}
}

type event struct {
	typ  string
	data string
}

func dial(t *testing.T, url, user string) *client {
	t.Helper()
	cl := &client{user: user, name: fmt.Sprintf("%s?user=%s", url, user), signal: make(chan struct{}, 1)}
	if user != "" {
		url += "?user=" + user
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{OnEvent: cl.onEvent, MaxQueuedEventBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl.c = c
	// One answered call: the connection's user address is in effect.
	var reply json.RawMessage
	if err := cl.call("Demo.Echo", 1, &reply); err != nil {
		t.Fatal(err)
	}
	return cl
}

func (c *client) onEvent(typ string, data json.RawMessage) {
	c.mu.Lock()
	c.events = append(c.events, event{typ, string(data)})
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *client) call(method string, args, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.c.CallContext(ctx, method, args, reply)
}

// must calls method and returns its raw result, failing t on error.
func (c *client) must(t *testing.T, method string, args any) string {
	t.Helper()
	var reply json.RawMessage
	if err := c.call(method, args, &reply); err != nil {
		t.Fatalf("%s: %s: %v", c.name, method, err)
	}
	return string(reply)
}

func (c *client) ofType(typ string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.events {
		if e.typ == typ {
			out = append(out, e.data)
		}
	}
	return out
}

func (c *client) count(typ, data string) int {
	return len(slices.DeleteFunc(c.ofType(typ), func(d string) bool { return d != data }))
}

// await waits, up to d, until cond holds over the client's events.
func (c *client) await(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(d)
	for !cond() {
		select {
		case <-c.signal:
		case <-timeout:
			c.mu.Lock()
			got := slices.Clone(c.events)
			c.mu.Unlock()
			t.Fatalf("%s: no %s within %v; events: %v", c.name, what, d, got)
		}
	}
}

func (c *client) waitEvent(t *testing.T, typ, data string) {
	t.Helper()
	c.await(t, wait, typ+" "+data, func() bool { return c.count(typ, data) > 0 })
}

func (c *client) closed() bool {
	select {
	case <-c.c.Done():
		return true
	default:
		return false
	}
}
