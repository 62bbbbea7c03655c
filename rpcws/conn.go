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

// transport is what the handler serves a connection over: a [codec.Conn]
// that can close with a WebSocket status and tells when it has ended.
type transport interface {
	codec.Conn
	// closeWith closes the connection with a status and a short reason.
	closeWith(code websocket.StatusCode, reason string) error
	// context ends once the connection can no longer be read.
	context() context.Context
	// input returns the lazyReader the connection is read through, which
	// tells when the next frame has begun to arrive; nil if it has none,
	// and is then served by ServeCodec throughout (inline.go).
	input() *lazyReader
	// onClose arranges for f to run first whenever the connection closes
	// or breaks, before its context ends.
	onClose(f func())
}

// wsConn adapts a *websocket.Conn to a [transport], and adds what the codecs
// leave to it: a write timeout per frame and keepalive pings. It keeps no
// goroutine of its own while idle: pings run on a timer, and the batchConn
// under a batched connection flushes only while it has something to send.
type wsConn struct {
	ws           *websocket.Conn // set once, before the connection is used
	writeTimeout time.Duration   // <= 0: none

	// batch is the batchConn under ws, which bounds writes itself; nil if
	// there is none. Set once, before the connection is used.
	batch atomic.Pointer[batchConn]

	// hold reserves bytes of a frame being read against the budgets, and
	// release gives them back; nil: frames are not budgeted (a client).
	hold    func(n int64) bool
	release func(n int64)

	mu      sync.Mutex // guards closed, pingTimer's reset and closing
	closed  bool
	closing func() // runs first when the connection closes; may be nil

	// Keepalive.
	pingInterval time.Duration
	pingTimer    *time.Timer
	paused       func() bool // reports that reads have stopped for now, so pongs cannot be read; may be nil
	active       atomic.Bool // the peer was heard from since the last keepalive tick

	// ctx ends when the connection can no longer be read: closed by either
	// side or broken.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
}

// newWSConn returns a wsConn whose ws is still to be set: the hooks of
// [wsConn.controlHooks] must be handed to the handshake first.
func newWSConn(writeTimeout time.Duration) *wsConn {
	c := &wsConn{writeTimeout: writeTimeout}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// controlHooks returns the OnPingReceived and OnPongReceived callbacks for
// the handshake's options: every control frame from the peer shows it is
// alive. onPing and onPong, the caller's own, may be nil; they run too.
func (c *wsConn) controlHooks(onPing func(context.Context, []byte) bool, onPong func(context.Context, []byte)) (func(context.Context, []byte) bool, func(context.Context, []byte)) {
	ping := func(ctx context.Context, payload []byte) bool {
		c.active.Store(true)
		if onPing != nil {
			return onPing(ctx, payload)
		}
		return true
	}
	pong := func(ctx context.Context, payload []byte) {
		c.active.Store(true)
		if onPong != nil {
			onPong(ctx, payload)
		}
	}
	return ping, pong
}

// onClose arranges for f to run first whenever the connection closes, by
// either side: before its context ends.
func (c *wsConn) onClose(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = f
}

// startKeepalive starts pinging the peer whenever nothing was heard from it
// for interval (<= 0: never). paused, if not nil, reports that the
// connection is not being read for now (a server at its in-flight cap or
// byte budget): no pong could be read then, so the connection is pinged
// every interval, for the peer and any proxy to see it alive, and is not
// dropped for want of a pong.
func (c *wsConn) startKeepalive(interval time.Duration, paused func() bool) {
	if interval <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pingInterval, c.paused = interval, paused
	if !c.closed {
		c.pingTimer = time.AfterFunc(interval, c.keepalive)
	}
}

// ReadFrame reads one message into buf. The connection's own lifetime bounds
// the read, not ctx: a context that ends during a read would close the whole
// WebSocket, and [wsConn.Close] unblocks reads anyway.
func (c *wsConn) ReadFrame(_ context.Context, buf []byte) ([]byte, error) {
	// An idle connection waits in Reader: the rest is in readMessage's stack
	// frame, not in this one (see codec.ServerCodec.ReadRequestHeader).
	typ, r, err := c.ws.Reader(context.Background())
	return c.readMessage(typ, r, err, buf)
}

// readMessage reads the message that Reader began, for ReadFrame.
func (c *wsConn) readMessage(typ websocket.MessageType, r io.Reader, err error, buf []byte) ([]byte, error) {
	var held int64
	if err == nil {
		buf, held, err = c.readAll(r, buf[:0])
	}
	if held > 0 {
		c.release(held)
	}
	if errors.Is(err, errBusy) {
		// Before the codec learns of it and closes normally.
		c.closeWith(websocket.StatusTryAgainLater, busyReason)
		return buf, err
	}
	if err != nil {
		c.stop()
		return buf, err
	}
	c.active.Store(true)
	if typ != websocket.MessageText {
		return buf, codec.ErrBinaryFrame
	}
	return buf, nil
}

// freeRead is how much of a frame being read costs nothing against the
// budgets: what a connection may hold without asking.
const freeRead = 8 << 10

// errBusy ends a read whose frame the budgets have no room for.
var errBusy = errors.New("rpcws: no room to read the frame")

// busyReason is the close reason, with status 1013 (try again later), for a
// client whose large frame came while the server's byte budget was spent.
const busyReason = "rpcws: server busy, try again later"

// readAll reads r to the end into buf, growing it as needed. Beyond
// freeRead, growth is held against the budgets (c.hold) until the caller
// releases what it returns; when they have no room it fails with errBusy.
func (c *wsConn) readAll(r io.Reader, buf []byte) ([]byte, int64, error) {
	var held int64
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
			if c.hold != nil && cap(buf) > freeRead {
				need := int64(cap(buf)-freeRead) - held
				if !c.hold(need) {
					return buf, held, errBusy
				}
				held += need
			}
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, held, nil
		}
		if err != nil {
			return buf, held, err
		}
	}
}

