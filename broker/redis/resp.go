package redis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The subscriber connection speaks RESP2 itself, so that the broker, not
// go-redis, decides how a reconnection subscribes again (see conn.go).

// maxMessage is the largest message the subscriber reads; a larger one is
// skipped and logged. The handler refuses, besides, any event larger than
// its frame limit.
const maxMessage = 32 << 20

// errTooLarge is the error of a skipped message.
var errTooLarge = errors.New("message larger than 32 MiB skipped")

// appendCommand appends a RESP array of bulk strings: cmd and args.
func appendCommand(b []byte, cmd string, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(1+len(args)), 10)
	b = append(b, "\r\n"...)
	b = appendBulk(b, cmd)
	for _, a := range args {
		b = appendBulk(b, a)
	}
	return b
}

func appendBulk(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, "\r\n"...)
	b = append(b, s...)
	return append(b, "\r\n"...)
}

// push is one reply read on a subscriber connection: kind "message",
// "subscribe", "unsubscribe" or "pong", the channel, and a message's
// payload (valid until the next read).
type push struct {
	kind, channel string
	payload       []byte
}

// reader reads RESP2 replies, reusing its buffer for payloads.
type reader struct {
	br  *bufio.Reader
	buf []byte
}

// readPush reads one reply. An error reply is returned as an error; a
// message over maxMessage is skipped, with errTooLarge and its channel.
func (r *reader) readPush() (push, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); isTimeout(err) {
			return push{}, errIdle // nothing consumed: the connection is intact
		}
	}
	line, err := r.line()
	if err != nil {
		return push{}, err
	}
	switch line[0] {
	case '-':
		return push{}, fmt.Errorf("redis replied %q", line[1:])
	case '*':
	default:
		return push{}, nil // a simple reply (+OK): nothing to hand on
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 1 || n > 4 {
		return push{}, fmt.Errorf("unexpected reply %q", line)
	}
	var p push
	var skipped error
	for i := range n {
		v, err := r.element(i == 2)
		if errors.Is(err, errTooLarge) {
			skipped = err
		} else if err != nil {
			return push{}, err
		}
		switch i {
		case 0:
			p.kind = string(v)
		case 1:
			p.channel = string(v)
		case 2:
			p.payload = v
		}
	}
	return p, skipped
}

// element reads one array element: a bulk string, or an integer (returned
// as nil). payload says to read it into the reused buffer.
func (r *reader) element(payload bool) ([]byte, error) {
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	switch line[0] {
	case ':':
		return nil, nil
	case '$':
	default:
		return nil, fmt.Errorf("unexpected element %q", line)
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < -1 {
		return nil, fmt.Errorf("unexpected element %q", line)
	}
	if n == -1 {
		return nil, nil
	}
	if n > maxMessage {
		if _, err := r.br.Discard(n + 2); err != nil {
			return nil, err
		}
		return nil, errTooLarge
	}
	var b []byte
	if payload {
		if cap(r.buf) < n+2 {
			r.buf = make([]byte, n+2)
		}
		b = r.buf[:n+2]
	} else {
		b = make([]byte, n+2)
	}
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, err
	}
	if payload && cap(r.buf) > 64<<10 {
		r.buf = nil // one large message does not pin its size
	}
	return b[:n], nil
}

// line reads one line without its CRLF; it is never empty.
func (r *reader) line() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("reply line too long")
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	return line[:len(line)-2], nil
}
