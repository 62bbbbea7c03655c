package rpcws

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"golang.org/x/sync/errgroup"
)

// Defaults of [HandlerOptions], and of [DialOptions] for the frame limit,
// the write timeout and the ping interval.
const (
	// DefaultMaxFrameSize is the largest frame read or written, in bytes:
	// [codec.DefaultMaxFrameSize], 1 MiB. No headroom is needed between
	// the two ends: both count the message's payload, and coder/websocket
	// accepts a message of exactly the limit.
	DefaultMaxFrameSize = codec.DefaultMaxFrameSize

	DefaultMaxConns     = 10000            // connections per Handler
	DefaultMaxBytes     = 128 << 20        // bytes held by all connections of a Handler (128 MiB)
	DefaultWriteTimeout = 10 * time.Second // the writing of one frame
	DefaultPingInterval = 30 * time.Second // idle time before a ping
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
	// connection with status 1009. The handler writes no frame larger than
	// it either: a reply that would be larger becomes an error reply with
	// code TooLarge. Zero means [DefaultMaxFrameSize]; negative means no limit,
	// either way.
	ReadLimit int64

	// MaxInFlight caps the requests of one connection being served at once,
	// with the work they left behind to run after their replies
	// ([Caller.AfterReply]); at the cap the handler stops reading that
	// connection. Zero means [codec.DefaultMaxInFlight] (64); negative means
	// no cap on the count, MaxConnBytes and MaxBytes alone bounding what a
	// connection holds.
	MaxInFlight int

	// MaxInFlightPerClient caps the requests in flight of all the
	// connections of one client address (see ClientAddr) together, with
	// their AfterReply work, so that an address that opens many
	// connections and floods them gets its share of the server and no
	// more: its connections are read in turn, and it is slowed, not its
	// neighbours. Pings from its connections wait their turn too. Zero
	// means four times MaxInFlight (256 by default); negative means no
	// share, as does a negative MaxConnsPerClient.
	MaxInFlightPerClient int

	// MaxConns caps the open connections; an upgrade beyond it is refused
	// with 503. Zero means [DefaultMaxConns].
	MaxConns int

	// MaxConnsPerClient caps the connections of one client address (see
	// ClientAddr), so that one address cannot take every place under
	// MaxConns. An upgrade beyond it is refused with 429 Too Many Requests,
	// not 503: the server is not unavailable, this client holds its share,
	// and a proxy that takes a 503 for a failed backend (and retries
	// elsewhere, or marks the replica down) should not. Zero means a tenth
	// of MaxConns, but no fewer than 100 or MaxConns, whichever is smaller
	// (1,000 with the default MaxConns): an office behind one NAT address
	// holds many tabs. With no MaxConns (negative), zero means no cap.
	//
	// Behind a reverse proxy every connection comes from the proxy's
	// address: set ClientAddr (see [ForwardedFor]), or a negative
	// MaxConnsPerClient, or the proxy's clients share one cap.
	MaxConnsPerClient int

	// ClientAddr returns the address of the client of an upgrade request,
	// the key of MaxConnsPerClient; an empty address is not capped. Nil
	// means [RemoteHost], the peer's IP address; behind reverse proxies use
	// [ForwardedFor] with the proxies' addresses. Count IPv6 clients by
	// prefix (a /64 is usually one subscriber) by returning the prefix.
	ClientAddr func(r *http.Request) string

	// MaxConnBytes bounds, in bytes, what one connection holds at once: its
	// requests in flight (their frames, plus 4 KiB for each, and 4 KiB for
	// each AfterReply function still running), the reply being written and
	// the frames queued or being written. While it is spent the handler
	// stops reading that connection, as at MaxInFlight. Zero means
	// [codec.DefaultMaxConnBytes] (4 MiB); negative means no bound of its
	// own.
	MaxConnBytes int64

	// MaxBytes bounds the same bytes summed over every connection of the
	// handler: while it is spent, the handler reads no connection until
	// enough has been answered or written, and a frame larger than 8 KiB
	// that arrives meanwhile closes its connection with status 1013 (try
	// again later) rather than be read. Zero means [DefaultMaxBytes]
	// (128 MiB); negative means no bound.
	MaxBytes int64

	// MaxQueuedBytes caps the frames waiting to be written to one connection
	// while another is written, in bytes. [Peer.Notify] waits for room;
	// [Handler.Broadcast] does not, and closes the connection of a client
	// whose queue is full (see [ErrSlowConsumer]). Zero means
	// [codec.DefaultMaxQueuedBytes] (64 KiB); negative means no cap, the
	// write timeout alone bounding a client that stops reading.
	MaxQueuedBytes int

	// WriteTimeout bounds the writing of one frame, and how long a push may
	// wait for room: a client that reads nothing for that long is
	// disconnected. Zero means [DefaultWriteTimeout].
	WriteTimeout time.Duration

	// PingInterval is how long a connection may go without traffic before
	// the handler pings it; a peer that answers nothing within another
	// interval is disconnected. While the handler has stopped reading a
	// connection (at MaxInFlight or a byte budget) it still pings it every
	// interval, so that proxies see traffic and the client sees the server
	// alive, but cannot read the pongs and does not count on them. Zero
	// means [DefaultPingInterval].
	PingInterval time.Duration

	// MethodName maps a request's type to a net/rpc method. Nil means the
	// methods of services registered with [Handler.Register], whatever the
	// case of the type, and [codec.MethodName] for the rest.
	MethodName func(typ string) string

	// Authorize, if set, sees every upgrade request before it is accepted: its
	// cookies, query and offered subprotocols (see [Subprotocols]), where a
	// browser's token can travel. An error refuses the upgrade with 403;
	// otherwise the identity it returns is the connection's
	// [Peer.Identity].
	Authorize func(r *http.Request) (identity any, err error)

	// Logger receives the handler's and the codec's log lines, at levels
	// that say who acts: Debug for what is routine, Warn for a client's
	// fault, Error for what an operator must act on. Nil means
	// [slog.Default]; slog.New(slog.DiscardHandler) silences the handler.
	Logger *slog.Logger

	// OnCall, if set, sees every served request's type, duration and outcome.
	OnCall func(codec.CallInfo)

	// PlainError, if set, maps the text of a plain error that a method
	// returned (one without a code, sent as ServerError) to the message the
	// client sees; nil sends the text verbatim. [codec.HidePlainErrors]
	// logs the text and sends a generic message. See
	// [codec.ServerOptions].PlainError.
	PlainError func(typ, text string) string

	// Broker carries [Handler.Publish] to the other replicas. The handler
	// owns it: NewHandler starts it and subscribes to the handler's own
	// subjects (waiting up to 5 s for an engine that is slow to answer,
	// once), and Shutdown closes it. Nil means an in-process broker of the
	// handler's own (a single replica). See docs/topics-and-brokers.md.
	Broker Broker

	// UserName maps a connection's identity (what Authorize returned) to
	// its user name, the address of [User]; "" means no user. Nil means: a
	// string identity is the user name, any other has none.
	UserName func(identity any) string

	// MaxTopicsPerConn caps the topics one connection is in; a join beyond
	// it fails with code TooManyTopics ([ErrTooManyTopics]). Zero means
	// [DefaultMaxTopicsPerConn] (128); negative means no cap. Every
	// membership is also charged to the connection's byte budgets (640
	// bytes and its name), capped or not.
	MaxTopicsPerConn int

	// MaxTopics caps the topics that have members on this replica, each a
	// subscription on the broker; a join that would add one more fails with
	// code TooManyTopics. Zero means [DefaultMaxTopics] (100,000); negative
	// means no cap.
	MaxTopics int

	// JoinTimeout bounds how long [Peer.Join] waits for the broker to
	// subscribe; past it the join succeeds and the connection gets a resync
	// once the subscription is in effect. Zero means [DefaultJoinTimeout]
	// (2 s); negative means joins never wait.
	JoinTimeout time.Duration

	// History turns on topic history, sessions and recovery (PROTOCOL.md,
	// "Sessions and recovery"): every connection gets a session, every
	// event published to a topic an epoch and an offset, and a client that
	// reconnects within the recovery window gets its topics back and the
	// events it missed. The broker must implement [HistoryBroker] and
	// [SessionBroker]; one that does not gets an Error line from
	// NewHandler, and the handler runs without history. Nil means none
	// of it: exactly the wire without history.
	//
	// With history, after its subscription a join waits at most one more
	// JoinTimeout (5 s when joins never wait) for the engine: the topic's
	// position, which it must have (else the join fails with a
	// [*BrokerError] and is undone), then the session's save and the
	// presence entry, which it may go without. A leave waits for the same
	// at most JoinTimeout. A session is bound
	// to the connection's identity: its user name when it has one (see
	// UserName), else its Go type and value as fmt's %v prints them; no
	// identity and no user name count as one identity.
	History *HistoryOptions

	// Presence turns on [Handler.Presence]: the connections in a topic on
	// every replica, kept in the broker's engine. The broker must
	// implement [PresenceBroker]; one that does not gets an Error line
	// from NewHandler, and the handler runs without presence. Joins and
	// leaves then wait for the engine at most JoinTimeout. Nil means none.
	Presence *PresenceOptions
}

