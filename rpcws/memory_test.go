package rpcws_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// Sink takes large arguments and answers small.
type Sink struct{}

func (Sink) Take(s string, n *int) error {
	*n = len(s)
	return nil
}

// A connection that sent one large request and then idles keeps no buffer
// of it: 40 connections that each sent 1 MB hold a few KiB each afterwards,
// not the megabyte.
func TestIdleConnKeepsNoLargeBuffer(t *testing.T) {
	// Not parallel: it measures the heap.
	const conns, size = 40, 1 << 20
	s, _ := newServerWith(t, &rpcws.HandlerOptions{ReadLimit: 2 << 20, MaxConnsPerClient: -1}, Sink{})
	req := fmt.Sprintf(`{"id":"1","type":"sink.take","data":%q}`, strings.Repeat("x", size))
	before := heapInUse()
	for range conns {
		ws := dialRaw(t, s.url, &websocket.DialOptions{})
		ws.SetReadLimit(-1)
		writeText(t, ws, req)
		if got := readReply(t, ws, `"1"`); got["data"] != float64(size) {
			t.Fatalf("reply %v, want data %d", got, size)
		}
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("the heap grew by %d KiB for %d idle connections that each sent %d KiB", grown>>10, conns, size>>10)
	if grown > conns*(64<<10) {
		t.Fatalf("the heap grew by %d bytes: %d per idle connection", grown, grown/conns)
	}
}

// Large events to members that read nothing are held once, and counted: the
// frame of a Broadcast is shared, never copied per connection, and a member
// whose queue holds one already is cut as a slow consumer.
func TestLargeEventsToStalledMembers(t *testing.T) {
	// Not parallel: it measures the heap.
	// More than the kernel's buffers on both ends take (4 MiB here).
	const members, size, events = 30, 900 << 10, 8
	s, hs := newServerWith(t, &rpcws.HandlerOptions{MaxConnsPerClient: -1, WriteTimeout: 5 * time.Second})
	for range members {
		stalledMember(t, hs.Listener.Addr().String())
	}
	testutil.WaitFor(t, "every member to be served", func() bool { return s.h.NumConns() == members })
	before := heapInUse()
	payload := strings.Repeat("e", size)
	for range events {
		if err := s.h.Broadcast(context.Background(), "big", payload); err != nil {
			t.Fatal(err)
		}
	}
	// The writes go on behind Broadcast, on the connections' own
	// goroutines: the live heap is watched until every member has been
	// cut.
	peak := heapInUse()
	deadline := time.Now().Add(20 * time.Second)
	for s.h.NumConns() > 0 && time.Now().Before(deadline) {
		peak = max(peak, heapInUse())
		time.Sleep(20 * time.Millisecond)
	}
	grown := int64(peak) - int64(before)
	t.Logf("%d events of %d KiB to %d stalled members: the heap grew by %d KiB at most", events, size>>10, members, grown>>10)
	if grown > events*size+4<<20 {
		t.Errorf("the heap grew by %d bytes", grown)
	}
	if n := s.h.NumConns(); n != 0 {
		t.Errorf("%d stalled members still connected, want every one cut", n)
	}
}

// stalledMember opens a WebSocket to addr that reads nothing after the
// upgrade, with a small receive buffer, so that the server's writes to it
// stall at once. It is closed at cleanup.
func stalledMember(t *testing.T, addr string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: nil}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	head := make([]byte, 12) // "HTTP/1.1 101"
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(head); err != nil || !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		t.Fatalf("upgrade: %q, %v", head, err)
	}
}

// Nothing of the upgrade request outlives the handshake: an offer of
// subprotocols over 8 KiB is refused (431), and the one selected from a
// long offer is a copy, so that 150 connections that each offered 7 KiB
// hold none of it (less than half of it, allowing for the heap's noise).
func TestSubprotocolOfferNotKept(t *testing.T) {
	// Not parallel: it measures the heap.
	opts := &rpcws.HandlerOptions{MaxConnsPerClient: -1, AcceptOptions: &websocket.AcceptOptions{Subprotocols: []string{"rpcws"}}}
	s, hs := newServerWith(t, opts)
	addr := hs.Listener.Addr().String()
	const conns, size = 150, 7 << 10
	grown := func(n int) int64 {
		before := heapInUse()
		for range conns {
			if status, proto := offerSubprotocols(t, addr, n); status != http.StatusSwitchingProtocols || proto != "rpcws" {
				t.Fatalf("upgrade: status %d, subprotocol %q; want 101, rpcws", status, proto)
			}
		}
		testutil.WaitFor(t, "every connection to be served", func() bool { return s.h.NumConns() > 0 && s.h.NumConns()%conns == 0 })
		return int64(heapInUse()) - int64(before)
	}
	grown(8) // warms up
	short, long := grown(8), grown(size)
	perConn := (long - short) / conns
	t.Logf("%d connections: the heap grew by %d KiB with a short offer, %d KiB with a %d KiB one", conns, short>>10, long>>10, size>>10)
	if perConn > size/2 { // the old handler kept the whole offer: size or more
		t.Errorf("a %d-byte offer holds %d more bytes per connection than a short one", size, perConn)
	}
	if status, _ := offerSubprotocols(t, addr, 900<<10); status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 900 KiB offer: got status %d, want 431", status)
	}
}

// offerSubprotocols upgrades a raw connection to addr offering "rpcws" and a
// token of n bytes, and returns the response's status and the subprotocol
// selected. The connection is closed at cleanup.
func offerSubprotocols(t *testing.T, addr string, n int) (status int, proto string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: rpcws, token.%s\r\n\r\n", addr, strings.Repeat("t", n))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Sec-WebSocket-Protocol")
}
