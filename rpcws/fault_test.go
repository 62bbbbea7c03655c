package rpcws_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
	"golang.org/x/sync/errgroup"
)

// Shutdown with 1000 requests in flight: each gets its reply; requests sent
// during the drain get Unavailable; then the connections close with 1001,
// later calls fail at once, and new upgrades get 503.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const n = 1000
	s := newServer(t, &rpcws.HandlerOptions{MaxInFlight: n})
	c := s.dial(t, nil)
	done, replies := goGates(c, n)
	s.waitArrived(t, n)
	// A raw connection with a call in flight too, to read the close frame.
	raw := dialRaw(t, s.url, nil)
	writeText(t, raw, `{"id":"held","type":"test.gate","data":1000}`)
	s.waitArrived(t, 1)

	// One reply frees a slot under c's cap, so that c's requests are read.
	s.release(0)
	if call := <-done; call.Error != nil || replies[0] != 0 {
		t.Fatalf("first call: got %d, %v; want 0, nil", replies[0], call.Error)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.h.Shutdown(ctx)
	}()

	// Calls are served until the drain begins, then refused with Unavailable.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var got int
		err := c.CallContext(ctx, "Test.Multiply", &Args{2, 3}, &got)
		cancel()
		if code := codec.ErrorCode(err); code == codec.CodeUnavailable {
			break
		} else if err != nil || got != 6 {
			t.Fatalf("call before the drain: got %d, %v; want 6, nil or code Unavailable", got, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("calls were not refused with Unavailable")
		}
	}
	// Every connection refuses new requests, and new upgrades are refused.
	writeText(t, raw, `{"id":"late","type":"test.multiply","data":{"A":1,"B":1}}`)
	if got := readReply(t, raw, `"late"`); got["type"] != "error" || got["code"] != codec.CodeUnavailable {
		t.Fatalf("request during the drain: got %v, want an Unavailable error", got)
	}
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade during the drain: got %d, want %d", got, http.StatusServiceUnavailable)
	}
	if got := s.h.NumConns(); got != 2 {
		t.Fatalf("connections during the drain: got %d, want 2", got)
	}

	// The requests in flight end, and each gets its reply.
	for i := 1; i <= n; i++ {
		s.release(i)
	}
	for range n - 1 {
		select {
		case call := <-done:
			if i := call.Args.(int); call.Error != nil || replies[i] != i {
				t.Fatalf("call %d: got %d, %v; want %d, nil", i, replies[i], call.Error, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call in flight got no reply")
		}
	}
	if got := readReply(t, raw, `"held"`); got["data"] != 1000.0 {
		t.Fatalf("raw call in flight: got %v, want data 1000", got)
	}
	// Then the connections close with 1001.
	if ce := readClose(t, raw); ce.Code != websocket.StatusGoingAway {
		t.Fatalf("close status: got %v, want %v", ce.Code, websocket.StatusGoingAway)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection did not close")
	}
	if got := s.h.NumConns(); got != 0 {
		t.Fatalf("connections after Shutdown: got %d, want 0", got)
	}

	// Later calls fail at once.
	start := time.Now()
	err := c.CallContext(context.Background(), "Test.Multiply", &Args{1, 1}, new(int))
	if !errors.Is(err, rpcws.ErrDisconnected) {
		t.Fatalf("call after Shutdown: got %v, want ErrDisconnected", err)
	}
	if err := c.Call("Test.Multiply", &Args{1, 1}, new(int)); codec.ErrorCode(err) != codec.CodeDisconnected {
		t.Fatalf("stock call after Shutdown: got %v, want code Disconnected", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("calls after Shutdown took %v, want them to fail at once", d)
	}
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: got %d, want %d", got, http.StatusServiceUnavailable)
	}
}

// Shutdown with a context that has ended closes every connection at once,
// with 1001, fails the clients' pending calls, and returns the context's
// error, even while a peer that does not read holds up its closing
// handshake.
func TestShutdownExpired(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t, &rpcws.DialOptions{Timeout: 30 * time.Second})
	errc := make(chan error, 1)
	go func() { errc <- c.CallContext(context.Background(), "Test.Block", &BlockArgs{N: 1}, new(int)) }()
	raw := dialRaw(t, s.url, nil)
	writeText(t, raw, `{"id":2,"type":"test.block","data":{"N":2}}`)
	s.waitArrived(t, 2)

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	start := time.Now()
	err := s.h.Shutdown(ctx) // raw is not reading
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Shutdown with an expired context took %v, want it to return at once", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: got %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, rpcws.ErrDisconnected) {
			t.Fatalf("pending call: got %v, want ErrDisconnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pending call did not fail")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the pending call failed after %v, want at once", d)
	}
	if ce := readClose(t, raw); ce.Code != websocket.StatusGoingAway {
		t.Fatalf("close status: got %v, want %v", ce.Code, websocket.StatusGoingAway)
	}
	testutil.WaitFor(t, "the connections to close", func() bool { return s.h.NumConns() == 0 })
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: got %d, want %d", got, http.StatusServiceUnavailable)
	}
}