// Defaults of [HistoryOptions] and [PresenceOptions].
const (
	DefaultHistorySize    = 100              // events kept per topic
	DefaultHistoryTTL     = 5 * time.Minute  // how long an event is kept
	DefaultRecoveryWindow = 2 * time.Minute  // how long a session outlives its connection
	DefaultPresenceTTL    = 60 * time.Second // how long a dead replica's connections stay present
)

// HistoryOptions configures history and recovery (see
// [HandlerOptions].History). Zero means the default; the zero value is
// ready to use.
type HistoryOptions struct {
	// Size is how many of a topic's latest events are kept for replay.
	// Zero means [DefaultHistorySize] (100).
	Size int

	// TTL is how long an event is kept for replay; a quiet topic's
	// position stays recoverable after its events expire. Zero means
	// [DefaultHistoryTTL] (5 minutes).
	TTL time.Duration

	// RecoveryWindow is how long a session outlives its connection: a
	// client that reconnects within it gets its topics and missed events
	// back. Zero means [DefaultRecoveryWindow] (2 minutes).
	RecoveryWindow time.Duration
}

// PresenceOptions configures presence (see [HandlerOptions].Presence).
// Zero means the default; the zero value is ready to use.
type PresenceOptions struct {
	// TTL bounds how long the connections of a replica that died without
	// closing them stay present. Zero means [DefaultPresenceTTL] (60 s).
	TTL time.Duration
}

