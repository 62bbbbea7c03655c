// Package nginx_test runs the reference server behind nginx, as it would be
// deployed: two replicas behind one proxy, WebSocket upgrades passed through,
// a short proxy_read_timeout held off by the replicas' keepalive pings.
//
// The test needs nginx (Debian: apt-get install nginx). Without it the test
// is skipped, unless CI is set, when it fails.
package nginx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/interop/refserver"
	"github.com/rpcws/rpcws/rpcws"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

const (
	readTimeout  = 2 * time.Second        // nginx's proxy_read_timeout
	pingInterval = 500 * time.Millisecond // the replicas'
)

// replica is one reference server on a listener of its own.
type replica struct {
	ref *refserver.Server
	hs  *httptest.Server
}

func startReplica(t *testing.T, ping time.Duration) *replica {
	t.Helper()
	ref := refserver.New(&refserver.Options{PingInterval: ping})
	r := &replica{ref: ref, hs: httptest.NewServer(ref)}
	t.Cleanup(r.stop)
	return r
}

// stop shuts the replica down at once, as a crash or a redeploy would:
// its connections are closed with 1001, without waiting for their calls.
func (r *replica) stop() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.ref.Shutdown(ctx)
	r.hs.Close()
}

func (r *replica) addr() string { return strings.TrimPrefix(r.hs.URL, "http://") }

// proxy is an nginx process in front of the replicas.
type proxy struct{ *testutil.Nginx }

// startProxy starts nginx with nginx.conf.tmpl, in front of the replicas,
// and stops it at cleanup.
func startProxy(t *testing.T, a, b, quiet *replica) *proxy {
	t.Helper()
	return &proxy{testutil.StartNginx(t, "nginx.conf.tmpl", map[string]any{
		"ReadTimeout":  fmt.Sprintf("%dms", readTimeout.Milliseconds()),
		"ReplicaA":     a.addr(),
		"ReplicaB":     b.addr(),
		"ReplicaQuiet": quiet.addr(),
	})}
}

// url returns the WebSocket URL of a replica's endpoint through the proxy:
// route is "a", "b" or "quiet".
func (p *proxy) url(route string) string { return "ws://" + p.Addr + "/" + route + "/rpc" }

func dial(t *testing.T, url string, opts *rpcws.DialOptions) *rpcws.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// User is the record of the reference user service.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func call(c *rpcws.Client, method string, args, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.CallContext(ctx, method, args, reply)
}