// cutListener is a net.Listener that keeps its connections, so that a test
// can cut them all at once, as a server that dies would.
type cutListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// cut closes every connection accepted so far; the listener goes on.
func (l *cutListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// newCutServer is newServer on a listener whose connections can be cut.
func newCutServer(t *testing.T, opts *rpcws.HandlerOptions) (*server, *cutListener) {
	t.Helper()
	s := &server{Test: newTest()}
	srv := rpc.NewServer()
	if err := srv.Register(s.Test); err != nil {
		t.Fatal(err)
	}
	s.h = rpcws.NewHandler(srv, opts)
	hs := httptest.NewUnstartedServer(s.h)
	ln := &cutListener{Listener: hs.Listener}
	hs.Listener = ln
	hs.Start()
	s.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.h.Shutdown(ctx)
		hs.Close()
	})
	return s, ln
}

// The server's connections are cut mid-call (the server died): the client
// fails its pending calls at once, long before their timeout, with
// Disconnected; the server, still up, serves a new client.
func TestServerDiesMidCall(t *testing.T) {
	t.Parallel()
	const n = 10
	s, ln := newCutServer(t, nil)
	c := s.dial(t, &rpcws.DialOptions{Timeout: 30 * time.Second})
	errc := make(chan error, n)
	for i := range n / 2 {
		go func() { errc <- c.CallContext(context.Background(), "Test.Block", &BlockArgs{N: i}, new(int)) }()
	}
	done := make(chan *rpc.Call, n)
	for i := n / 2; i < n; i++ {
		c.Go("Test.Block", &BlockArgs{N: i}, new(int), done)
	}
	s.waitArrived(t, n)

	start := time.Now()
	ln.cut()
	for i := range n {
		var err error
		select {
		case err = <-errc:
		case call := <-done:
			err = call.Error
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d pending calls failed", i, n)
		}
		if code := codec.ErrorCode(err); code != codec.CodeDisconnected {
			t.Fatalf("pending call: got %v (code %q), want code Disconnected", err, code)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("pending calls failed after %v, want at once", d)
	}
	testutil.WaitFor(t, "the server to drop the connection", func() bool { return s.h.NumConns() == 0 })
	c2 := s.dial(t, nil)
	var got int
	if err := c2.Call("Test.Multiply", &Args{3, 5}, &got); err != nil || got != 15 {
		t.Fatalf("new client: got %d, %v; want 15, nil", got, err)
	}
}

// dialTCP opens a WebSocket to url and returns it with its TCP connection,
// which the test can close under it.
func dialTCP(t *testing.T, url string) (*websocket.Conn, *net.TCPConn) {
	t.Helper()
	conns := make(chan net.Conn, 1)
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				conns <- c
			}
			return c, err
		},
	}}
	ws := dialRaw(t, url, &websocket.DialOptions{HTTPClient: hc})
	return ws, (<-conns).(*net.TCPConn)
}

