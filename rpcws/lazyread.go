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
//   - Decoding a request's data grows the reading goroutine's stack to
//     8 KB, and the runtime halves a stack only when less than a quarter of
//     it is in use; waiting in coder/websocket's read loop takes more. The
//     reader waits in await instead, near the top of its stack, until the
//     socket has bytes.
//
// Only a bare socket can be waited on so (TLS that the http.Server ends
// itself is read through crypto/tls, which keeps its own buffers): then it
// reads as a plain buffered reader would, and await returns at once.
type lazyReader struct {
	conn net.Conn
	raw  syscall.RawConn // nil: read conn itself, and await nothing
	pool *sync.Pool      // of *[]byte, readBufSize each

	// The callbacks of raw.Read, bound once (a closure per read would
	// allocate), and readFD's results.
	peek, readFD func(fd uintptr) bool
	got          *[]byte
	n            int
	rerr         error

	buf  *[]byte // holds unread bytes; nil when there are none
	r, w int     // the unread bytes are (*buf)[r:w]

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
	if tc, ok := conn.(*net.TCPConn); ok && canPeek {
		if raw, err := tc.SyscallConn(); err == nil {
			l.raw, l.peek, l.readFD = raw, peekSocket, l.readSocket
		}
	}
	if len(early) > 0 {
		b := l.getBuf()
		l.buf, l.r, l.w = b, 0, copy(*b, early)
	}
	l.front = bufio.NewReaderSize(l, 16)
	return l, l.front
}

// await returns once the connection has bytes to read, or its socket
// cannot be waited on any more (closed, or failed: the next Read tells).
// It reads nothing, so a goroutine that closes the connection may read the
// peer's close frame meanwhile.
func (l *lazyReader) await() {
	if l.raw == nil {
		return
	}
	l.closing.Lock()
	pending := l.buf != nil || l.front.Buffered() > 0
	l.closing.Unlock()
	if !pending {
		l.raw.Read(l.peek)
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
	if l.buf == nil {
		b, n, err := l.fill()
		if n <= 0 {
			if b != nil {
				l.pool.Put(b)
			}
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
		l.buf, l.r, l.w = b, 0, n
	}
	n := copy(p, (*l.buf)[l.r:l.w])
	l.r += n
	if l.r == l.w {
		l.pool.Put(l.buf)
		l.buf, l.r, l.w = nil, 0, 0
	}
	return n, nil
}

// fill reads what the connection has into a buffer of the pool. On a
// socket it waits for bytes without a buffer: a connection that waits in
// coder/websocket's read loop (after a ping) holds none.
func (l *lazyReader) fill() (*[]byte, int, error) {
	if l.raw == nil {
		b := l.getBuf()
		n, err := l.conn.Read(*b)
		return b, n, err
	}
	err := l.raw.Read(l.readFD)
	b, n, rerr := l.got, l.n, l.rerr
	l.got, l.n, l.rerr = nil, 0, nil
	switch {
	case err != nil:
		return b, 0, err
	case rerr != nil:
		return b, 0, &net.OpError{Op: "read", Net: "tcp", Source: l.conn.LocalAddr(), Addr: l.conn.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return b, 0, io.EOF
	}
	return b, n, nil
}

// readSocket is fill's callback for raw.Read: it reads the socket into a
// buffer of the pool, and gives the buffer back to wait without it.
func (l *lazyReader) readSocket(fd uintptr) bool {
	b := l.getBuf()
	n, wait, err := readSocket(fd, *b)
	if wait {
		l.pool.Put(b)
		return false
	}
	l.got, l.n, l.rerr = b, n, err
	return true
}

func (l *lazyReader) getBuf() *[]byte {
	if b, ok := l.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, readBufSize)
	return &b
}
