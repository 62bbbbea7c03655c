package rpcws

import (
	"context"
	"errors"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
)

// Peer is one client connection, as its services see it: it pushes events to
// that client and carries what the upgrade request established.
//
// A nil *Peer, which [Caller.Peer] returns to a method served by another
// codec, is safe to use: its pushes fail with [ErrNoPeer] and its Context is
// done.
type Peer struct {
	conn         transport
	codec        *codec.ServerCodec // for AfterReply
	out          *codec.Outbox
	adm          *codec.Admission
	maxFrame     int           // the client's frame limit; <= 0: none
	writeTimeout time.Duration // <= 0: none
	identity     any
	remoteAddr   string

	h    *Handler // for Join and Leave: peer_topics.go
	id   string
	addr peerAddr // guarded by h.cluster.mu (hub.go)

	sess *session  // nil without history (session.go)
	pos  positions // where it stands in its topics, with history (positions.go)
}

// Notify pushes an event {"type": eventType, "data": data} to the peer,
// after every frame the connection was handed before it. When the
// connection's queue is full, Notify waits for room until ctx ends (it then
// returns ctx's error) or for the write timeout: a client that reads nothing
// for that long is cut with status 1008, and Notify returns
// [ErrSlowConsumer]. After the connection closed it returns [ErrClosed]; an
// event over the client's frame limit is refused with [codec.ErrTooLarge].
func (p *Peer) Notify(ctx context.Context, eventType string, data any) error {
	if p == nil {
		return ErrNoPeer
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	frame, err := codec.EncodeEvent(eventType, data)
	if err != nil {
		return err
	}
	return p.send(ctx, frame)
}

// send writes an encoded event frame, waiting for room as Notify does.
func (p *Peer) send(ctx context.Context, frame []byte) error {
	if p.maxFrame > 0 && len(frame) > p.maxFrame {
		return codec.ErrTooLarge
	}
	wctx := ctx
	if p.writeTimeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, p.writeTimeout)
		defer cancel()
	}
	err := p.out.Write(wctx, frame, false)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		p.cutSlow()
		return ErrSlowConsumer
	}
	return err
}

// enqueue queues an encoded event frame for the peer without waiting. A
// peer whose queue is full is a slow consumer: its connection is closed and
// enqueue returns [ErrSlowConsumer]. frame must not change afterwards; it may
// be shared between connections.
func (p *Peer) enqueue(frame []byte) error {
	if p.maxFrame > 0 && len(frame) > p.maxFrame {
		return codec.ErrTooLarge
	}
	err := p.out.TryWrite(frame)
	if errors.Is(err, codec.ErrQueueFull) {
		p.cutSlow()
		return ErrSlowConsumer
	}
	return err
}

// cutSlow closes the connection of a client that reads too slowly. The
// closing handshake may take seconds with such a client: it runs on a
// goroutine of its own.
func (p *Peer) cutSlow() {
	go p.conn.closeWith(websocket.StatusPolicyViolation, SlowConsumerReason)
}

// Context returns a context that ends when the connection closes: a long
// method can stop early when its caller has gone. By then nothing more is
// written to the connection, so a method that stops early should return an
// error: its reply is never sent. The nil Peer's context is done.
func (p *Peer) Context() context.Context {
	if p == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	return p.adm.Context()
}

// Identity returns what [HandlerOptions.Authorize] returned for this
// connection's upgrade request, or nil.
func (p *Peer) Identity() any {
	if p == nil {
		return nil
	}
	return p.identity
}

// RemoteAddr returns the network address of the client, as the HTTP server
// saw it; "" for the nil Peer and for connections served by
// [Handler.ServeConn].
func (p *Peer) RemoteAddr() string {
	if p == nil {
		return ""
	}
	return p.remoteAddr
}

// Caller gives a service method the connection that called it. Embed it in a
// method's argument type; the handler fills it in after decoding the
// request's data and before the method runs:
//
//	type TicksArgs struct {
//		Count int `json:"count"`
//		rpcws.Caller
//	}
//
//	func (s *Demo) Ticks(args *TicksArgs, reply *TicksReply) error {
//		peer := args.Peer()
//		args.AfterReply(func() { peer.Notify(peer.Context(), "demo.tick", 1) })
//		...
//	}
//
// Caller has no exported fields, so it adds nothing to the wire format, and
// the method remains an ordinary net/rpc method that any codec can serve;
// served by another codec, Peer returns nil, which is safe to use.
type Caller struct {
	peer *Peer
	seq  uint64
}

// Peer returns the connection that sent the request, or nil when the method
// is not served by rpcws.
func (c *Caller) Peer() *Peer { return c.peer }

// AfterReply arranges for f to run, on a goroutine of its own, once the reply
// to this request has been written. Events that f pushes therefore reach the
// client after the reply. Until f returns, the request counts against the
// connection's in-flight cap and byte budgets. Call it before the method
// returns; called later, or served by another codec, f runs at once.
func (c *Caller) AfterReply(f func()) {
	if c.peer == nil || !c.peer.codec.AfterReply(c.seq, f) {
		go f()
	}
}

func (c *Caller) bindCaller(p *Peer, seq uint64) { c.peer, c.seq = p, seq }

// callerBinder is what a method's argument has when it embeds Caller.
type callerBinder interface {
	bindCaller(p *Peer, seq uint64)
}

// bindCaller binds the Caller that args embeds, if it embeds one, to the
// connection p and the request numbered seq.
func bindCaller(args any, p *Peer, seq uint64) {
	if b, ok := args.(callerBinder); ok {
		b.bindCaller(p, seq)
	}
}