// A client vanishes mid-call, its TCP connection closed under it (with FIN,
// or reset): the method watching Peer().Context() returns, the server frees
// the connection and all its goroutines, and serves a new client.
func TestClientVanishesMidCall(t *testing.T) {
	// Not parallel: it counts goroutines.
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("reset=%v", reset), func(t *testing.T) {
			hold := newHold(4)
			s, _ := newServerWith(t, nil, hold)
			base := testutil.CountGoroutines()
			ws, tcp := dialTCP(t, s.url)
			for i := range 4 {
				writeText(t, ws, fmt.Sprintf(`{"id":%d,"type":"hold.wait","data":{"N":%d}}`, i, i))
			}
			hold.waitReached(t)
			if reset {
				tcp.SetLinger(0)
			}
			tcp.Close()
			testutil.WaitFor(t, "the methods to return", func() bool { return hold.running.Load() == 0 })
			testutil.WaitFor(t, "the server to drop the connection", func() bool { return s.h.NumConns() == 0 })
			ws.CloseNow()
			testutil.CheckGoroutines(t, base)
			c := s.dial(t, nil)
			var got int
			if err := c.Call("Test.Multiply", &Args{3, 5}, &got); err != nil || got != 15 {
				t.Fatalf("new client: got %d, %v; want 15, nil", got, err)
			}
		})
	}
}

// rawUpgrade opens a TCP connection to the server at url and upgrades it to a
// WebSocket by hand, for tests that write bytes no WebSocket library would.
// early goes out in the same write as the upgrade request, before the 101
// response is read.
func rawUpgrade(t *testing.T, url string, early ...byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "ws://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Appendf(nil, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", c.RemoteAddr())
	if _, err := c.Write(append(req, early...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: got %s, want 101", resp.Status)
	}
	return c, br
}

// frame returns a WebSocket frame as a client sends it: first byte b0 (FIN,
// RSV bits and opcode), then the length, a mask key (unless unmasked) and
// the masked payload.
func frame(b0 byte, payload []byte, masked bool) []byte {
	out := []byte{b0}
	maskBit := byte(0)
	if masked {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, maskBit|byte(n))
	case n < 1<<16:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, key[:]...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}

// Broken frames over raw TCP: cut in half, or breaking the WebSocket
// protocol. The server drops that connection (with 1002 where it can say
// why), does not panic, and serves the next client.
func TestBrokenFrames(t *testing.T) {
	t.Parallel()
	req := []byte(`{"id":1,"type":"test.multiply","data":{"A":6,"B":7}}`)
	whole := frame(0x81, req, true)
	tests := []struct {
		name  string
		bytes []byte
		cut   bool                 // the client then closes; else it waits for the server to
		want  websocket.StatusCode // the status of the server's close frame; -1: any
	}{
		{"half a header", whole[:1], true, 0},
		{"header without mask key", whole[:4], true, 0},
		{"half a payload", whole[:len(whole)/2], true, 0},
		{"a whole frame, then half of one", append(append([]byte(nil), whole...), whole[:10]...), true, 0},
		{"length beyond the read limit", frame(0x81, make([]byte, 2<<20), true)[:1<<20+100], false, websocket.StatusMessageTooBig},
		// coder/websocket sends no close frame for this one; the server's
		// codec then closes the connection, normally.
		{"unmasked frame", frame(0x81, req, false), false, -1},
		{"reserved bits", frame(0x81|0x70, req, true), false, websocket.StatusProtocolError},
		{"unknown opcode", frame(0x83, req, true), false, websocket.StatusProtocolError},
		{"continuation without a start", frame(0x80, req, true), false, websocket.StatusProtocolError},
		{"fragmented ping", frame(0x09, []byte("x"), true), false, websocket.StatusProtocolError},
		{"ping over 125 bytes", frame(0x89, make([]byte, 126), true), false, websocket.StatusProtocolError},
		{"close with a bad status", frame(0x88, []byte{0x03, 0xe7}, true), false, websocket.StatusProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, nil)
			c, br := rawUpgrade(t, s.url)
			testutil.WaitFor(t, "the connection to be counted", func() bool { return s.h.NumConns() == 1 })
			if _, err := c.Write(tt.bytes); err != nil {
				t.Fatal(err)
			}
			if tt.cut {
				c.Close()
			} else {
				// The server closes the connection: read to its end.
				got := readCloseStatus(t, br)
				if tt.want != -1 && got != tt.want {
					t.Fatalf("close status: got %v, want %v", got, tt.want)
				}
				c.Close()
			}
			testutil.WaitFor(t, "the server to drop the connection", func() bool { return s.h.NumConns() == 0 })
			next := s.dial(t, nil)
			var got int
			if err := next.Call("Test.Multiply", &Args{6, 7}, &got); err != nil || got != 42 {
				t.Fatalf("next client: got %d, %v; want 42, nil", got, err)
			}
		})
	}
}

