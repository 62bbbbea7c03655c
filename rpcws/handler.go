package rpcws

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"net/rpc"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"golang.org/x/sync/errgroup"
)

// Defaults of [HandlerOptions] and [DialOptions].
const (
	DefaultReadLimit       = 1 << 20 // bytes per frame (1 MiB)
	DefaultMaxConns        = 10000   // connections per Handler
	DefaultMaxQueuedEvents = 256     // pushed events waiting per connection
	DefaultWriteTimeout    = 10 * time.Second
	DefaultPingInterval    = 30 * time.Second
)

// HandlerOptions configures a [Handler]. A nil *HandlerOptions is valid and
// means all defaults. For the durations and limits, zero means the default
// and a negative value means none.
type HandlerOptions struct {
	// AcceptOptions are handed to websocket.Accept. The default accepts
	// pages of the server's own origin only, and requests without an Origin
	// header (non-browser clients); list more origins in OriginPatterns.
	AcceptOptions *websocket.AcceptOptions

	// ReadLimit caps one incoming frame, in bytes. A larger frame closes the
	// connection with status 1009. Zero means [DefaultReadLimit].
	ReadLimit int64

	// MaxInFlight caps the requests of one connection being served at once;
	// at the cap the handler stops reading that connection. Zero or negative
	// means [codec.DefaultMaxInFlight]: there is always a cap.
	MaxInFlight int

	// MaxConns caps the open connections; an upgrade beyond it is refused
	// with 503. Zero means [DefaultMaxConns].
	MaxConns int

	// MaxQueuedEvents caps the pushed events waiting to be written to one
	// connection; beyond it the connection is closed (see [ErrSlowConsumer]).
	// Zero means [DefaultMaxQueuedEvents].
	MaxQueuedEvents int

	// WriteTimeout bounds the writing of one frame; a client that stops
	// reading is disconnected after it. Zero means [DefaultWriteTimeout].
	WriteTimeout time.Duration

	// PingInterval is how long a connection may be idle before the handler
	// pings it; a peer that does not answer within another interval is
	// disconnected. Zero means [DefaultPingInterval].
	PingInterval time.Duration

	// MethodName maps a request's type to a net/rpc method. Nil means
	// [codec.MethodName].
	MethodName func(typ string) string

	// Authorize, if set, sees every upgrade request before it is accepted: its
	// cookies, query and offered subprotocols (see [Subprotocols]), where a
	// browser's token can travel. An error refuses the upgrade with 403;
	// otherwise the identity it returns is the connection's
	// [Peer.Identity].
	Authorize func(r *http.Request) (identity any, err error)

	// Logger receives the handler's and the codec's log lines. Nil means
	// silent.
	Logger *slog.Logger

	// OnCall, if set, sees every served request's type, duration and outcome.
	OnCall func(codec.CallInfo)

	// Broker carries [Handler.Publish] to the other replicas. The handler
	// owns it: NewHandler starts it and subscribes to the handler's own
	// subjects (waiting up to 5 s for an engine that is slow to answer),
	// and Shutdown closes it. Nil means an in-process broker of the
	// handler's own (a single replica).
	Broker Broker

	// UserName maps a connection's identity (what Authorize returned) to
	// its user name, the address of [User]; "" means no user. Nil means: a
	// string identity is the user name, any other has none.
	UserName func(identity any) string
}

// Handler is an http.Handler that serves an *rpc.Server to WebSocket clients
// in the wire protocol. Each connection is served by [rpc.Server.ServeCodec]
// with a [codec.ServerCodec].
type Handler struct {
	srv  *rpc.Server
	opts HandlerOptions // defaults filled in

	mu       sync.Mutex // guards conns, reserved, upgraded and closing
	conns    map[*Peer]struct{}
	reserved int // upgrades under way, counted against MaxConns
	upgraded int // of those, the ones whose 101 response is on its way: counted by NumConns
	closing  bool
	serving  sync.WaitGroup

	cluster *cluster // publishing across replicas: topics.go
}

