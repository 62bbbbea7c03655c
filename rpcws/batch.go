package rpcws

import (
	"bufio"
	"context"
	"math"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// batchConn is the network connection under a WebSocket. It gathers what
// coder/websocket writes and sends it with as few system calls as it can: a
// write only queues its bytes, and a flushing goroutine, which runs while
// there is something to send, sends everything queued at once. coder/websocket
// flushes every frame on its own; with many calls in flight on one
// connection, the frames of the replies (or requests) that complete during
// one send go out together in the next. A lone call waits for no one: its
// frame goes out as soon as the flusher runs.
//
// It bounds each send by the write timeout: a peer that stops reading gets
// its connection closed. Queued bytes beyond maxQueued make writers wait,
// which the timeout bounds too.
type batchConn struct {
	net.Conn
	timeout   time.Duration // <= 0: none
	broken    func()        // called, on a goroutine of its own, when a send fails; may be nil
	lazy      *lazyReader   // reads the connection, if set; it is read directly otherwise
	holdAbove int           // frames larger are written under a hold (see hold): coder/websocket's write buffer, less a header

	mu       sync.Mutex    // guards the fields below
	space    sync.Cond     // signalled when the queue shrinks
	queue    []byte        // bytes to send
	spare    []byte        // the previous queue's storage, for reuse
	flushing bool          // the flusher goroutine runs
	holding  int           // writers between hold and release: writes only queue
	closing  bool          // Close waits for the last sends
	err      error         // the first send error; every later write fails with it
	lastSend time.Duration // when the last send ended, on the clock of since; long before the start until the first
	deadline time.Duration // the write deadline of the connection, likewise; the sender's alone

	// epoch is when the connection was made: since reads the monotonic
	// clock from it, at half the cost of time.Now, which reads the wall
	// clock too.
	epoch time.Time
}

// maxQueued is how many bytes may wait to be sent before writers wait.
const maxQueued = 1 << 20

// reuseLimit is the largest queue storage kept for reuse while sending, and
// idleKeep the largest kept when the flusher stops.
const (
	reuseLimit = 64 << 10
	idleKeep   = 4 << 10
)

// quiet is how long after a send a connection counts as quiet: a write
// then goes out at once, on the writer's goroutine. Writes that follow each
// other more closely are queued and batched. Replies to one caller come a
// round trip apart, tens of microseconds; those of many callers sharing a
// connection come back to back.
const quiet = 5 * time.Microsecond

// closeGrace bounds how long Close waits for queued bytes, such as a close
// frame, to be sent.
const closeGrace = time.Second

// newBatchConn returns a batchConn over c, for a coder/websocket connection
// that writes its frames through a buffer of writeBuffer bytes.
func newBatchConn(c net.Conn, timeout time.Duration, writeBuffer int) *batchConn {
	b := &batchConn{Conn: c, timeout: timeout, holdAbove: writeBuffer - maxFrameHeader, epoch: time.Now(), lastSend: math.MinInt64 / 2}
	b.space.L = &b.mu
	return b
}

func (b *batchConn) Read(p []byte) (int, error) {
	if b.lazy != nil {
		return b.lazy.Read(p)
	}
	return b.Conn.Read(p)
}

// since returns the time on the connection's clock.
func (b *batchConn) since() time.Duration { return time.Since(b.epoch) }

func (b *batchConn) Write(p []byte) (int, error) {
	now := b.since()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && len(b.queue) >= maxQueued {
		b.space.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.holding > 0 {
		b.queue = append(b.queue, p...) // release sends it, or the flusher
		return len(p), nil
	}
	if !b.flushing && now-b.lastSend > quiet {
		// Alone on a quiet connection: nothing would join a queue, so send
		// at once, on the writer's goroutine, as an unbatched connection
		// would.
		return b.sendNow(p)
	}
	b.queue = append(b.queue, p...)
	if !b.flushing {
		b.startFlush()
	}
	return len(p), nil
}

// startFlush starts the flusher. b.mu is held, and the flusher not running.
func (b *batchConn) startFlush() {
	b.flushing = true
	go b.flush()
}

// holds reports whether a frame of n bytes is written under a hold: one
// larger than the buffer coder/websocket writes through, and small enough
// for the queue.
func (b *batchConn) holds(n int) bool { return n > b.holdAbove && n <= maxHeld }

// hold makes writes only queue until the matching release, which sends
// them together. coder/websocket writes a frame larger than the buffer it
// writes through (serverWriteBuffer, clientWriteBuffer) in two writes:
// held, the frame leaves in one send, where the second write would
// otherwise find the connection just used and start a flusher for itself.
func (b *batchConn) hold() {
	b.mu.Lock()
	b.holding++
	b.mu.Unlock()
}

// release ends a hold, and sends what the writes queued meanwhile as Write
// sends one write: at once on a quiet connection, else through the flusher.
// It returns the send's error.
func (b *batchConn) release() error {
	now := b.since()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding--
	if b.holding > 0 || b.flushing || len(b.queue) == 0 || b.err != nil {
		return b.err // the flusher, or the last release, sends the queue
	}
	if now-b.lastSend > quiet {
		b.flushing = true // as in sendNow
		err := b.sendQueue(idleKeep)
		b.sent(err)
		return err
	}
	b.startFlush()
	return nil
}

// sendNow sends p on the calling goroutine. b.mu is held.
func (b *batchConn) sendNow(p []byte) (int, error) {
	b.flushing = true // writes made meanwhile queue for a flusher
	n, err := b.send(p)
	b.sent(err)
	return n, err
}

// sent ends a send made on a writer's goroutine: a flusher takes over what
// was written meanwhile. b.mu is held.
func (b *batchConn) sent(err error) {
	b.flushing = false
	if err == nil && len(b.queue) > 0 {
		b.startFlush()
	}
	b.space.Broadcast()
}

// sendQueue sends what is queued. Writes made meanwhile queue on the spare
// storage, which is then the spare no more; the storage sent becomes the
// spare if it holds at most keep bytes. b.mu is held, and released during
// the send.
func (b *batchConn) sendQueue(keep int) error {
	out := b.queue
	b.queue, b.spare = b.spare[:0], nil
	_, err := b.send(out)
	if cap(out) <= keep {
		b.spare = out[:0]
	}
	return err
}

// flush sends the queue until it is empty.
func (b *batchConn) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) > 0 && b.err == nil {
		// Let the goroutines that are ready to write add to the queue
		// first: under load that gathers many frames into one send, and
		// alone the flusher goes on at once.
		b.mu.Unlock()
		runtime.Gosched()
		b.mu.Lock()
		b.sendQueue(reuseLimit)
		b.space.Broadcast()
	}
	if cap(b.queue) > idleKeep {
		b.queue = nil // an idle connection keeps no large buffer
	}
	if cap(b.spare) > idleKeep {
		b.spare = nil
	}
	b.flushing = false
	b.space.Broadcast()
}

