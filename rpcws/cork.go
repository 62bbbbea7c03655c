package rpcws

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkConn is the network connection under a WebSocket. While corked, what
// coder/websocket writes gathers in a buffer, and uncork sends it with one
// system call; uncorked, writes go straight through. The connection's
// [codec.Outbox] corks it while it writes the frames that queued during its
// last write, so that replies and events that complete together leave
// together (coder/websocket flushes every frame on its own). Every send is
// bounded by the write timeout; a failed send closes the connection and
// calls broken, so that a reader that is not reading learns of it.
//
// BenchmarkShared64Small (64 callers on one connection) measures what it
// buys: see bench/peers/README.md.
type corkConn struct {
	net.Conn
	timeout time.Duration // <= 0: none
	broken  func()        // called once, on a goroutine of its own, when a send fails; may be nil
	pool    *sync.Pool    // of *[]byte gather buffers; nil: the connection keeps its own
	in      io.Reader     // reads the connection, if set (a server's lazyReader); else it is read directly

	mu       sync.Mutex // guards the fields below; held during a send
	corked   bool
	buf      *[]byte   // gathered bytes; nil when none
	err      error     // the first send error: every later write fails with it
	deadline time.Time // the write deadline last set
}

// corkLimit is the most bytes gathered while corked: a write that would go
// past it is sent at once, with what was gathered, in one writev, and is
// not copied.
const corkLimit = 16 << 10

// Read reads through in: coder/websocket reads the connection it was handed,
// behind the bytes its buffer held already.
func (c *corkConn) Read(p []byte) (int, error) {
	if c.in != nil {
		return c.in.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.corked && c.gathered()+len(p) <= corkLimit {
		if c.buf == nil {
			c.buf = c.newBuf()
		}
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	if err := c.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *corkConn) gathered() int {
	if c.buf == nil {
		return 0
	}
	return len(*c.buf)
}

func (c *corkConn) newBuf() *[]byte {
	if c.pool != nil {
		if b, ok := c.pool.Get().(*[]byte); ok {
			return b
		}
	}
	b := make([]byte, 0, 4<<10)
	return &b
}

// Close sends what was gathered, unless a send is under way (Close must
// unblock it, not wait for it), and closes the connection: coder/websocket
// writes its close frame and closes the connection right after.
func (c *corkConn) Close() error {
	if c.mu.TryLock() {
		if c.err == nil && c.gathered() > 0 {
			c.send(nil)
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

// cork makes writes gather until uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what was gathered, and returns the first send error.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.err == nil && c.gathered() > 0 {
		c.send(nil)
	}
	return c.err
}

// send writes what was gathered, then p, with one system call, bounded by
// the write timeout. c.mu is held.
func (c *corkConn) send(p []byte) error {
	c.renewDeadline()
	var err error
	switch {
	case c.gathered() == 0:
		_, err = c.Conn.Write(p)
	case len(p) == 0:
		_, err = c.Conn.Write(*c.buf)
	default:
		bufs := net.Buffers{*c.buf, p}
		_, err = bufs.WriteTo(c.Conn)
	}
	c.putBuf()
	if err != nil {
		c.err = err
		c.Conn.Close()
		if c.broken != nil {
			go c.broken()
		}
	}
	return err
}

// renewDeadline moves the write deadline to the write timeout from now,
// once the deadline has run down by a 64th of the timeout: a send is
// bounded by between 63/64 of the timeout and all of it. Setting it on
// every send resets a runtime timer per frame, which may wake the thread
// that polls the network. BenchmarkCallSmall, medians of 5 alternated
// runs, set on every send / renewed so: 10,286 / 10,850 calls/s (both
// ends' futex calls per call 1.42 / 1.28). c.mu is held.
func (c *corkConn) renewDeadline() {
	if c.timeout <= 0 {
		return
	}
	if d := time.Now().Add(c.timeout); d.Sub(c.deadline) > c.timeout/64 {
		c.Conn.SetWriteDeadline(d)
		c.deadline = d
	}
}

// putBuf gives the gather buffer back: to the pool, or, without one, keeps
// it unless it grew past its first size.
func (c *corkConn) putBuf() {
	if c.buf == nil {
		return
	}
	*c.buf = (*c.buf)[:0]
	switch {
	case c.pool != nil:
		c.pool.Put(c.buf)
	case cap(*c.buf) <= 4<<10:
		return
	}
	c.buf = nil
}

// corkingWriter is an http.ResponseWriter whose Hijack returns the
// connection as a corkConn, so that the WebSocket that coder/websocket builds
// on it writes through one, and reads it through a lazyReader.
type corkingWriter struct {
	http.ResponseWriter
	timeout  time.Duration
	hijacked func()                       // called before the 101 response can reach the client
	broken   func()                       // called when a send fails
	corks    *sync.Pool                   // of gather buffers
	reads    *sync.Pool                   // of read buffers
	conn     func(*corkConn, *lazyReader) // given the connection's corkConn and lazyReader, once made
}

// serverWriteBuffer is the size of the buffer a server's coder/websocket
// connection writes its frames through: a frame larger than it is written
// corked, so that it leaves in one send. A small one saves memory on every
// connection.
const serverWriteBuffer = 512

func (w corkingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked() // before net/http sends the 101 response, in Hijack
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The http.Server's ReadTimeout and WriteTimeout may have left deadlines
	// on the connection ("the caller's responsibility", says http.Hijacker);
	// a WebSocket outlives them. Each send gets the write timeout.
	c.SetDeadline(time.Time{})
	if w.timeout > 0 {
		c.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	if err := brw.Flush(); err != nil { // the 101 response, if still buffered
		c.Close()
		return nil, nil, err
	}
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	in, front := newLazyReader(c, w.reads, early) // net/http's reader and its 4 KiB go
	cc := &corkConn{Conn: c, timeout: w.timeout, broken: w.broken, pool: w.corks, in: in}
	w.conn(cc, in)
	return cc, bufio.NewReadWriter(front, bufio.NewWriterSize(cc, serverWriteBuffer)), nil
}

// corkingClient returns an HTTP client for the WebSocket handshake whose
// connections are corkConns (see [wrapDialer]), each handed to dialed; base
// itself when it cannot be wrapped.
func corkingClient(base *http.Client, timeout time.Duration, dialed func(*corkConn)) *http.Client {
	c, _ := wrapDialer(base, func(nc net.Conn) net.Conn {
		cc := &corkConn{Conn: nc, timeout: timeout}
		dialed(cc)
		return cc
	})
	return c
}

// wrapDialer returns a clone of base (nil: the default client) whose
// transport, a clone of base's *http.Transport (or of
// http.DefaultTransport), hands every connection it dials to wrap. It
// returns base unchanged, and false, when base's transport is not an
// *http.Transport or dials TLS itself, past DialContext.
func wrapDialer(base *http.Client, wrap func(net.Conn) net.Conn) (*http.Client, bool) {
	var c http.Client
	if base != nil {
		c = *base
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	//lint:ignore SA1019 a transport that still sets DialTLS dials TLS itself, past DialContext
	if !ok || t.DialTLSContext != nil || t.DialTLS != nil {
		return base, false
	}
	t = t.Clone()
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrap(conn), nil
	}
	c.Transport = t
	return &c, true
}