// Handler is an http.Handler that serves an *rpc.Server to WebSocket clients
// in the wire protocol. Each connection is served by a [codec.ServerCodec]
// ([codec.ServerCodec.Serve]): one goroutine reads its requests, each runs
// on a goroutine of its own through [rpc.Server.ServeRequest], and one
// [codec.Outbox] writes its replies and events.
type Handler struct {
	srv  *rpc.Server
	opts HandlerOptions // defaults filled in

	budget *codec.Budget // MaxBytes, shared by every connection
	names  methodNames   // of the services registered through the handler

	mu       sync.Mutex // guards conns, reserved, upgraded and closing
	conns    map[*Peer]struct{}
	reserved int // upgrades under way, counted against MaxConns
	upgraded int // of those, the ones whose 101 response is on its way: counted by NumConns
	closing  bool
	serving  sync.WaitGroup

	clients clientCounts // places per client address, reserved or connected; guarded by mu
	cluster *cluster     // publishing across replicas: cluster.go

	corks   sync.Pool // gather buffers, lent to connections while they write a batch (cork.go)
	workers *workers  // run the connections' requests (workers.go)
	reads   sync.Pool // read buffers, lent to connections while they have bytes to read (lazyread.go)
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
	o.ReadLimit = orDefault(o.ReadLimit, DefaultMaxFrameSize)
	o.MaxConns = orDefault(o.MaxConns, DefaultMaxConns)
	o.MaxBytes = orDefault(o.MaxBytes, DefaultMaxBytes)
	o.MaxConnsPerClient = orDefault(o.MaxConnsPerClient, defaultConnsPerClient(o.MaxConns))
	if o.ClientAddr == nil {
		o.ClientAddr = RemoteHost
	}
	o.MaxInFlightPerClient = orDefault(o.MaxInFlightPerClient, 4*cmp.Or(max(o.MaxInFlight, 0), codec.DefaultMaxInFlight))
	o.WriteTimeout = orDefault(o.WriteTimeout, DefaultWriteTimeout)
	o.PingInterval = orDefault(o.PingInterval, DefaultPingInterval)
	h := &Handler{
		srv:     srv,
		opts:    o,
		budget:  codec.NewBudget(o.MaxBytes),
		conns:   make(map[*Peer]struct{}),
		clients: clientCounts{max: o.MaxConnsPerClient, inFlight: o.MaxInFlightPerClient},
		workers: newWorkers(),
	}
	h.names.srv = srv
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
	client := h.opts.ClientAddr(r)
	a, status := h.admit(client)
	if status != 0 {
		h.refuseUpgrade(w, r, client, status)
		return
	}
	defer a.cancel() // unless it is served
	identity, ok := h.authorize(w, r)
	if !ok {
		return
	}
	conn := h.accept(w, r, a)
	if conn == nil {
		return
	}
	if p := a.start(conn, identity, r.RemoteAddr); p != nil {
		conn.startKeepalive(h.opts.PingInterval)
		// Serve on a goroutine of its own and let the HTTP server's
		// goroutine end: that frees what net/http keeps for the request
		// (its buffered writer, the request and its headers) for as long
		// as the connection lives.
		go a.serve(p)
	}
}

