package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// A replica whose connection is in 25,000 topics of 127 four-byte
// characters (1,480-byte channels: their confirmations pass Redis's 32 MB
// pub/sub limit) survives a CLIENT KILL: the other clients get their
// rpcws.resync, and new connections with a user, and joins, are served
// while the replica subscribes again.
func TestHandlerStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 25,000 subscriptions; not in -short")
	}
	srv := engines.StartT(t, engines.Redis)
	s := rpc.NewServer()
	if err := s.RegisterName("Topics", new(Topics)); err != nil {
		t.Fatal(err)
	}
	h := rpcws.NewHandler(s, &rpcws.HandlerOptions{
		Broker:           newBroker(t, srv.URL()),
		MaxTopicsPerConn: -1,
		Authorize:        func(r *http.Request) (any, error) { return r.URL.Query().Get("user"), nil },
	})
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	big := dialCall(t, url, nil, &JoinArgs{N: 25_000, Prefix: strings.Repeat("𝄞", 122)})
	defer big.Close()
	resync := make(chan string, 4)
	listener := dialCall(t, url, func(typ string, data json.RawMessage) {
		if typ == rpcws.ResyncEvent {
			resync <- string(data)
		}
	}, &JoinArgs{N: 1, Prefix: "small"})
	defer listener.Close()

	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	kill := time.Now()
	u := dialCall(t, url+"?user=ada", nil, &JoinArgs{N: 1, Prefix: "fresh"})
	defer u.Close()
	t.Logf("a new connection with a user joined a topic %v after the kill", time.Since(kill).Round(time.Millisecond))
	select {
	case d := <-resync:
		t.Logf("rpcws.resync %s %v after the kill", d, time.Since(kill).Round(time.Millisecond))
		if d != `{"topics":["small0"]}` {
			t.Errorf("resync data %s, want {\"topics\":[\"small0\"]}", d)
		}
	case <-time.After(5 * brokertest.Wait):
		t.Fatalf("no rpcws.resync within %v of the kill", 5*brokertest.Wait)
	}
}

// dialCall connects and joins the topics of args.
func dialCall(t *testing.T, url string, onEvent func(string, json.RawMessage), args *JoinArgs) *rpcws.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*brokertest.Wait)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := c.CallContext(ctx, "Topics.Join", args, &ok); err != nil {
		t.Fatal(err)
	}
	return c
}

// Topics joins its caller to many topics.
type Topics struct{}

// JoinArgs names N topics: Prefix followed by 0 to N-1.
type JoinArgs struct {
	N      int
	Prefix string
	rpcws.Caller
}

// Join joins the topics, 64 at a time.
func (Topics) Join(a *JoinArgs, ok *bool) error {
	p := a.Peer()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	next := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := p.Join(p.Context(), fmt.Sprintf("%s%d", a.Prefix, i)); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range a.N {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	*ok = true
	return nil
}