// WriteFrame writes one text message, bounded by the write timeout and not
// by ctx, which must never reach the socket (see ReadFrame). On a batched
// connection the batchConn underneath bounds every send; otherwise each
// write gets a context with the timeout, which coder/websocket watches at a
// cost of a few allocations.
func (c *wsConn) WriteFrame(_ context.Context, p []byte) error {
	b := c.batch.Load()
	if b != nil && b.holds(len(p)) {
		b.hold()
		err := c.ws.Write(context.Background(), websocket.MessageText, p)
		if rerr := b.release(); err == nil {
			err = rerr
		}
		return err
	}
	if b != nil || c.writeTimeout <= 0 {
		return c.ws.Write(context.Background(), websocket.MessageText, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.writeTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, p)
}

// keepalive runs on the ping timer. A peer heard from since the last tick
// (a frame, a ping or a pong) is alive. Otherwise it is pinged, and dropped
// when it answers nothing within another interval; a connection that is not
// being read is pinged every tick and never dropped for want of a pong,
// which it could not read: its writes, bounded by the write timeout, tell
// whether the peer still takes data.
func (c *wsConn) keepalive() {
	paused := c.paused != nil && c.paused()
	if c.active.Swap(false) && !paused {
		c.resetPing()
		return
	}
	if paused {
		// Every interval, whether or not a pong could be read.
		c.resetPing()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.pingInterval)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil && !paused && !c.active.Load() && !(c.paused != nil && c.paused()) {
		// A peer that answers nothing reads nothing, so it would read no
		// close frame either: close at once rather than wait out a closing
		// handshake, so that pending calls fail now.
		c.closeNow()
		return
	}
	if !paused {
		c.resetPing()
	}
}

func (c *wsConn) resetPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.pingTimer != nil {
		c.pingTimer.Reset(c.pingInterval)
	}
}

func (c *wsConn) context() context.Context { return c.ctx }

func (c *wsConn) input() *lazyReader {
	if b := c.batch.Load(); b != nil {
		return b.lazy
	}
	return nil
}

// Close closes the connection normally (status 1000).
func (c *wsConn) Close() error {
	return c.closeWith(websocket.StatusNormalClosure, "")
}

// closeWith closes the connection once with the given status and reason,
// with a closing handshake bounded by the library's own timeout.
func (c *wsConn) closeWith(code websocket.StatusCode, reason string) error {
	var err error
	c.closeOnce.Do(func() {
		c.stop()
		if in := c.input(); in != nil {
			in.stopAwait() // coder/websocket reads for the peer's close frame on this goroutine
		}
		err = c.ws.Close(code, reason)
		if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || websocket.CloseStatus(err) != -1 {
			err = nil // closed already, or by the peer first: nothing to report
		}
	})
	return err
}

// closeNow closes the connection once, without a closing handshake.
func (c *wsConn) closeNow() {
	c.closeOnce.Do(func() {
		c.stop()
		if c.ws != nil { // nil only when the handshake failed
			c.ws.CloseNow()
		}
	})
}

// stop stops the keepalive, runs the closing hook and ends the connection's
// context, in that order, as it closes.
func (c *wsConn) stop() {
	c.mu.Lock()
	c.closed = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	closing := c.closing
	c.mu.Unlock()
	if closing != nil {
		closing()
	}
	c.cancel()
}
