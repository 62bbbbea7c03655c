package rpcws_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// ForwardedFor believes the X-Forwarded-For header only as far as trusted
// proxies wrote it.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	addr := rpcws.ForwardedFor(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48"))
	for _, tt := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no proxy, no header", "192.0.2.1:4711", nil, "192.0.2.1"},
		{"untrusted peer's header is ignored", "192.0.2.1:4711", []string{"198.51.100.9"}, "192.0.2.1"},
		{"trusted proxy, no header", "10.1.2.3:80", nil, "10.1.2.3"},
		{"trusted proxy", "10.1.2.3:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"client's own entries left of the proxy's are ignored", "10.1.2.3:80", []string{"203.0.113.7, 198.51.100.9"}, "198.51.100.9"},
		{"a chain of trusted proxies", "10.1.2.3:80", []string{"203.0.113.7, 198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"several header lines are one list", "10.1.2.3:80", []string{"203.0.113.7", "198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"every hop trusted: the leftmost", "10.1.2.3:80", []string{"10.5.5.5, 10.9.9.9"}, "10.5.5.5"},
		{"garbage stops at the proxy that passed it", "10.1.2.3:80", []string{"198.51.100.9, unknown, 10.9.9.9"}, "10.9.9.9"},
		{"garbage from the nearest proxy", "10.1.2.3:80", []string{"unknown"}, "10.1.2.3"},
		{"entries with ports", "10.1.2.3:80", []string{"198.51.100.9:5555"}, "198.51.100.9"},
		{"IPv6 entries with ports", "10.1.2.3:80", []string{"[2001:db8:2::7]:5555"}, "2001:db8:2::7"},
		{"bracketed IPv6 entries", "10.1.2.3:80", []string{"[2001:db8:2::7]"}, "2001:db8:2::7"},
		{"IPv6 proxy", "[2001:db8:1::5]:80", []string{"2001:db8:2::7"}, "2001:db8:2::7"},
		{"mapped IPv4 peer", "[::ffff:10.1.2.3]:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"mapped IPv4 entry", "10.1.2.3:80", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"empty entries are skipped", "10.1.2.3:80", []string{"198.51.100.9, , "}, "198.51.100.9"},
		{"not host:port", "@", []string{"198.51.100.9"}, "@"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/rpc", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := addr(r); got != tt.want {
				t.Errorf("ForwardedFor with RemoteAddr %q, X-Forwarded-For %q: got %q, want %q", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
}

func TestRemoteHost(t *testing.T) {
	t.Parallel()
	for remote, want := range map[string]string{
		"192.0.2.1:4711":          "192.0.2.1",
		"[2001:db8::1]:4711":      "2001:db8::1",
		"[::ffff:192.0.2.1]:4711": "192.0.2.1",
		"[fe80::1%eth0]:4711":     "fe80::1",
		"example.com:80":          "example.com",
		"@":                       "@",
		"":                        "",
	} {
		r := httptest.NewRequest("GET", "/rpc", nil)
		r.RemoteAddr = remote
		if got := rpcws.RemoteHost(r); got != want {
			t.Errorf("RemoteHost(%q): got %q, want %q", remote, got, want)
		}
	}
}

// behindProxy returns handler options that take the client's address from
// X-Forwarded-For as written from 127.0.0.1, the tests' proxy.
func behindProxy(o rpcws.HandlerOptions) *rpcws.HandlerOptions {
	o.ClientAddr = rpcws.ForwardedFor(netip.MustParsePrefix("127.0.0.1/32"))
	return &o
}

// from returns dial options whose handshake claims, through the proxy
// header, to come from client.
func from(client string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {client}}}
}

// dialTry opens a WebSocket to url and returns it, or nil and the HTTP
// status of the refusal.
func dialTry(t *testing.T, url string, opts *websocket.DialOptions) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err == nil {
		return ws, 0
	}
	if resp == nil {
		t.Fatalf("upgrade of %s: no response: %v", url, err)
	}
	return nil, resp.StatusCode
}

// One address opens connections as fast as it can: with the default cap it
// gets a tenth of MaxConns and then 429, while another address still
// connects and is served; its places come back when it closes.
func TestOneAddressCannotTakeEverySlot(t *testing.T) {
	t.Parallel()
	const maxConns, wantCap = 1000, 100 // the default cap: a tenth
	logs := newLogRecorder()
	s := newServer(t, behindProxy(rpcws.HandlerOptions{MaxConns: maxConns, Logger: slog.New(logs)}))

	var held []*websocket.Conn
	defer func() {
		for _, ws := range held {
			ws.CloseNow()
		}
	}()
	start := time.Now()
	status := 0
	for len(held) <= maxConns && status == 0 { // bounded: the cap or MaxConns ends it
		var ws *websocket.Conn
		if ws, status = dialTry(t, s.url, from("203.0.113.1")); ws != nil {
			held = append(held, ws)
		}
	}
	took := time.Since(start)
	if len(held) != wantCap || status != http.StatusTooManyRequests {
		t.Fatalf("one address: got %d connections, then %d; want %d, then %d", len(held), status, wantCap, http.StatusTooManyRequests)
	}
	logs.wait(t, "rpcws: refused an upgrade", "client=203.0.113.1", "too many connections from this client")

	start = time.Now()
	other := dialRaw(t, s.url, from("198.51.100.2"))
	writeText(t, other, `{"id":1,"type":"test.multiply","data":{"A":6,"B":7}}`)
	if m := readReply(t, other, "1"); m["data"] != 42.0 {
		t.Fatalf("another address: got %v, want data 42", m)
	}
	t.Logf("one address held %d of %d places in %v, then got %d; another address connected and was served in %v",
		len(held), maxConns, took.Round(time.Millisecond), status, time.Since(start).Round(time.Microsecond))

	// Closing one connection gives its place back.
	held[0].CloseNow()
	held = held[1:]
	testutil.WaitFor(t, "the closed connection's place", func() bool { return s.h.ClientPlaces()["203.0.113.1"] == wantCap-1 })
	ws, status := dialTry(t, s.url, from("203.0.113.1"))
	if ws == nil {
		t.Fatalf("after a close: got %d, want the upgrade accepted", status)
	}
	held = append(held, ws)

	// Closing them all leaves no entry behind.
	for _, ws := range held {
		ws.CloseNow()
	}
	held = nil
	other.CloseNow()
	testutil.WaitFor(t, "every place to be given back", func() bool { return len(s.h.ClientPlaces()) == 0 && s.h.NumConns() == 0 })
}

// A header from a peer that is not a trusted proxy is the client's own
// claim: it is ignored, and the peer's address is capped.
func TestForwardedForFromUntrustedPeer(t *testing.T) {
	t.Parallel()
	s := newServer(t, &rpcws.HandlerOptions{
		MaxConnsPerClient: 1,
		ClientAddr:        rpcws.ForwardedFor(netip.MustParsePrefix("10.0.0.0/8")), // not 127.0.0.1
	})
	dialRaw(t, s.url, from("203.0.113.1"))
	if _, status := dialTry(t, s.url, from("203.0.113.2")); status != http.StatusTooManyRequests {
		t.Fatalf("second connection from 127.0.0.1 claiming another address: got %d, want %d", status, http.StatusTooManyRequests)
	}
	if got := s.h.ClientPlaces(); len(got) != 1 || got["127.0.0.1"] != 1 {
		t.Errorf("places: got %v, want only 127.0.0.1 with 1", got)
	}
}

// Without a ClientAddr, the client's address is the peer's: two loopback
// addresses have a cap each. Linux routes all of 127.0.0.0/8 to loopback;
// elsewhere the test skips.
func TestMaxConnsPerClientByRemoteAddr(t *testing.T) {
	t.Parallel()
	s := newServer(t, &rpcws.HandlerOptions{MaxConnsPerClient: 2})
	dialFrom := func(local string) *websocket.DialOptions {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	probe, err := d.Dial("tcp", strings.TrimPrefix(s.url, "ws://"))
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2 here: %v", err)
	}
	probe.Close()
	for range 2 {
		dialRaw(t, s.url, dialFrom("127.0.0.1"))
	}
	if _, status := dialTry(t, s.url, dialFrom("127.0.0.1")); status != http.StatusTooManyRequests {
		t.Fatalf("third connection from 127.0.0.1: got %d, want %d", status, http.StatusTooManyRequests)
	}
	ws := dialRaw(t, s.url, dialFrom("127.0.0.2"))
	writeText(t, ws, `{"id":1,"type":"test.multiply","data":{"A":2,"B":3}}`)
	if m := readReply(t, ws, "1"); m["data"] != 6.0 {
		t.Fatalf("from 127.0.0.2: got %v, want data 6", m)
	}
	t.Logf("places: %v", s.h.ClientPlaces())
}

// An upgrade refused after its place was taken (by Authorize, or a bad
// handshake) gives the place back at once.
func TestClientPlaceReleasedOnRefusal(t *testing.T) {
	t.Parallel()
	authorize := func(r *http.Request) (any, error) {
		if r.Header.Get("X-Deny") != "" {
			return nil, fmt.Errorf("denied")
		}
		return nil, nil
	}
	s, hs := newServerWith(t, behindProxy(rpcws.HandlerOptions{MaxConnsPerClient: 1, Authorize: authorize}))
	for range 3 {
		opts := from("203.0.113.1")
		opts.HTTPHeader.Set("X-Deny", "1")
		if _, status := dialTry(t, s.url, opts); status != http.StatusForbidden {
			t.Fatalf("refused by Authorize: got %d, want %d", status, http.StatusForbidden)
		}
		req, _ := http.NewRequest("GET", hs.URL, nil) // not a WebSocket handshake
		req.Header.Set("X-Forwarded-For", "203.0.113.1")
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("plain GET: got %d, want a refusal of the handshake", resp.StatusCode)
		}
	}
	if got := s.h.ClientPlaces(); len(got) != 0 {
		t.Fatalf("places after refusals: got %v, want none", got)
	}
	dialRaw(t, s.url, from("203.0.113.1"))
}