// NewHandler returns a Handler that serves srv; nil means [rpc.DefaultServer].
func NewHandler(srv *rpc.Server, opts *HandlerOptions) *Handler {
	if srv == nil {
		srv = rpc.DefaultServer
	}
	var o HandlerOptions
	if opts != nil {
		o = *opts
	}
	if o.AcceptOptions != nil { // the caller's value is never changed, nor used after
		ao := *o.AcceptOptions
		o.AcceptOptions = &ao
	}
	o.ReadLimit = orDefault(o.ReadLimit, DefaultReadLimit)
	o.MaxConns = orDefault(o.MaxConns, DefaultMaxConns)
	o.MaxQueuedEvents = orDefault(o.MaxQueuedEvents, DefaultMaxQueuedEvents)
	o.WriteTimeout = orDefault(o.WriteTimeout, DefaultWriteTimeout)
	o.PingInterval = orDefault(o.PingInterval, DefaultPingInterval)
	h := &Handler{srv: srv, opts: o, conns: make(map[*Peer]struct{})}
	h.startCluster()
	return h
}

// orDefault returns def for zero.
func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// ServeHTTP upgrades the request to a WebSocket and returns; the connection
// is served on a goroutine of its own until it closes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.reserve() {
		h.log("refused an upgrade", "remote", r.RemoteAddr, "error", "at capacity or shutting down")
		http.Error(w, "rpcws: server at capacity or shutting down", http.StatusServiceUnavailable)
		return
	}
	reserved := true
	defer func() {
		if reserved {
			h.unreserve()
		}
	}()

	var identity any
	if h.opts.Authorize != nil {
		var err error
		if identity, err = h.opts.Authorize(r); err != nil {
			h.log("refused an upgrade", "remote", r.RemoteAddr, "error", err)
			http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
			return
		}
	}
	upgraded := false // counted in h.upgraded
	defer func() {
		if upgraded {
			h.mu.Lock()
			h.upgraded--
			h.mu.Unlock()
		}
	}()
	bw := batchWriter{ResponseWriter: w, timeout: h.opts.WriteTimeout, hijacked: func() {
		// From the moment the client can see the connection, count it.
		h.mu.Lock()
		h.upgraded++
		h.mu.Unlock()
		upgraded = true
	}}
	ws, err := websocket.Accept(bw, r, h.opts.AcceptOptions)
	if err != nil {
		h.log("refused an upgrade", "remote", r.RemoteAddr, "error", err)
		return // Accept has written the response
	}
	// r.Context() must not be used from here on.
	if h.opts.ReadLimit > 0 {
		ws.SetReadLimit(h.opts.ReadLimit)
	} else {
		ws.SetReadLimit(-1)
	}

	conn := newWSConn(ws, h.opts.WriteTimeout, true)
	sc := h.newCodec(conn, identity, r.RemoteAddr)
	conn.startKeepalive(h.opts.PingInterval, func() bool { return sc.InFlight() > 0 })
	if !h.register(sc.peer, upgraded) {
		conn.closeWith(websocket.StatusGoingAway, "server shutting down")
		return
	}
	reserved, upgraded = false, false
	// Serve on a goroutine of its own and let the HTTP server's goroutine
	// end: that frees what net/http keeps for the request (its buffered
	// writer, the request and its headers) for as long as the handler runs,
	// a third of an idle connection's memory.
	go h.serve(sc)
}

// newCodec returns the codec that serves conn, with its Peer.
func (h *Handler) newCodec(conn transport, identity any, remoteAddr string) *serverCodec {
	sc := &serverCodec{ServerCodec: codec.NewServerCodec(conn, &codec.ServerOptions{
		MethodName:  h.opts.MethodName,
		MaxInFlight: h.opts.MaxInFlight,
		Logger:      h.opts.Logger,
		OnCall:      h.opts.OnCall,
	})}
	sc.peer = &Peer{
		conn:       conn,
		events:     &pushQueue{conn: conn, max: h.opts.MaxQueuedEvents},
		codec:      sc.ServerCodec,
		identity:   identity,
		remoteAddr: remoteAddr,
		h:          h,
		id:         h.cluster.newPeerID(),
	}
	return sc
}