// authorize runs Authorize, if set, and refuses the upgrade with 403 when
// it fails.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) (identity any, ok bool) {
	if h.opts.Authorize == nil {
		return nil, true
	}
	identity, err := h.opts.Authorize(r)
	if err != nil {
		h.logAt(slog.LevelWarn, "refused an upgrade: Authorize", "remote", r.RemoteAddr, "error", err)
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return nil, false
	}
	return identity, true
}

// accept completes the WebSocket handshake of the admitted connection a,
// or refuses it; it returns nil when there is no connection.
func (h *Handler) accept(w http.ResponseWriter, r *http.Request, a *admission) *wsConn {
	r, ok := narrowSubprotocols(w, r, h.opts.AcceptOptions)
	if !ok {
		return nil
	}
	adm := h.newAdmission(a.share)
	var ao websocket.AcceptOptions
	if h.opts.AcceptOptions != nil {
		ao = *h.opts.AcceptOptions
	}
	hd := new(heard)
	turn := func(context.Context) { a.share.Turn(adm.Context()) }
	ao.OnPingReceived, ao.OnPongReceived = hd.controlHooks(turn, ao.OnPingReceived, ao.OnPongReceived)
	var cork *corkConn
	var in *lazyReader
	cw := corkingWriter{ResponseWriter: w, timeout: h.opts.WriteTimeout, corks: &h.corks, reads: &h.reads,
		hijacked: a.upgrading, broken: adm.Close, conn: func(c *corkConn, l *lazyReader) { cork, in = c, l }}
	ws, err := websocket.Accept(cw, r, &ao)
	if err != nil {
		level := slog.LevelWarn // a page of another origin, a bad handshake
		if !isUpgrade(r) {
			level = slog.LevelDebug // a health check, curl: not a WebSocket request
		}
		h.logAt(level, "refused an upgrade", "remote", r.RemoteAddr, "error", err)
		return nil // Accept has written the response
	}
	// r.Context() must not be used from here on.
	ws.SetReadLimit(max(h.opts.ReadLimit, -1))
	return newWSConn(wsParts{ws: ws, cork: cork, in: in, writeTimeout: h.opts.WriteTimeout, heard: hd, adm: adm}, serverWriteBuffer)
}