// readCloseStatus reads server frames from br until a close frame, and
// returns its status; 0 means the connection ended without one.
func readCloseStatus(t *testing.T, br *bufio.Reader) websocket.StatusCode {
	t.Helper()
	for {
		op, p, err := readServerFrame(br)
		if err != nil {
			return 0
		}
		if op == 0x8 {
			if len(p) < 2 {
				return websocket.StatusNoStatusRcvd
			}
			return websocket.StatusCode(binary.BigEndian.Uint16(p))
		}
	}
}

// readServerFrame reads one frame as a server sends it (unmasked), and
// returns its opcode and payload.
func readServerFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// A ping that arrives in the same segment as the end of a request is
// answered, as the request is, without waiting for more bytes: the server
// reads through coder/websocket's small buffer, where such a ping may lie
// whole once the request is read. Requests of 8 to 48 and of 53 to 92
// bytes, past twice that buffer's, each sent with a ping in one write, put
// the ping's end at every place around the buffer's edge. Each goes on a
// connection of its own: one whose every request finds the next arriving
// is soon served by ServeCodec, which reads otherwise.
func TestFrameWholeInReadBuffer(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	for id := range 80 {
		c, br := rawUpgrade(t, s.url)
		// Short requests lack a type, and get an error reply; longer ones
		// are calls. Both carry the id.
		req := fmt.Appendf(nil, `{"id":%d}`, id)
		if id >= 40 {
			req = fmt.Appendf(nil, `{"id":%d,"type":"test.multiply","data":{"A":6,"B":7}}`, id)
		}
		req = append(req[:len(req)-1], strings.Repeat(" ", id%40)+"}"...)
		ping := []byte(strconv.Itoa(id))
		if _, err := c.Write(append(frame(0x81, req, true), frame(0x89, ping, true)...)); err != nil {
			t.Fatal(err)
		}
		var replied, ponged bool
		for !replied || !ponged {
			// rawUpgrade's deadline bounds the wait: a server that waits
			// for more bytes sends neither before it.
			op, p, err := readServerFrame(br)
			if err != nil {
				t.Fatalf("a request of %d bytes, then a ping in the same write: replied %v, pong %v: %v", len(req), replied, ponged, err)
			}
			switch op {
			case 0x1:
				var reply struct{ ID int }
				if err := json.Unmarshal(p, &reply); err != nil || reply.ID != id {
					t.Fatalf("reply to id %d: got %s", id, p)
				}
				replied = true
			case 0xa:
				if string(p) != string(ping) {
					t.Fatalf("pong: got %q, want %q", p, ping)
				}
				ponged = true
			}
		}
		c.Close()
	}
}

