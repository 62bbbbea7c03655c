package codec

import (
	"context"
	"errors"
	"io"
	"sync"
)

// Conn is a message transport: it carries whole frames, one JSON object each.
// A WebSocket connection is one; [Pipe] gives an in-memory pair.
//
// The codecs call ReadFrame from one goroutine at a time and WriteFrame from
// one goroutine at a time; a ReadFrame and a WriteFrame may run at once, and
// Close may be called at any time, from any goroutine, more than once. Close
// must unblock ReadFrame and WriteFrame.
type Conn interface {
	// ReadFrame reads the next frame. It may use buf's storage
	// (append(buf[:0], ...)) and return it: the codec passes back the slice of
	// the previous call, so that a steady stream of frames reads without
	// allocating. It returns io.EOF, or another error, once no frame can come;
	// for a frame that is not text (a binary WebSocket message) it returns
	// [ErrBinaryFrame] and the connection stays usable.
	ReadFrame(ctx context.Context, buf []byte) ([]byte, error)

	// WriteFrame writes one text frame. It must not keep p after it returns.
	WriteFrame(ctx context.Context, p []byte) error

	// Close closes the connection.
	Close() error
}

// ErrBinaryFrame is returned by [Conn.ReadFrame] for a frame that is not text.
// It does not end the connection: the server answers it with a ParseError.
var ErrBinaryFrame = errors.New("codec: binary frame")

// ErrClosed is returned by operations on a closed [Pipe] end or codec.
var ErrClosed = errors.New("codec: connection closed")

// Pipe returns a connected in-memory pair of Conns, for tests and examples:
// what one end writes, the other reads. Each direction buffers a few frames;
// a writer blocks beyond that until the reader catches up or ctx ends.
// Closing either end closes both; reads then return io.EOF.
func Pipe() (Conn, Conn) {
	ab := make(chan []byte, pipeBuffer)
	ba := make(chan []byte, pipeBuffer)
	p := &pipeState{done: make(chan struct{})}
	return &pipeConn{p, ba, ab}, &pipeConn{p, ab, ba}
}

const pipeBuffer = 16

type pipeState struct {
	once sync.Once
	done chan struct{}
}

type pipeConn struct {
	*pipeState
	in  <-chan []byte
	out chan<- []byte
}

func (c *pipeConn) ReadFrame(ctx context.Context, buf []byte) ([]byte, error) {
	select {
	case p := <-c.in:
		return append(buf[:0], p...), nil
	case <-c.done:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *pipeConn) WriteFrame(ctx context.Context, p []byte) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	select {
	case c.out <- append([]byte(nil), p...):
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *pipeConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// maxKeptBuffer is the largest read buffer a codec keeps between frames: one
// large frame should not pin its size in memory for the connection's life.
const maxKeptBuffer = 8 << 10

// reusable returns buf for reuse, or nil when it is too large to keep.
func reusable(buf []byte) []byte {
	if cap(buf) > maxKeptBuffer {
		return nil
	}
	return buf
}
