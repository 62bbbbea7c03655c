package rpcws

import (
	"context"
	"errors"
	"sync"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
)

// ServeConn serves one connection over any frame transport, such as one end
// of a [codec.Pipe], just as ServeHTTP serves a WebSocket: with push, Caller
// binding, the in-flight cap, and a place in NumConns, Broadcast and
// Shutdown. It returns when the connection ends. Read limits, write timeouts
// and keepalive are the transport's business; the handler's options for them
// do not apply. It returns at once, closing conn, when the handler is at
// capacity or shutting down.
func (h *Handler) ServeConn(conn codec.Conn) {
	a, status := h.admit("")
	if status != 0 {
		conn.Close()
		return
	}
	defer a.cancel() // unless it is served
	t := &connTransport{Conn: conn, adm: h.newAdmission(nil)}
	if p := a.start(t, nil, ""); p != nil {
		a.serve(p)
	}
}

// connTransport makes a [transport] of a plain [codec.Conn].
type connTransport struct {
	codec.Conn
	adm  *codec.Admission
	once sync.Once
}

func (t *connTransport) ReadFrame(ctx context.Context, buf []byte) ([]byte, error) {
	p, err := t.Conn.ReadFrame(ctx, buf)
	if err != nil && !errors.Is(err, codec.ErrBinaryFrame) {
		t.end()
	}
	return p, err
}

func (t *connTransport) closeWith(websocket.StatusCode, string) error { return t.Close() }

func (t *connTransport) Close() error {
	t.end()
	return t.Conn.Close()
}

// end closes the admission, once.
func (t *connTransport) end() { t.once.Do(t.adm.Close) }

func (t *connTransport) admission() *codec.Admission { return t.adm }
