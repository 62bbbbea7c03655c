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
	// admission is the connection's, which it closes first when it closes.
	admission() *codec.Admission
}

// wsConn adapts a *websocket.Conn to a [transport] and a [codec.BatchConn],
// and adds what the codecs leave to it: a write timeout per send and
// keepalive pings. It keeps no goroutine of its own: pings run on a timer.
type wsConn struct {
	wsParts
	corkAbove int // frames larger are written corked: the write buffer of ws, less a header

	mu           sync.Mutex // guards closed and pingTimer's reset
	closed       bool
	pingInterval time.Duration
	pingTimer    *time.Timer

	closeOnce sync.Once
}

// wsParts are what a wsConn is made of.
type wsParts struct {
	ws           *websocket.Conn
	cork         *corkConn     // under ws; nil when the connection could not be wrapped
	writeTimeout time.Duration // <= 0: none
	heard        *heard        // the peer was heard from since the last keepalive tick
	in           *lazyReader   // what ws reads, to wait on for the next frame; may be nil

	// adm is the server connection's admission: it holds the bytes of a
	// large frame being read, and closes first when the connection does,
	// so that nothing more is written once the contexts that methods watch
	// end. Nil for a client.
	adm *codec.Admission
}

// newWSConn returns the connection made of p. writeBuffer is the size of
// the buffer p.ws writes through.
func newWSConn(p wsParts, writeBuffer int) *wsConn {
	return &wsConn{wsParts: p, corkAbove: writeBuffer - maxFrameHeader}
}

// maxFrameHeader is the largest WebSocket frame header: 2 bytes, 8 of
// length and 4 of mask.
const maxFrameHeader = 14

// heard records that the peer was heard from: every frame, ping or pong
// shows it alive.
type heard struct{ atomic.Bool }

// controlHooks returns the OnPingReceived and OnPongReceived callbacks for
// the handshake's options. turn, if set, runs before a ping is answered (a
// ping waits for its turn in the client's share, as a request does). onPing
// and onPong, the caller's own, may be nil; they run too.
func (h *heard) controlHooks(turn func(context.Context), onPing func(context.Context, []byte) bool, onPong func(context.Context, []byte)) (func(context.Context, []byte) bool, func(context.Context, []byte)) {
	ping := func(ctx context.Context, payload []byte) bool {
		h.Store(true)
		if turn != nil {
			turn(ctx)
		}
		if onPing != nil {
			return onPing(ctx, payload)
		}
		return true
	}
	pong := func(ctx context.Context, payload []byte) {
		h.Store(true)
		if onPong != nil {
			onPong(ctx, payload)
		}
	}
	return ping, pong
}

// startKeepalive starts pinging the peer whenever nothing was heard from it
// for interval (<= 0: never). A server connection whose admission is paused
// is not being read for now: no pong could be read then, so it is pinged
// every interval, for the peer and any proxy to see it alive, and is not
// dropped for want of a pong.
func (c *wsConn) startKeepalive(interval time.Duration) {
	if interval <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pingInterval = interval
	if !c.closed {
		c.pingTimer = time.AfterFunc(interval, c.keepalive)
	}
}

// paused reports whether the connection is not being read for now.
func (c *wsConn) paused() bool { return c.adm != nil && c.adm.Paused() }

// ReadFrame reads one message into buf. The connection's own lifetime bounds
// the read, not ctx: a context that ends during a read would close the whole
// WebSocket, and [wsConn.Close] unblocks reads anyway.
func (c *wsConn) ReadFrame(_ context.Context, buf []byte) ([]byte, error) {
	if c.in != nil {
		c.in.await() // an idle connection waits here, near the top of its stack
	}
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
		c.adm.Charge(-held)
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
	c.heard.Store(true)
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
// gives back what it returns; when they have no room it fails with errBusy.
func (c *wsConn) readAll(r io.Reader, buf []byte) ([]byte, int64, error) {
	var held int64
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
			if c.adm != nil && cap(buf) > freeRead {
				need := int64(cap(buf)-freeRead) - held
				if !c.adm.Hold(need) {
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
// by ctx, which must never reach the socket (see ReadFrame). A frame larger
// than the buffer coder/websocket writes through is written corked, so that
// it leaves in one send rather than two.
func (c *wsConn) WriteFrame(_ context.Context, p []byte) error {
	if c.cork == nil {
		return c.writeTimed(p)
	}
	if len(p) <= c.corkAbove {
		return c.ws.Write(context.Background(), websocket.MessageText, p)
	}
	c.cork.cork()
	err := c.ws.Write(context.Background(), websocket.MessageText, p)
	if uerr := c.cork.uncork(); err == nil {
		err = uerr
	}
	return err
}

// WriteFrames writes frames as one send: the [codec.Outbox] hands it those
// that queued while it wrote.
func (c *wsConn) WriteFrames(_ context.Context, frames [][]byte) error {
	if c.cork == nil {
		for _, p := range frames {
			if err := c.writeTimed(p); err != nil {
				return err
			}
		}
		return nil
	}
	c.cork.cork()
	var err error
	for _, p := range frames {
		if err = c.ws.Write(context.Background(), websocket.MessageText, p); err != nil {
			break
		}
	}
	if uerr := c.cork.uncork(); err == nil {
		err = uerr
	}
	return err
}

// writeTimed writes a frame where no corkConn bounds sends: the write gets a
// context with the timeout, which coder/websocket watches.
func (c *wsConn) writeTimed(p []byte) error {
	if c.writeTimeout <= 0 {
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
	paused := c.paused()
	if c.heard.Swap(false) && !paused {
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
	if err != nil && !paused && !c.heard.Load() && !c.paused() {
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

func (c *wsConn) admission() *codec.Admission { return c.adm }

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
		if c.in != nil {
			// coder/websocket reads the peer's close frame here.
			c.in.close(func() { err = c.ws.Close(code, reason) })
		} else {
			err = c.ws.Close(code, reason)
		}
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
		c.ws.CloseNow()
	})
}

// stop stops the keepalive and closes the admission, as the connection
// closes: nothing more is written, and then the context that methods watch
// (the admission's) ends.
func (c *wsConn) stop() {
	c.mu.Lock()
	c.closed = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	c.mu.Unlock()
	if c.adm != nil {
		c.adm.Close()
	}
}