// Many upgrades from a few addresses at once: each address gets exactly its
// cap, the rest 429, and once all close no entry is left.
func TestMaxConnsPerClientConcurrent(t *testing.T) {
	t.Parallel()
	const addrs, tries, perClient = 4, 24, 5
	srv := rpc.NewServer()
	h := rpcws.NewHandler(srv, behindProxy(rpcws.HandlerOptions{MaxConns: 100, MaxConnsPerClient: perClient}))
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	var mu sync.Mutex
	conns := make(map[string][]*websocket.Conn)
	refused := make(map[string]int)
	var wg sync.WaitGroup
	for a := range addrs {
		client := fmt.Sprintf("203.0.113.%d", a+1)
		for range tries {
			wg.Go(func() {
				ws, status := dialTry(t, url, from(client))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case ws != nil:
					conns[client] = append(conns[client], ws)
				case status == http.StatusTooManyRequests:
					refused[client]++
				default:
					t.Errorf("%s: got %d, want 101 or 429", client, status)
				}
			})
		}
	}
	wg.Wait()
	for a := range addrs {
		client := fmt.Sprintf("203.0.113.%d", a+1)
		if len(conns[client]) != perClient || refused[client] != tries-perClient {
			t.Errorf("%s: got %d accepted, %d refused; want %d, %d", client, len(conns[client]), refused[client], perClient, tries-perClient)
		}
		for _, ws := range conns[client] {
			ws.CloseNow()
		}
	}
	t.Logf("%d addresses × %d upgrades at once: accepted %v, refused %v", addrs, tries, countsOf(conns), refused)
	testutil.WaitFor(t, "every place to be given back", func() bool { return len(h.ClientPlaces()) == 0 && h.NumConns() == 0 })
}

func countsOf(conns map[string][]*websocket.Conn) map[string]int {
	n := make(map[string]int, len(conns))
	for k, v := range conns {
		n[k] = len(v)
	}
	return n
}