// newAdmission returns the admission of a new connection, within share.
func (h *Handler) newAdmission(share *codec.Share) *codec.Admission {
	return codec.NewAdmission(&codec.AdmissionOptions{
		MaxInFlight:  h.opts.MaxInFlight,
		MaxConnBytes: h.opts.MaxConnBytes,
		Budget:       h.budget,
		Share:        share,
	})
}

// admission is the place of one connection in the handler, from its arrival
// to its end: the one path by which ServeHTTP and ServeConn admit
// connections, under MaxConns, MaxConnsPerClient and Shutdown.
type admission struct {
	h        *Handler
	client   string       // "": not capped per client
	share    *codec.Share // the client's; nil: none
	upgraded bool         // counted in h.upgraded: its client learns of the upgrade
	started  bool
}

// admit reserves a place for a connection of client, or returns the HTTP
// status of its refusal (see [Handler.reserveFor]).
func (h *Handler) admit(client string) (*admission, int) {
	share, status := h.reserveFor(client)
	if status != 0 {
		return nil, status
	}
	return &admission{h: h, client: client, share: share}, 0
}

// upgrading counts the connection from the moment its client can see it
// upgraded.
func (a *admission) upgrading() {
	a.h.mu.Lock()
	a.h.upgraded++
	a.h.mu.Unlock()
	a.upgraded = true
}

// start makes the codec and Peer of the admitted connection t and counts it
// among the open ones. It returns nil, closing t, when the handler began
// shutting down meanwhile.
func (a *admission) start(t transport, identity any, remoteAddr string) *Peer {
	p := a.h.newPeer(t, identity, remoteAddr)
	a.h.openSession(p) // its first frame, before any event can be queued
	if !a.h.register(p, a.upgraded) {
		t.closeWith(websocket.StatusGoingAway, "server shutting down")
		return nil
	}
	a.started, a.upgraded = true, false
	return p
}

// serve serves the started connection until it ends, then frees its place.
func (a *admission) serve(p *Peer) {
	a.h.attach(p) // its user address, before its first request
	p.codec.Serve(a.h.srv)
	a.h.unregister(p)
	a.h.releaseClient(a.client)
}

// cancel frees the place of a connection that was never started.
func (a *admission) cancel() {
	if a.started {
		return
	}
	if a.upgraded {
		a.h.mu.Lock()
		a.h.upgraded--
		a.h.mu.Unlock()
	}
	a.h.unreserveFor(a.client)
}

// newPeer returns the Peer of conn, with the codec that serves it.
func (h *Handler) newPeer(conn transport, identity any, remoteAddr string) *Peer {
	maxFrame := int(max(h.opts.ReadLimit, -1)) // the client's limit is taken to be the handler's
	methodName := h.opts.MethodName
	if methodName == nil {
		methodName = h.names.methodName
	}
	adm := conn.admission()
	out := codec.NewOutbox(conn, adm, h.opts.MaxQueuedBytes)
	var spawn func(func()) // nil: a goroutine for each request
	if _, ok := conn.(*wsConn); ok {
		// A WebSocket's requests run on the handler's workers; those of
		// ServeConn's transports (in memory, in tests) on goroutines of
		// their own, which end with them.
		spawn = h.workers.Go
	}
	var p *Peer // the codec binds Callers to it
	var codecConn codec.Conn = conn
	var sconn *sessionConn
	if h.cluster.hist.on() {
		sconn = &sessionConn{transport: conn} // answers rpcws.recover (recover.go)
		codecConn = sconn
	}
	sc := codec.NewServerCodec(codecConn, &codec.ServerOptions{
		MethodName:   methodName,
		Logger:       h.logger(),
		OnCall:       h.opts.OnCall,
		PlainError:   h.opts.PlainError,
		MaxFrameSize: maxFrame,
		Bind:         func(args any, seq uint64) { bindCaller(args, p, seq) },
		Go:           spawn,
		Admission:    adm,
		Outbox:       out,
	})
	p = &Peer{
		conn:         conn,
		codec:        sc,
		out:          out,
		adm:          adm,
		maxFrame:     maxFrame,
		writeTimeout: h.opts.WriteTimeout,
		identity:     identity,
		remoteAddr:   remoteAddr,
		h:            h,
		id:           h.cluster.newPeerID(),
	}
	if sconn != nil {
		sconn.p = p
	}
	return p
}

