package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"
)

// rawConn is the load generator's end of one WebSocket connection of the
// server-only cells: frames written and read by hand over a net.Conn, so
// that the client costs little per call and the figures are the server's.
// The request frame is built and masked once; a call rewrites only the
// masked digits of its id. One request is outstanding at a time.
type rawConn struct {
	c    net.Conn
	r    *bufio.Reader
	out  []byte // the request frame: header, mask key, masked payload
	body int    // offset of the payload in out
	id   int    // offset in out of the first of idDigits digits of the id
	in   []byte // the message being read
	ctl  []byte // a control frame's payload
}

// idDigits is the width of a request id; ids start at idBase, so that
// every id is a JSON number without leading zeros and is as wide as the
// last group of a UUID.
const (
	idDigits = 12
	idBase   = 100_000_000_000
)

// frameMask is the masking key of every client frame. RFC 6455 asks
// browsers for unpredictable keys; the server unmasks whatever the key is.
var frameMask = [4]byte{0x5a, 0x3c, 0xa5, 0xc3}

// maxRawMessage bounds a message the load generator reads.
const maxRawMessage = 1 << 20

var errRawProtocol = errors.New("rawws: protocol error")

// dialRaw opens a WebSocket connection to addr with a hand-written upgrade
// request and prepares the request frame prefix + id + suffix.
func dialRaw(ctx context.Context, addr, prefix, suffix string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nOrigin: http://%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr, addr)
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 8<<10)}
	resp, err := http.ReadResponse(rc.r, nil)
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = fmt.Errorf("%w: upgrade answered %s", errRawProtocol, resp.Status)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	rc.out, rc.body, rc.id = maskedFrame(prefix, suffix)
	return rc, nil
}

// maskedFrame returns a masked text frame of prefix + idDigits zeros +
// suffix, the offset of its payload and that of the id digits.
func maskedFrame(prefix, suffix string) (f []byte, body, id int) {
	n := len(prefix) + idDigits + len(suffix)
	switch {
	case n < 126:
		f = []byte{0x81, 0x80 | byte(n)}
	case n < 1<<16:
		f = []byte{0x81, 0x80 | 126, 0, 0}
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		panic("rawws: request frame too large")
	}
	f = append(f, frameMask[:]...)
	start := len(f)
	f = append(f, prefix...)
	f = append(f, bytes.Repeat([]byte{'0'}, idDigits)...)
	f = append(f, suffix...)
	for i := start; i < len(f); i++ {
		f[i] ^= frameMask[(i-start)%4]
	}
	return f, start, start + len(prefix)
}

// setID writes id, as idDigits decimal digits, into the request frame.
func (rc *rawConn) setID(id uint64) {
	for k := rc.id + idDigits - 1; k >= rc.id; k-- {
		rc.out[k] = ('0' + byte(id%10)) ^ frameMask[(k-rc.body)%4]
		id /= 10
	}
}

// call sends the request with the given id and returns the reply that
// carries that id, skipping messages that carry none (events).
func (rc *rawConn) call(id uint64) ([]byte, error) {
	rc.setID(id)
	if _, err := rc.c.Write(rc.out); err != nil {
		return nil, err
	}
	var want [idDigits]byte
	for i := idDigits - 1; i >= 0; i-- {
		want[i] = '0' + byte(id%10)
		id /= 10
	}
	for {
		msg, err := rc.readMessage()
		if err != nil {
			return nil, err
		}
		got, ok := replyID(msg)
		if !ok {
			continue
		}
		if len(got) < idDigits || !bytes.Equal(got[len(got)-idDigits:], want[:]) {
			return nil, fmt.Errorf("%w: reply id %q, want one ending in %s", errRawProtocol, got, want)
		}
		return msg, nil
	}
}

// replyID returns the value of the first "id" member of a JSON message
// (quotes included for a string), as the tiny parser of the load generator
// sees it: the bytes after `"id":` up to the next comma or brace.
func replyID(msg []byte) ([]byte, bool) {
	i := bytes.Index(msg, []byte(`"id":`))
	if i < 0 {
		return nil, false
	}
	v := msg[i+len(`"id":`):]
	end := bytes.IndexAny(v, ",}")
	if end < 0 {
		return nil, false
	}
	v = bytes.Trim(v[:end], ` "`)
	return v, len(v) > 0 && string(v) != "null"
}

// readMessage reads one data message, answering pings on the way.
func (rc *rawConn) readMessage() ([]byte, error) {
	rc.in = rc.in[:0]
	for {
		op, fin, n, err := rc.readHeader()
		if err != nil {
			return nil, err
		}
		if op >= 8 { // control frame
			if err := rc.control(op, n); err != nil {
				return nil, err
			}
			continue
		}
		if len(rc.in)+n > maxRawMessage {
			return nil, fmt.Errorf("%w: message over %d bytes", errRawProtocol, maxRawMessage)
		}
		start := len(rc.in)
		rc.in = slices.Grow(rc.in, n)[:start+n]
		if _, err := io.ReadFull(rc.r, rc.in[start:]); err != nil {
			return nil, err
		}
		if fin {
			return rc.in, nil
		}
	}
}

// readHeader reads a frame header from the server (unmasked).
func (rc *rawConn) readHeader() (op byte, fin bool, n int, err error) {
	var h [8]byte
	if _, err = io.ReadFull(rc.r, h[:2]); err != nil {
		return 0, false, 0, err
	}
	op, fin = h[0]&0x0f, h[0]&0x80 != 0
	if h[1]&0x80 != 0 {
		return 0, false, 0, fmt.Errorf("%w: masked frame from the server", errRawProtocol)
	}
	switch n = int(h[1] & 0x7f); n {
	case 126:
		_, err = io.ReadFull(rc.r, h[:2])
		n = int(binary.BigEndian.Uint16(h[:2]))
	case 127:
		_, err = io.ReadFull(rc.r, h[:8])
		u := binary.BigEndian.Uint64(h[:8])
		n = int(min(u, maxRawMessage+1))
	}
	if err == nil && n > maxRawMessage {
		err = fmt.Errorf("%w: frame over %d bytes", errRawProtocol, maxRawMessage)
	}
	return op, fin, n, err
}

// control reads a control frame's payload and answers a ping with a pong;
// a close frame ends the connection.
func (rc *rawConn) control(op byte, n int) error {
	if n > 125 {
		return fmt.Errorf("%w: control frame of %d bytes", errRawProtocol, n)
	}
	rc.ctl = slices.Grow(rc.ctl[:0], n)[:n]
	if _, err := io.ReadFull(rc.r, rc.ctl); err != nil {
		return err
	}
	switch op {
	case 8:
		return fmt.Errorf("%w: the server closed the connection", errRawProtocol)
	case 9:
		pong := append([]byte{0x8a, 0x80 | byte(n)}, frameMask[:]...)
		for i, b := range rc.ctl {
			pong = append(pong, b^frameMask[i%4])
		}
		_, err := rc.c.Write(pong)
		return err
	}
	return nil
}

func (rc *rawConn) close() error { return rc.c.Close() }