func TestBehindNginx(t *testing.T) {
	t.Parallel()
	a := startReplica(t, pingInterval)
	b := startReplica(t, pingInterval)
	quiet := startReplica(t, -1) // no pings
	p := startProxy(t, a, b, quiet)

	t.Run("group", func(t *testing.T) {
		t.Run("calls", func(t *testing.T) {
			t.Parallel()
			for _, route := range []string{"a", "b"} {
				c := dial(t, p.url(route), nil)
				var u User
				if err := call(c, "User.Get", map[string]string{"id": "123"}, &u); err != nil || u.Name != "Ada Lovelace" {
					t.Fatalf("%s: user.get: got %+v, %v; want Ada Lovelace", route, u, err)
				}
				// Each replica keeps its own state: a user saved on a is not on b.
				save := User{ID: "only-" + route, Name: route}
				if err := call(c, "User.Save", save, &u); err != nil {
					t.Fatalf("%s: user.save: %v", route, err)
				}
			}
			c := dial(t, p.url("b"), nil)
			err := call(c, "User.Get", map[string]string{"id": "only-a"}, new(User))
			if e, ok := codec.AsError(err); !ok || e.Code != "NotFound" {
				t.Fatalf("user saved on a, read on b: got %v, want code NotFound", err)
			}
		})

		t.Run("events", func(t *testing.T) {
			t.Parallel()
			ticks := make(chan int, 10)
			c := dial(t, p.url("a"), &rpcws.DialOptions{OnEvent: func(typ string, data json.RawMessage) {
				var tick struct{ N int }
				json.Unmarshal(data, &tick)
				ticks <- tick.N
			}})
			var reply struct{ Count int }
			if err := call(c, "Demo.Ticks", map[string]int{"count": 3, "intervalMs": 10}, &reply); err != nil || reply.Count != 3 {
				t.Fatalf("demo.ticks: got %+v, %v; want count 3", reply, err)
			}
			for want := 1; want <= 3; want++ {
				select {
				case n := <-ticks:
					if n != want {
						t.Fatalf("tick: got %d, want %d", n, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("tick %d did not come", want)
				}
			}
		})

		t.Run("same-origin check through the proxy", func(t *testing.T) {
			t.Parallel()
			// A page served by the proxy connects through it: its Origin is
			// the proxy's, and the Host the replica sees is the proxy's too.
			own := http.Header{"Origin": {"http://" + p.Addr}}
			c := dial(t, p.url("a"), &rpcws.DialOptions{WebSocket: &websocket.DialOptions{HTTPHeader: own}})
			if err := call(c, "Demo.Echo", 1, new(int)); err != nil {
				t.Fatalf("own origin: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			other := http.Header{"Origin": {"http://evil.example"}}
			ws, resp, err := websocket.Dial(ctx, p.url("a"), &websocket.DialOptions{HTTPHeader: other})
			if err == nil {
				ws.CloseNow()
				t.Fatal("cross-origin upgrade through the proxy accepted, want it refused")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-origin upgrade: got %v, want 403", err)
			}
		})

		t.Run("idle past proxy_read_timeout", func(t *testing.T) {
			t.Parallel()
			// The client sends no pings of its own: only the replica's keep
			// the connection open through the proxy.
			c := dial(t, p.url("a"), &rpcws.DialOptions{PingInterval: -1})
			if err := call(c, "Demo.Echo", 1, new(int)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.Done():
				t.Fatal("the proxy closed an idle connection that the replica pinged")
			case <-time.After(3 * readTimeout):
			}
			var got string
			if err := call(c, "Demo.Echo", "still here", &got); err != nil || got != "still here" {
				t.Fatalf("after %v idle: got %q, %v; want still here", 3*readTimeout, got, err)
			}
		})

		t.Run("a call longer than proxy_read_timeout", func(t *testing.T) {
			t.Parallel()
			// Nothing but the call on the wire for five read timeouts: the
			// replica pings while the call runs, so the proxy keeps it.
			c := dial(t, p.url("a"), &rpcws.DialOptions{PingInterval: -1, Timeout: 30 * time.Second})
			const ms = int(5 * readTimeout / time.Millisecond)
			var got refserver.SleepReply
			if err := c.CallContext(context.Background(), "Demo.Sleep", &refserver.SleepArgs{Ms: ms}, &got); err != nil || got.Ms != ms {
				t.Fatalf("a %d ms call through a %v proxy_read_timeout: got %+v, %v", ms, readTimeout, got, err)
			}
		})

		t.Run("idle without pings is cut", func(t *testing.T) {
			t.Parallel()
			// The control: with no pings either way, the proxy cuts the idle
			// connection after proxy_read_timeout.
			c := dial(t, p.url("quiet"), &rpcws.DialOptions{PingInterval: -1})
			if err := call(c, "Demo.Echo", 1, new(int)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			select {
			case <-c.Done():
			case <-time.After(3 * readTimeout):
				t.Fatalf("the proxy kept an idle connection without pings for %v", 3*readTimeout)
			}
			if d := time.Since(start); d < readTimeout/2 {
				t.Fatalf("the idle connection was cut after %v, before proxy_read_timeout (%v)", d, readTimeout)
			}
		})
	})

	t.Run("a replica stops", func(t *testing.T) {
		// Two clients on a, one on b, each with a call pending; a stops.
		const slow = 1500 // ms, b's pending call
		var clients []*rpcws.Client
		for _, route := range []string{"a", "a", "b"} {
			clients = append(clients, dial(t, p.url(route), &rpcws.DialOptions{Timeout: 30 * time.Second}))
		}
		type result struct {
			i   int
			err error
			ms  int
		}
		results := make(chan result, len(clients))
		for i, c := range clients {
			ms := 20000 // on a: pending until a stops
			if i == 2 {
				ms = slow
			}
			go func() {
				var reply struct{ Ms int }
				err := c.CallContext(context.Background(), "Demo.Sleep", map[string]int{"ms": ms}, &reply)
				results <- result{i, err, reply.Ms}
			}()
		}
		// Once the calls are in flight on the replicas, a goes.
		testutil.WaitFor(t, "the calls to reach the replicas", func() bool {
			return a.ref.RPC().InFlight() == 2 && b.ref.RPC().InFlight() == 1
		})
		start := time.Now()
		a.stop()

		for range 2 {
			select {
			case r := <-results:
				if r.i == 2 {
					t.Fatalf("b's call ended before a's clients were failed: %v", r.err)
				}
				if !errors.Is(r.err, rpcws.ErrDisconnected) {
					t.Fatalf("a's pending call: got %v, want ErrDisconnected", r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a's pending calls did not fail")
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a's pending calls failed %v after it stopped, want at once", d)
		}
		select {
		case r := <-results:
			if r.err != nil || r.ms != slow {
				t.Fatalf("b's pending call: got %d, %v; want %d, nil", r.ms, r.err, slow)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("b's pending call did not complete")
		}
		var u User
		if err := call(clients[2], "User.Get", map[string]string{"id": "123"}, &u); err != nil {
			t.Fatalf("b's client after a stopped: %v", err)
		}
		// New clients of a get the proxy's 502; b takes new ones.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, p.url("a"), nil)
		if err == nil {
			ws.CloseNow()
			t.Fatal("upgrade to the stopped replica accepted")
		}
		if resp == nil || resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("upgrade to the stopped replica: got %v, want 502", err)
		}
		c := dial(t, p.url("b"), nil)
		if err := call(c, "User.Get", map[string]string{"id": "123"}, &u); err != nil {
			t.Fatalf("new client of b: %v", err)
		}
	})
}
