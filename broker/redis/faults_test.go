package redis_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// stormTopics is the size of the resubscription storm: the confirmations
// of one SUBSCRIBE of that many channels of these names (456 bytes) pass
// Redis's 32 MB output limit for pub/sub clients many times over.
const stormTopics = 100_000

// A subscriber connection with 100,000 long channels, cut by Redis, is
// subscribed again in paced batches, and the gap is reported once that is
// done; one SUBSCRIBE of every channel would be cut by Redis again and
// again.
func TestResubscribeStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 100,000 subscriptions; not in -short")
	}
	srv := engines.StartT(t, engines.Redis)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	brokertest.Resubscribe(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, stormTopics, func(t *testing.T) {
		if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// With Redis stopped (SIGSTOP), joins return within the join timeout and
// new connections are served; the member gets its resync after.
func TestStall(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.Stall(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) },
		func() { srv.Pause(t) }, srv.Resume)
}

// With Redis down, a client's publish fails with code Unavailable and a
// message that names no host, port, engine or Go type.
func TestPublishEngineDown(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	p := &pub{}
	h := rpcws.NewHandler(publisher(t, p), &rpcws.HandlerOptions{Broker: newBroker(t, srv.URL())})
	p.h = h
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	c, err := rpcws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Wait)
	defer cancel()
	var ok bool
	if err := c.CallContext(ctx, "Pub.Publish", json.RawMessage(`"r3"`), &ok); err != nil {
		t.Fatalf("publish with Redis up: %v", err)
	}
	srv.Stop()
	err = c.CallContext(ctx, "Pub.Publish", json.RawMessage(`"r3"`), &ok)
	e, isCoded := codec.AsError(err)
	if !isCoded || e.Code != codec.CodeUnavailable {
		t.Fatalf("publish with Redis down: got %v, want code Unavailable", err)
	}
	for _, leak := range []string{"127.0.0.1", srv.Addr[strings.LastIndexByte(srv.Addr, ':')+1:], "redis", "dial", "tcp", "*", "refused"} {
		if strings.Contains(strings.ToLower(e.Message), leak) {
			t.Errorf("message %q names %q", e.Message, leak)
		}
	}
	t.Logf("the client's error: %v", err)
}

// publisher serves Pub.Publish, which publishes to a topic.
func publisher(t *testing.T, p *pub) *rpc.Server {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Pub", p); err != nil {
		t.Fatal(err)
	}
	return srv
}

type pub struct{ h *rpcws.Handler }

type PubArgs struct {
	rpcws.Caller
	Topic string
}

func (a *PubArgs) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &a.Topic) }

func (p *pub) Publish(a *PubArgs, ok *bool) error {
	*ok = true
	return p.h.Publish(a.Peer().Context(), rpcws.Topic(a.Topic), "m", 1)
}