// send writes p to the network, bounded by the write timeout, and notes
// when it ended. A failure is recorded, and closes the connection so that
// its reader learns of it too. b.mu is held, and released during the write.
func (b *batchConn) send(p []byte) (int, error) {
	closing := b.closing
	b.mu.Unlock()
	if b.timeout > 0 && !closing { // Close has set a shorter deadline
		// Renew the deadline only once it has run down by a 64th of the
		// timeout: setting it updates a runtime timer, a fifth of a
		// microsecond on every frame otherwise. A send is bounded by at
		// least 63/64 of the timeout, and at most all of it.
		if d := b.since() + b.timeout; d-b.deadline > b.timeout/64 {
			b.Conn.SetWriteDeadline(b.epoch.Add(d))
			b.deadline = d
		}
	}
	n, err := b.Conn.Write(p)
	end := b.since()
	b.mu.Lock()
	b.lastSend = end
	if err != nil && b.err == nil {
		b.err = err
		b.Conn.Close()
		if b.broken != nil {
			// The reader may not be reading (a server at its in-flight
			// cap): tell the connection's owner, which would not learn it
			// otherwise.
			go b.broken()
		}
	}
	return n, err
}

// Close closes the connection once what was queued has been sent, or after
// closeGrace: coder/websocket queues a close frame and closes the connection
// right after, and the frame must not be lost.
func (b *batchConn) Close() error {
	b.mu.Lock()
	if !b.flushing && len(b.queue) > 0 && b.err == nil {
		// Queued under a hold (a close frame written while a frame was
		// held): the flusher sends it.
		b.startFlush()
	}
	if b.flushing && b.err == nil {
		b.closing = true
		grace := closeGrace
		if b.timeout > 0 && b.timeout < grace {
			grace = b.timeout
		}
		b.Conn.SetWriteDeadline(time.Now().Add(grace))
		for b.flushing && b.err == nil {
			b.space.Wait()
		}
	}
	b.mu.Unlock()
	return b.Conn.Close()
}