// reserveFor reserves a place for a connection of client ("": none, not
// capped per client), and returns the client's share. Its status is 0, or
// the HTTP status of the refusal: 503 at MaxConns or shutting down, 429 at
// MaxConnsPerClient. The client's place is given back by unreserveFor, or
// by releaseClient once its connection has ended.
func (h *Handler) reserveFor(client string) (*codec.Share, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing || (h.opts.MaxConns > 0 && len(h.conns)+h.reserved >= h.opts.MaxConns) {
		return nil, http.StatusServiceUnavailable
	}
	share, ok := h.clients.add(client)
	if !ok {
		return nil, http.StatusTooManyRequests
	}
	h.reserved++
	return share, 0
}

func (h *Handler) unreserveFor(client string) {
	h.mu.Lock()
	h.reserved--
	h.clients.remove(client)
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
		n += p.adm.InFlight()
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
// once; each connection queues it without waiting, so a slow client holds up
// no one: a client whose queue is full is cut instead (see
// [ErrSlowConsumer]). A Broadcast made by a method reaches its own caller
// before that method's reply, which is written after the method returns; to
// push after the reply, use [Caller.AfterReply]. Broadcast returns an
// encoding error, or ctx's error if it ended first.
//
// A connection takes part from the moment the handler has set it up, a
// moment after its client learns of the upgrade (and after [Handler.NumConns]
// counts it): a client that must not miss an event sent right after it
// connects makes a request first, whose reply proves it is set up.
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
			err := p.adm.Drain(ctx)
			if err == nil {
				err = p.out.Flush(ctx)
			}
			// Closing closes the admission, after which nothing but the
			// close frame is written, before it ends the contexts that
			// methods watch: a method cut short gets no success reply. The
			// closing handshake may wait seconds for a peer that does not
			// read; Shutdown does not wait for it past ctx.
			closeErr := within(ctx, func() {
				p.conn.closeWith(websocket.StatusGoingAway, "server shutting down")
			})
			return cmp.Or(err, closeErr)
		})
	}
	err := cmp.Or(g.Wait(), within(ctx, h.serving.Wait))
	h.workers.stop()
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

// maxSubprotocolHeader bounds the subprotocols an upgrade request may
// offer, in bytes: room for a token or two, and no more.
const maxSubprotocolHeader = 8 << 10

// narrowSubprotocols returns r with only the subprotocols that the handler
// accepts still offered, copied: coder/websocket keeps the one it selects
// as a slice of the header for the connection's life, and the header may be
// large (a token travels there). It refuses the upgrade (431) when the
// offer is larger than maxSubprotocolHeader.
func narrowSubprotocols(w http.ResponseWriter, r *http.Request, ao *websocket.AcceptOptions) (*http.Request, bool) {
	values := r.Header.Values("Sec-WebSocket-Protocol")
	if len(values) == 0 {
		return r, true
	}
	size := 0
	for _, v := range values {
		size += len(v)
	}
	if size > maxSubprotocolHeader {
		http.Error(w, "rpcws: Sec-WebSocket-Protocol too large", http.StatusRequestHeaderFieldsTooLarge)
		return nil, false
	}
	var keep []string
	for _, p := range Subprotocols(r) {
		if ao != nil && slices.Contains(ao.Subprotocols, p) {
			keep = append(keep, p)
		}
	}
	r2 := *r
	r2.Header = r.Header.Clone()
	r2.Header.Del("Sec-WebSocket-Protocol")
	if len(keep) > 0 {
		r2.Header.Set("Sec-WebSocket-Protocol", strings.Clone(strings.Join(keep, ", ")))
	}
	return &r2, true
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
