package testutil

import (
	"bytes"
	"context"

	"github.com/rpcws/rpcws/codec"
)

// BinaryMark starts a frame that [BinaryConn] reports as binary, which the
// in-memory pipe cannot carry itself: a test writes BinaryMark+payload to
// stand for a binary WebSocket message.
const BinaryMark = "\x00binary\x00"

// BinaryConn is a [codec.Conn] whose ReadFrame reports frames that start
// with BinaryMark as binary ([codec.ErrBinaryFrame]).
type BinaryConn struct{ codec.Conn }

func (c BinaryConn) ReadFrame(ctx context.Context, buf []byte) ([]byte, error) {
	p, err := c.Conn.ReadFrame(ctx, buf)
	if err == nil && bytes.HasPrefix(p, []byte(BinaryMark)) {
		return p, codec.ErrBinaryFrame
	}
	return p, err
}
