package rpcws

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
)

// wsConn adapts a *websocket.Conn to [codec.Conn], and adds what the codecs
// leave to the transport: a write timeout per frame, a bounded queue for
// pushed events, and keepalive pings.
//
// It keeps no goroutine of its own while idle: events are written by a
// goroutine that runs only while the queue has some, and pings by a timer.
type wsConn struct {
	ws           *websocket.Conn
	writeTimeout time.Duration // <= 0: none
	maxQueued    int

	mu      sync.Mutex // guards queue, writing and closed
	queue   [][]byte   // events waiting to be written
	writing bool       // an event writer goroutine is running
	closed  bool

	// Keepalive.
	pingInterval time.Duration
	pingTimer    *time.Timer
	busy         func() bool // reports work in flight, when reads may pause; may be nil
	active       atomic.Bool // a frame was read since the last keepalive tick

	// ctx ends when the connection can no longer be read: closed by either
	// side or broken.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
}

func newWSConn(ws *websocket.Conn, writeTimeout, pingInterval time.Duration, maxQueued int, busy func() bool) *wsConn {
	c := &wsConn{
		ws:           ws,
		writeTimeout: writeTimeout,
		maxQueued:    maxQueued,
		pingInterval: pingInterval,
		busy:         busy,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if pingInterval > 0 {
		c.pingTimer = time.AfterFunc(pingInterval, c.keepalive)
	}
	return c
}

// ReadFrame reads one message into buf. The connection's own lifetime bounds
// the read, not ctx: a context that ends during a read would close the whole
// WebSocket, and [wsConn.Close] unblocks reads anyway.
func (c *wsConn) ReadFrame(_ context.Context, buf []byte) ([]byte, error) {
	typ, r, err := c.ws.Reader(context.Background())
	if err == nil {
		buf, err = readAll(r, buf[:0])
	}
	if err != nil {
		c.cancel()
		return buf, err
	}
	c.active.Store(true)
	if typ != websocket.MessageText {
		return buf, codec.ErrBinaryFrame
	}
	return buf, nil
}

// readAll reads r to the end into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// WriteFrame writes one text message, bounded by the write timeout (not by
// ctx, which must never reach the socket: see ReadFrame).
func (c *wsConn) WriteFrame(_ context.Context, p []byte) error {
	ctx := context.Background()
	if c.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.writeTimeout)
		defer cancel()
	}
	return c.ws.Write(ctx, websocket.MessageText, p)
}

// ErrSlowConsumer is the error of a push to a connection whose queue of
// events is full: the peer reads too slowly. The connection is closed with
// status 1008 (policy violation) and the reason [SlowConsumerReason].
var ErrSlowConsumer = errors.New("rpcws: event queue full: peer reads too slowly")

// SlowConsumerReason is the close reason sent to a peer whose event queue
// overflowed.
const SlowConsumerReason = "rpcws: event queue overflow: client reads too slowly"

// ErrClosed is the error of a push to a connection that has closed.
var ErrClosed = errors.New("rpcws: connection closed")

// push queues an event frame for writing, without waiting. frame must not
// change afterwards; it may be shared between connections.
func (c *wsConn) push(frame []byte) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if len(c.queue) >= c.maxQueued {
		c.mu.Unlock()
		go c.close(websocket.StatusPolicyViolation, SlowConsumerReason)
		return ErrSlowConsumer
	}
	c.queue = append(c.queue, frame)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeEvents()
	}
	return nil
}

// writeEvents writes queued events until the queue is empty.
func (c *wsConn) writeEvents() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.closed {
			c.queue = nil
			c.writing = false
			c.mu.Unlock()
			return
		}
		frame := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if err := c.WriteFrame(nil, frame); err != nil {
			c.close(websocket.StatusInternalError, "")
		}
	}
}

// flushed reports whether no event waits to be written.
func (c *wsConn) flushed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.writing
}

// keepalive runs on the ping timer: it pings a connection that was idle for a
// whole interval and closes it when no pong comes within another.
func (c *wsConn) keepalive() {
	if c.active.Swap(false) || (c.busy != nil && c.busy()) {
		c.resetPing()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.pingInterval)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		c.close(websocket.StatusPolicyViolation, "rpcws: keepalive ping got no pong")
		return
	}
	c.resetPing()
}

func (c *wsConn) resetPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.pingTimer.Reset(c.pingInterval)
	}
}

// Close closes the connection normally (status 1000).
func (c *wsConn) Close() error {
	return c.close(websocket.StatusNormalClosure, "")
}

// close closes the connection once with the given status and reason, with a
// closing handshake bounded by the library's own timeout.
func (c *wsConn) close(code websocket.StatusCode, reason string) error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		if c.pingTimer != nil {
			c.pingTimer.Stop()
		}
		c.mu.Unlock()
		c.cancel()
		err = c.ws.Close(code, reason)
		if errors.Is(err, net.ErrClosed) || websocket.CloseStatus(err) != -1 {
			err = nil // closed already, or by the peer first: nothing to report
		}
	})
	return err
}