// batchWriter is an http.ResponseWriter whose Hijack returns the connection
// as a batchConn, so that the WebSocket that coder/websocket builds on it
// sends through one.
type batchWriter struct {
	http.ResponseWriter
	timeout  time.Duration
	hijacked func()           // called before the 101 response can reach the client; may be nil
	broken   func()           // called when a send fails; may be nil
	reads    *sync.Pool       // of read buffers (*[]byte) lent while there are bytes to read; nil: none
	batch    func(*batchConn) // given the connection's batchConn, once made; may be nil
}

// serverWriteBuffer is the size of the buffer a server's coder/websocket
// connection writes its frames through, and clientWriteBuffer that of a
// client's, which coder/websocket makes itself (bufio's default). A frame
// larger than its buffer leaves in two writes, which a batchConn's hold
// joins again.
const (
	serverWriteBuffer = 512
	clientWriteBuffer = 4096
)

// maxFrameHeader is the largest WebSocket frame header: 2 bytes, 8 of
// length and 4 of mask.
const maxFrameHeader = 14

// maxHeld is the largest frame written under a hold. A held frame must fit
// the queue: writes that find it full wait for a send, and none comes while
// the writer holds (a client writes a frame in pieces of its buffer's
// size). A larger frame is written as it comes, as many sends as it takes.
const maxHeld = maxQueued / 2

func (w batchWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w batchWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked != nil {
		w.hijacked() // before net/http sends the 101 response, in Hijack
	}
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The http.Server's ReadTimeout and WriteTimeout may have left deadlines
	// on the connection ("the caller's responsibility", says http.Hijacker);
	// a WebSocket outlives them. Its writes get the write timeout, each send
	// its own.
	c.SetDeadline(time.Time{})
	if w.timeout > 0 {
		c.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	if err := brw.Flush(); err != nil { // the 101 response, if still buffered
		c.Close()
		return nil, nil, err
	}
	bc := newBatchConn(c, w.timeout, serverWriteBuffer)
	bc.broken = w.broken
	br := brw.Reader
	if n := br.Buffered(); w.reads != nil && n <= readBufSize {
		// coder/websocket keeps the reader's buffer for the connection's
		// life: a small one, over a lazyReader that holds a buffer of the
		// pool only while there are bytes to read. Bytes that net/http
		// read already (a client's first frames, sent as soon as the 101
		// response reached it) move to the lazyReader, and net/http's
		// reader goes.
		bc.lazy = newLazyReader(c, w.reads)
		if n > 0 {
			early, _ := br.Peek(n)
			bc.lazy.preload(early)
		}
		br = bufio.NewReaderSize(bc, 16)
		bc.lazy.front = br
	}
	if w.batch != nil {
		w.batch(bc)
	}
	// coder/websocket writes frames through this buffer; batchConn gathers
	// them again, so a small one does.
	return bc, bufio.NewReadWriter(br, bufio.NewWriterSize(bc, serverWriteBuffer)), nil
}

// batchingClient returns an HTTP client for the WebSocket handshake whose
// connections are batchConns (see [wrapDialer]), each handed to dialed; base
// itself when it cannot be wrapped.
func batchingClient(base *http.Client, timeout time.Duration, dialed func(*batchConn)) *http.Client {
	c, _ := wrapDialer(base, func(c net.Conn) net.Conn {
		b := newBatchConn(c, timeout, clientWriteBuffer)
		dialed(b)
		return b
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