// serve serves a registered connection until it ends.
func (h *Handler) serve(sc *serverCodec) {
	defer h.unregister(sc.peer)
	h.attach(sc.peer) // its user address, before its first request
	h.srv.ServeCodec(sc)
}

func (h *Handler) reserve() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing || (h.opts.MaxConns > 0 && len(h.conns)+h.reserved >= h.opts.MaxConns) {
		return false
	}
	h.reserved++
	return true
}

func (h *Handler) unreserve() {
	h.mu.Lock()
	h.reserved--
	h.mu.Unlock()
}

// register turns a reservation, upgraded or not, into a live connection; it
// fails once the handler is shutting down.
func (h *Handler) register(p *Peer, upgraded bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.reserved--
	if upgraded {
		h.upgraded--
	}
	h.conns[p] = struct{}{}
	h.serving.Add(1)
	return true
}

func (h *Handler) unregister(p *Peer) {
	h.detach(p) // leaves its topics and user address
	h.mu.Lock()
	delete(h.conns, p)
	h.mu.Unlock()
	h.serving.Done()
}

// NumConns returns the number of open connections. A connection counts from
// the moment its client is told it is upgraded.
func (h *Handler) NumConns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns) + h.upgraded
}

// InFlight returns the number of requests being served, over all
// connections: read, and not yet answered.
func (h *Handler) InFlight() int {
	n := 0
	for _, p := range h.Peers() {
		n += p.codec.InFlight()
	}
	return n
}

// Peers returns the open connections.
func (h *Handler) Peers() []*Peer {
	h.mu.Lock()
	defer h.mu.Unlock()
	peers := make([]*Peer, 0, len(h.conns))
	for p := range h.conns {
		peers = append(peers, p)
	}
	return peers
}

// Broadcast pushes an event to every open connection. The event is encoded
// once; each connection queues it without waiting (see [Peer.Notify]), so a
// slow client holds up no one: its connection is closed instead. Broadcast
// returns an encoding error, or ctx's error if it ended first.
func (h *Handler) Broadcast(ctx context.Context, eventType string, data any) error {
	frame, err := codec.EncodeEvent(eventType, data)
	if err != nil {
		return err
	}
	for _, p := range h.Peers() {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.enqueue(frame) // a failed push closes that connection only
	}
	return nil
}

// Shutdown shuts the handler down gracefully: it refuses new connections
// (503), stops taking new requests on open ones (they are answered at once
// with code Unavailable), lets the requests in flight finish and their
// replies be written, then closes every connection with status 1001. When
// ctx ends first, the connections are closed at once and Shutdown returns
// ctx's error.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()

	var g errgroup.Group
	for _, p := range h.Peers() {
		g.Go(func() error {
			err := p.codec.Drain(ctx)
			if err == nil {
				err = p.events.waitFlushed(ctx)
			}
			// The closing handshake may wait seconds for a peer that does
			// not read; Shutdown does not wait for it past ctx.
			closeErr := within(ctx, func() {
				p.conn.closeWith(websocket.StatusGoingAway, "server shutting down")
			})
			return cmp.Or(err, closeErr)
		})
	}
	err := cmp.Or(g.Wait(), within(ctx, h.serving.Wait))
	h.closeCluster()
	return err
}

// within runs f on a goroutine of its own and returns when f does, or with
// ctx's error when ctx ends first; f then finishes in the background.
func within(ctx context.Context, f func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Handler) log(msg string, args ...any) {
	if h.opts.Logger != nil {
		h.opts.Logger.Info("rpcws: "+msg, args...)
	}
}

// Subprotocols returns the WebSocket subprotocols that an upgrade request
// offers, in order. Browsers cannot set headers on a WebSocket, so a token
// often travels here: new WebSocket(url, ["rpcws", token]). List the
// protocol the server picks in AcceptOptions.Subprotocols, or browsers fail
// the handshake.
func Subprotocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