// Garbage handshakes get a 4xx, release their place under MaxConns, and the
// server goes on serving.
func TestBadHandshakes(t *testing.T) {
	t.Parallel()
	const good = "Host: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	tests := []struct {
		name    string
		request string // %s is the host
		want    int
	}{
		{"not HTTP", "hello, server\r\n\r\n", http.StatusBadRequest},
		{"binary junk", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", http.StatusBadRequest},
		{"plain GET", "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", http.StatusUpgradeRequired},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + good + key + "\r\n", http.StatusUpgradeRequired},
		{"POST", "POST / HTTP/1.1\r\n" + good + key + "Content-Length: 0\r\n\r\n", http.StatusMethodNotAllowed},
		{"wrong version", "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n" + key + "\r\n", http.StatusBadRequest},
		{"no key", "GET / HTTP/1.1\r\n" + good + "\r\n", http.StatusBadRequest},
		{"bad key", "GET / HTTP/1.1\r\n" + good + "Sec-WebSocket-Key: short\r\n\r\n", http.StatusBadRequest},
		{"two keys", "GET / HTTP/1.1\r\n" + good + key + key + "\r\n", http.StatusBadRequest},
		{"header too long", "GET / HTTP/1.1\r\nHost: %s\r\nX-Junk: " + strings.Repeat("x", 2<<20) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	}
	// One connection at most: a handshake that kept its place would lock out
	// the next client.
	s := newServer(t, &rpcws.HandlerOptions{MaxConns: 1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.url, "ws://"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			request := tt.request
			if strings.Contains(request, "%s") {
				request = fmt.Sprintf(request, c.RemoteAddr())
			}
			go io.WriteString(c, request) // the server may answer before it reads all
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if got := s.h.NumConns(); got != 0 {
		t.Fatalf("NumConns: got %d, want 0", got)
	}
	c := s.dial(t, nil)
	var got int
	if err := c.Call("Test.Multiply", &Args{6, 7}, &got); err != nil || got != 42 {
		t.Fatalf("client after the bad handshakes: got %d, %v; want 42, nil", got, err)
	}
}

// 1,000 connections opened and dropped in every way a client can leave:
// afterwards the handler counts none and every goroutine has ended.
func TestConnectionChurn(t *testing.T) {
	// Not parallel: it counts goroutines.
	const n, workers = 1000, 4
	s := newServer(t, nil)
	base := testutil.CountGoroutines()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	leave := []func(ws *websocket.Conn) error{
		func(ws *websocket.Conn) error { return ws.Close(websocket.StatusNormalClosure, "") },
		func(ws *websocket.Conn) error { return ws.CloseNow() },
		func(ws *websocket.Conn) error { // mid-request
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":1,"type":"test.multiply","data":{"A":1,"B":2}}`)); err != nil {
				return err
			}
			return ws.CloseNow()
		},
	}
	var g errgroup.Group
	for w := range workers {
		g.Go(func() error {
			for i := w; i < n; i += workers {
				if i%4 == 3 { // the Go client, with a call
					c, err := rpcws.Dial(ctx, s.url, nil)
					if err != nil {
						return err
					}
					var got int
					err = c.CallContext(ctx, "Test.Multiply", &Args{i, 2}, &got)
					c.Close()
					if err != nil || got != 2*i {
						return fmt.Errorf("call %d: got %d, %v", i, got, err)
					}
					continue
				}
				ws, _, err := websocket.Dial(ctx, s.url, nil)
				if err != nil {
					return err
				}
				if err := leave[i%4](ws); err != nil && !errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("connection %d: %w", i, err)
				}
			}
			return nil
		})
	}
	start := time.Now()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "every connection to close", func() bool { return s.h.NumConns() == 0 })
	testutil.CheckGoroutines(t, base)
	t.Logf("%d connections opened and dropped in %v", n, time.Since(start))

	c := s.dial(t, nil)
	var got int
	if err := c.Call("Test.Multiply", &Args{6, 7}, &got); err != nil || got != 42 {
		t.Fatalf("client after the churn: got %d, %v; want 42, nil", got, err)
	}
}
