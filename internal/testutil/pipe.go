package testutil

import (
	"context"
	"net"
	"os"
	"sync"
	"time"
)

// Listener is a net.Listener of in-memory connections that buffer what is
// written to them, as a socket's kernel buffers do: a write returns once its
// bytes are buffered, and blocks only while size bytes wait unread. Under
// testing/synctest, where real sockets cannot be, it lets a test watch a
// connection's timeouts in the bubble's time. net.Pipe alone would not do:
// its writes wait for the reader, so a peer that stops reading blocks even
// a ping.
type Listener struct {
	size  int
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewListener returns a Listener whose connections buffer size bytes each
// way.
func NewListener(size int) *Listener {
	return &Listener{size: size, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the server end of the next connection made by Dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and Dial; connections made stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr returns a placeholder address.
func (l *Listener) Addr() net.Addr { return memAddr{} }

// Dial returns the client end of a new connection; it fits
// http.Transport.DialContext.
func (l *Listener) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	a, b := net.Pipe()
	client, server := newBuffered(a, l.size), newBuffered(b, l.size)
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// buffered is one end of a net.Pipe whose writes go through a buffer that a
// goroutine of its own moves into the pipe.
type buffered struct {
	net.Conn // reads, and the read deadline, are the pipe's own

	mu       sync.Mutex
	space    *sync.Cond // signalled when buf shrinks, or on close
	ready    *sync.Cond // signalled when buf grows, or on close
	buf      []byte
	size     int
	closed   bool
	deadline time.Time
	timer    *time.Timer // wakes writers at the deadline
}

func newBuffered(c net.Conn, size int) *buffered {
	b := &buffered{Conn: c, size: size}
	b.space = sync.NewCond(&b.mu)
	b.ready = sync.NewCond(&b.mu)
	go b.pump()
	return b
}

// lingerTime bounds how long bytes written before Close may wait for the
// peer to read them, as a socket's linger does.
const lingerTime = time.Second

// pump moves buffered bytes into the pipe until the connection closes; then
// it moves what is left, for lingerTime at most, and closes the pipe.
func (b *buffered) pump() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for len(b.buf) == 0 && !b.closed {
			b.ready.Wait()
		}
		if b.closed {
			left := b.buf
			b.buf = nil
			b.mu.Unlock()
			if len(left) > 0 {
				b.Conn.SetWriteDeadline(time.Now().Add(lingerTime))
				b.Conn.Write(left)
			}
			b.Conn.Close()
			b.mu.Lock()
			return
		}
		out := append([]byte(nil), b.buf...)
		b.buf = b.buf[:0]
		b.space.Broadcast()
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		if err != nil {
			b.closed = true
			b.space.Broadcast()
			b.Conn.Close()
			return
		}
	}
}

func (b *buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for n < len(p) {
		for len(b.buf) >= b.size && !b.closed && !b.expired() {
			b.space.Wait()
		}
		if b.closed {
			return n, net.ErrClosed
		}
		if b.expired() {
			return n, os.ErrDeadlineExceeded
		}
		k := min(len(p)-n, b.size-len(b.buf))
		b.buf = append(b.buf, p[n:n+k]...)
		n += k
		b.ready.Signal()
	}
	return n, nil
}

func (b *buffered) expired() bool {
	return !b.deadline.IsZero() && !time.Now().Before(b.deadline)
}

func (b *buffered) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deadline = t
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if !t.IsZero() {
		b.timer = time.AfterFunc(time.Until(t), func() {
			b.mu.Lock()
			b.space.Broadcast()
			b.mu.Unlock()
		})
	}
	return nil
}

func (b *buffered) SetDeadline(t time.Time) error {
	b.SetWriteDeadline(t)
	return b.Conn.SetReadDeadline(t)
}

// Close closes the connection; what was written before is still delivered
// (see lingerTime), and the peer then reads io.EOF.
func (b *buffered) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.closed = true
	b.space.Broadcast()
	b.ready.Broadcast()
	// Reads end at once, as on a closed socket; what is being written may
	// still go, for lingerTime, after which the pump closes the pipe.
	b.Conn.SetReadDeadline(time.Now())
	b.Conn.SetWriteDeadline(time.Now().Add(lingerTime))
	return nil
}
