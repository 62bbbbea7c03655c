package rpcws

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// readBufSize is the size of the read buffers that a Handler lends its
// connections: as large as net/http's, so that one read takes in many
// frames of a busy connection.
const readBufSize = 4 << 10

// lazyReader reads a network connection through a buffer that it holds only
// while the buffer has bytes not yet taken: an idle connection, blocked
// waiting for its next frame, holds none. It waits for the socket to be
// readable first (through syscall.RawConn), and only then takes a buffer
// from the pool and reads. Where the connection is not a bare socket (TLS, or
// a listener's wrapper), it reads the connection as a buffered reader would,
// holding a buffer while it waits.
//
// coder/websocket reads a server connection through a bufio.Reader, which
// holds its buffer for the connection's life: net/http's, 4 KiB. Hijack
// gives it a 16-byte one over a lazyReader instead, which saves those 4 KiB
// on every idle connection without making busy connections read in smaller
// pieces. It is used by one goroutine at a time, as any reader is, but for
// stopAwait, which the closing goroutine calls.
type lazyReader struct {
	conn net.Conn
	raw  syscall.RawConn // nil: read conn itself
	pool *sync.Pool      // of *[]byte, readBufSize each

	buf  *[]byte // holds unread bytes; nil when there are none
	r, w int     // the unread bytes are (*buf)[r:w]
	err  error   // of the read that filled buf, returned once it is drained

	onReady func(fd uintptr) bool // l.readFD, bound once: a closure per read would allocate
	got     *[]byte               // readFD's results
	n       int
	rerr    error

	// front is coder/websocket's buffer in front of this reader: bytes it
	// took from here and holds, which may be a whole frame. Nil when
	// unknown: await then waits for nothing.
	front *bufio.Reader

	// await's wait and the closing handshake exclude each other (see
	// await and stopAwait): gate guards waiting and closing, and awaits
	// counts an await that waits.
	gate    sync.Mutex
	waiting bool // await is waiting for the socket
	closing bool // no await may wait from now; set during a wait, it ended the wait with a read deadline
	awaits  sync.WaitGroup
}

func newLazyReader(conn net.Conn, pool *sync.Pool) *lazyReader {
	l := &lazyReader{conn: conn, pool: pool}
	// Only a bare socket: reading the descriptor of a connection that
	// wraps one (and may buffer, count or decrypt in its Read) would go
	// past the wrapper.
	var sc syscall.Conn
	switch c := conn.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	}
	if sc != nil && canReadSocket {
		if raw, err := sc.SyscallConn(); err == nil {
			l.raw = raw
			l.onReady = l.readFD
		}
	}
	return l
}

// preload makes p, at most readBufSize bytes read from the connection by
// someone else, the first bytes that Read returns.
func (l *lazyReader) preload(p []byte) {
	b := l.getBuf()
	l.buf, l.r, l.w = b, 0, copy(*b, p)
}

// buffered reports whether bytes were read from the connection and not yet
// taken: the next frame has begun to arrive. Only the reader may ask.
func (l *lazyReader) buffered() bool { return l.buf != nil }

// await returns once the connection has bytes to read, or its read has
// failed (Read then returns the error): a server connection's reader waits
// here, before it enters coder/websocket's read loop, and not deep inside
// it. While it waits, its stack is short, and the runtime halves a stack
// grown to run a method (it halves one only when less than a quarter is in
// use): an idle connection that has served calls keeps 4 KB of stack, not
// 8. Bytes in the buffer in front count: a small frame may be whole there.
//
// coder/websocket reads on the goroutine that closes a connection, to
// await the peer's close frame, once no reader holds its read lock, which
// a reader in await does not. So that the two never read at once, the
// closer calls stopAwait first.
func (l *lazyReader) await() {
	if l.raw == nil || l.front == nil {
		return // no way to end the wait (see stopAwait), or nothing to know the front by
	}
	l.gate.Lock()
	if l.closing || l.buf != nil || l.err != nil || l.front.Buffered() > 0 {
		l.gate.Unlock()
		return
	}
	l.waiting = true
	l.awaits.Add(1)
	l.gate.Unlock()

	err := l.fill()

	l.gate.Lock()
	l.waiting = false
	if l.closing { // set during the wait, which found it false: stopAwait's deadline ended it
		l.conn.SetReadDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil // the closer's, not the connection's: Read reads again
		}
	}
	if err != nil {
		l.err = err
	}
	l.gate.Unlock()
	l.awaits.Done()
}

// stopAwait ends await's wait, if one is under way, and returns once it
// has; no await waits afterwards. The closing goroutine calls it before it
// reads.
func (l *lazyReader) stopAwait() {
	l.gate.Lock()
	l.closing = true
	waiting := l.waiting
	if waiting {
		l.conn.SetReadDeadline(time.Unix(1, 0))
	}
	l.gate.Unlock()
	if waiting {
		l.awaits.Wait()
	}
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.buf == nil {
		if l.err != nil {
			err := l.err
			l.err = nil
			return 0, err
		}
		if err := l.fill(); err != nil || l.buf == nil {
			return 0, err
		}
	}
	n := copy(p, (*l.buf)[l.r:l.w])
	l.r += n
	if l.r == l.w {
		l.pool.Put(l.buf)
		l.buf, l.r, l.w = nil, 0, 0
	}
	return n, nil
}

// fill reads what the connection has into a buffer from the pool. It
// returns an error only when it read nothing; it may read nothing and
// return none, as an io.Reader may.
func (l *lazyReader) fill() error {
	if l.raw == nil {
		b := l.getBuf()
		n, err := l.conn.Read(*b)
		return l.took(b, n, err)
	}
	l.got, l.n, l.rerr = nil, 0, nil
	// An idle connection waits in raw.Read: the rest is in filled's stack
	// frame, not in this one (see codec.ServerCodec.ReadRequestHeader).
	return l.filled(l.raw.Read(l.onReady))
}

// filled takes what fill's raw read left in l.got, l.n and l.rerr.
func (l *lazyReader) filled(err error) error {
	b, n, rerr := l.got, l.n, l.rerr
	l.got, l.rerr = nil, nil
	if err != nil {
		if b != nil {
			l.pool.Put(b)
		}
		return err
	}
	switch {
	case rerr != nil:
		n, rerr = 0, &net.OpError{Op: "read", Net: "tcp", Source: l.conn.LocalAddr(), Addr: l.conn.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		rerr = io.EOF
	}
	return l.took(b, n, rerr)
}

// readFD is fill's callback for syscall.RawConn.Read: it reads the socket
// into a buffer of the pool, and gives the buffer back to wait for the
// socket without it. Its results are in l.got, l.n and l.rerr.
func (l *lazyReader) readFD(fd uintptr) bool {
	b := l.getBuf()
	n, wait, err := readSocket(fd, *b)
	if wait {
		l.pool.Put(b)
		return false
	}
	l.got, l.n, l.rerr = b, n, err
	return true
}

// took keeps the n bytes read into b, and err for after them.
func (l *lazyReader) took(b *[]byte, n int, err error) error {
	if n <= 0 {
		l.pool.Put(b)
		return err
	}
	l.buf, l.r, l.w, l.err = b, 0, n, err
	return nil
}

func (l *lazyReader) getBuf() *[]byte {
	if b, ok := l.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, readBufSize)
	return &b
}
