package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// ceilingWS is no RPC at all: a bare frame echo on github.com/coder/websocket,
// the WebSocket library under rpcws. The server writes back each text frame
// as it reads it; the client sends a frame of the size an rpcws request has
// and waits for its echo, matching echoes to callers by an 8-byte id prefix.
// Nothing is encoded or decoded at either end, so it shows what the transport
// allows one frame at a time: the "ceiling" of the ×ceiling ratios. Each
// frame is written on its own, one syscall each, so a peer that packs the
// frames of concurrent calls into fewer writes can pass it.
type ceilingWS struct{}

func (ceilingWS) name() string  { return "ceiling-coder" }
func (ceilingWS) about() string { return "bare frame echo on coder/websocket (no RPC)" }

// idLen is the length of the id prefix of a ceiling frame.
const idLen = 8

// Frames of the same size as rpcws's: an rpcws request for Arith.Multiply
// with a UUID id, and its Echo.Echo request once the payload is added.
const (
	smallFrame = `{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","type":"arith.multiply","data":{"A":7,"B":6}}`
	echoPrefix = `{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","type":"echo.echo","data":"`
	echoSuffix = `"}`
)

func (ceilingWS) start() (string, func(), error) {
	// framePool holds the server's frame buffers, shared by its connections.
	framePool := sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}
	return serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil) // no Origin header: accepted
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background() // r.Context() must not be used after Accept
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			bp := framePool.Get().(*[]byte)
			*bp, err = readInto((*bp)[:0], rd)
			if err == nil {
				err = c.Write(ctx, typ, *bp)
			}
			framePool.Put(bp)
			if err != nil {
				return
			}
		}
	}))
}

// readInto appends everything rd has to b.
func readInto(b []byte, rd io.Reader) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	_, err := buf.ReadFrom(rd)
	return buf.Bytes(), err
}

func (ceilingWS) dial(ctx context.Context, addr string) (caller, error) {
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	cc := &ceilingCaller{c: c, pending: make(map[uint32]*ceilingCall), done: make(chan struct{})}
	cc.calls.New = newCeilingCall
	go cc.readLoop()
	return cc, nil
}

// ceilingCaller is the client end of the echo: callers on one connection
// write their frames concurrently and one goroutine hands each echo back to
// the caller whose id it carries.
type ceilingCaller struct {
	c    *websocket.Conn
	done chan struct{} // closed when readLoop ends

	calls sync.Pool // of *ceilingCall

	mu      sync.Mutex // guards seq, pending and err
	seq     uint32
	pending map[uint32]*ceilingCall
	err     error // why the connection ended
}

// ceilingCall is one frame waiting for its echo. Calls are pooled.
type ceilingCall struct {
	out, in []byte
	ready   chan error
}

// newCeilingCall is the New of ceilingCaller.calls.
func newCeilingCall() any {
	return &ceilingCall{out: make([]byte, 0, 256), in: make([]byte, 0, 256), ready: make(chan error, 1)}
}

var errCeilingClosed = errors.New("ceiling: connection closed")

// roundTrip sends prefix+body+suffix after an id and waits for the echo.
func (cc *ceilingCaller) roundTrip(prefix, body, suffix string) error {
	call := cc.calls.Get().(*ceilingCall)
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		cc.calls.Put(call)
		return err
	}
	cc.seq++
	id := cc.seq
	cc.pending[id] = call
	cc.mu.Unlock()

	out := appendID(call.out[:0], id)
	out = append(append(append(out, prefix...), body...), suffix...)
	call.out = out
	if err := cc.c.Write(context.Background(), websocket.MessageText, out); err != nil {
		cc.mu.Lock()
		_, mine := cc.pending[id]
		delete(cc.pending, id)
		cc.mu.Unlock()
		if mine {
			cc.calls.Put(call)
			return err
		}
		// readLoop has taken the call and will answer on ready.
	}
	err := <-call.ready
	if err == nil && !bytes.Equal(call.in, call.out) {
		err = fmt.Errorf("%w: echo differs from the frame sent", errWrongReply)
	}
	cc.calls.Put(call)
	return err
}

// appendID appends id as 8 hexadecimal digits.
func appendID(b []byte, id uint32) []byte {
	const hex = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hex[id>>uint(shift)&0xf])
	}
	return b
}

// readLoop reads echoes until the connection ends, then fails every call
// still waiting.
func (cc *ceilingCaller) readLoop() {
	defer close(cc.done)
	ctx := context.Background()
	var idBuf [idLen]byte
	var err error
	for {
		var rd io.Reader
		if _, rd, err = cc.c.Reader(ctx); err != nil {
			break
		}
		if _, err = io.ReadFull(rd, idBuf[:]); err != nil {
			break
		}
		id, perr := strconv.ParseUint(string(idBuf[:]), 16, 32)
		cc.mu.Lock()
		call := cc.pending[uint32(id)]
		delete(cc.pending, uint32(id))
		cc.mu.Unlock()
		if perr != nil || call == nil {
			err = fmt.Errorf("ceiling: echo with unknown id %q", idBuf[:])
			break
		}
		call.in, err = readInto(append(call.in[:0], idBuf[:]...), rd)
		call.ready <- err
		if err != nil {
			break
		}
	}
	cc.mu.Lock()
	cc.err = fmt.Errorf("%w: %w", errCeilingClosed, err)
	for id, call := range cc.pending {
		call.ready <- cc.err
		delete(cc.pending, id)
	}
	cc.mu.Unlock()
}

func (cc *ceilingCaller) multiply(a, b int) (int, error) {
	// The frame is the same whatever a and b are: the ceiling does no work.
	if err := cc.roundTrip(smallFrame, "", ""); err != nil {
		return 0, err
	}
	return a * b, nil
}

func (cc *ceilingCaller) echo(s string) (string, error) {
	if err := cc.roundTrip(echoPrefix, s, echoSuffix); err != nil {
		return "", err
	}
	return s, nil
}

func (cc *ceilingCaller) close() error {
	err := cc.c.CloseNow()
	<-cc.done
	return err
}
