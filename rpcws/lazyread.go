package rpcws

import (
	"bufio"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// readBufSize is the size of the read buffers that a Handler lends its
// connections: as large as net/http's, so that one read takes in many
// frames of a busy connection.
const readBufSize = 4 << 10

// lazyReader reads a server connection for coder/websocket, and saves an
// idle connection 8 KB: 4 KB of read buffer and 4 KB of stack
// (BenchmarkIdleConns, server-B/conn after a call: see bench/peers/README.md).
//
//   - coder/websocket reads through a bufio.Reader that it keeps for the
//     connection's life: net/http's, of 4 KiB. The Handler gives it a
//     16-byte one over a lazyReader instead, which holds a buffer of the
//     pool only while that has bytes not yet taken.
//   - The reader waits in await, near the top of its stack, until the
//     socket has bytes (which it reads), rather than deep in
//     coder/websocket's read loop.
//
// Only a bare socket can be waited on so (TLS that the http.Server ends
// itself is read through crypto/tls, which keeps its own buffers): then it
// reads as a plain buffered reader would, and await returns at once.
type lazyReader struct {
	conn   net.Conn
	raw    syscall.RawConn    // nil: read conn itself, and await nothing
	pool   *sync.Pool         // of *[]byte, readBufSize each
	readFD func(uintptr) bool // l.readSocket, bound once: a closure per read would allocate

	// The bytes read and not yet taken, or the error of the read that
	// found none. The reader and a goroutine that closes the connection
	// may both read (see close): mu orders what their reads publish.
	mu   sync.Mutex
	buf  *[]byte // nil when there are no bytes
	r, w int     // the unread bytes are (*buf)[r:w]
	err  error

	// front is coder/websocket's buffer in front of this reader: bytes it
	// took from here and holds, which may be a whole frame.
	front *bufio.Reader

	// closing is held by a goroutine that closes the connection:
	// coder/websocket then reads it, for the peer's close frame, while the
	// reader may be about to await.
	closing sync.Mutex
}

// newLazyReader returns the reader of conn, and the bufio.Reader to hand
// coder/websocket in front of it. early are bytes that net/http read from
// conn already (a client's first frames, sent as soon as the 101 response
// reached it), which come first.
func newLazyReader(conn net.Conn, pool *sync.Pool, early []byte) (*lazyReader, *bufio.Reader) {
	l := &lazyReader{conn: conn, pool: pool}
	if tc, ok := conn.(*net.TCPConn); ok && canReadSocket {
		if raw, err := tc.SyscallConn(); err == nil {
			l.raw, l.readFD = raw, l.readSocket
		}
	}
	if len(early) > 0 {
		b := l.getBuf()
		l.buf, l.r, l.w = b, 0, copy(*b, early)
	}
	l.front = bufio.NewReaderSize(l, 16)
	return l, l.front
}

// await returns once the connection has bytes to read, which it reads
// into a buffer of the pool, or its read has failed (Read then returns the
// error).
func (l *lazyReader) await() {
	if l.raw == nil {
		return
	}
	l.closing.Lock()
	l.mu.Lock()
	pending := l.buf != nil || l.err != nil || l.front.Buffered() > 0
	l.mu.Unlock()
	l.closing.Unlock()
	if !pending {
		l.fill()
	}
}

// close runs f, which closes the connection and may read it, apart from
// await's look at what is buffered.
func (l *lazyReader) close(f func()) {
	l.closing.Lock()
	defer l.closing.Unlock()
	f()
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	l.mu.Lock()
	for l.buf == nil && l.err == nil {
		l.mu.Unlock()
		l.fill()
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if l.buf == nil {
		err := l.err
		l.err = nil
		return 0, err
	}
	n := copy(p, (*l.buf)[l.r:l.w])
	l.r += n
	if l.r == l.w {
		l.pool.Put(l.buf)
		l.buf, l.r, l.w = nil, 0, 0
	}
	return n, nil
}

// fill reads what the connection has, and publishes it: bytes or an
// error. On a socket it waits for bytes without a buffer, so that a
// connection that waits in coder/websocket's read loop (after a ping)
// holds none.
func (l *lazyReader) fill() {
	if l.raw == nil {
		b := l.getBuf()
		n, err := l.conn.Read(*b)
		l.mu.Lock()
		l.publish(b, n, err)
		l.mu.Unlock()
		return
	}
	if err := l.raw.Read(l.readFD); err != nil {
		l.mu.Lock()
		if l.buf == nil && l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
	}
}

// readSocket is fill's callback for raw.Read: unless another read has
// published bytes meanwhile, it reads the socket into a buffer of the pool
// and publishes what it read, or gives the buffer back to wait without it.
// It runs under the socket's read lock, so reads publish in their order.
//
// It always tries the read before it waits, even after a read that
// emptied the socket: raw.Read forgets the socket's readiness before it
// calls readSocket, so a wait without that read could miss bytes that
// arrived since the last one, and never wake (a 1 MB request, read in
// pieces as it arrives, stalls so).
func (l *lazyReader) readSocket(fd uintptr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf != nil || l.err != nil {
		return true
	}
	b := l.getBuf()
	n, wait, err := readSocket(fd, *b)
	if wait {
		l.pool.Put(b)
		return false
	}
	if err != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Source: l.conn.LocalAddr(), Addr: l.conn.RemoteAddr(), Err: os.NewSyscallError("read", err)}
	}
	l.publish(b, n, err)
	return true
}

// publish keeps n bytes read into b, or the read's error (io.EOF for no
// bytes and no error). l.mu is held.
func (l *lazyReader) publish(b *[]byte, n int, err error) {
	if n > 0 {
		l.buf, l.r, l.w = b, 0, n
		return
	}
	l.pool.Put(b)
	if err == nil {
		err = io.EOF
	}
	l.err = err
}

func (l *lazyReader) getBuf() *[]byte {
	if b, ok := l.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, readBufSize)
	return &b
}
