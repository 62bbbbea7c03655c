package rpcws

import (
	"context"
	"net/rpc"
	"sync"
	"sync/atomic"

	"github.com/rpcws/rpcws/codec"
)

// Peer is one client connection, as its services see it: it pushes events to
// that client and carries what the upgrade request established.
type Peer struct {
	conn       transport
	events     *pushQueue
	codec      *codec.ServerCodec
	identity   any
	remoteAddr string

	h    *Handler // for Join and Leave: topics.go
	id   string
	addr peerAddr // guarded by h.cluster.mu
}

// Notify pushes an event {"type": eventType, "data": data} to the peer. It
// does not wait for the write: the event joins the connection's bounded
// queue and is written after the frames queued before it. When the queue is
// full the peer reads too slowly: the connection is closed and Notify returns
// [ErrSlowConsumer]. After the connection closed it returns [ErrClosed].
func (p *Peer) Notify(ctx context.Context, eventType string, data any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	frame, err := codec.EncodeEvent(eventType, data)
	if err != nil {
		return err
	}
	return p.enqueue(frame)
}

// enqueue queues an encoded event frame for the peer without waiting. A
// peer that cannot take it is a slow consumer: its connection is closed and
// enqueue returns [ErrSlowConsumer]. frame must not change afterwards; it may
// be shared between connections.
func (p *Peer) enqueue(frame []byte) error { return p.events.push(frame) }

// Context returns a context that ends when the connection closes: a long
// method can stop early when its caller has gone.
func (p *Peer) Context() context.Context { return p.conn.context() }

// Identity returns what [HandlerOptions.Authorize] returned for this
// connection's upgrade request, or nil.
func (p *Peer) Identity() any { return p.identity }

// RemoteAddr returns the network address of the client, as the HTTP server
// saw it.
func (p *Peer) RemoteAddr() string { return p.remoteAddr }

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
// served by another codec, Peer returns nil.
type Caller struct {
	peer  *Peer
	seq   uint64
	hooks *replyHooks
}

// Peer returns the connection that sent the request, or nil when the method
// is not served by rpcws.
func (c *Caller) Peer() *Peer { return c.peer }

// AfterReply arranges for f to run, on a goroutine of its own, once the reply
// to this request has been written. Events that f pushes therefore reach the
// client after the reply. Served by another codec, f runs at once.
func (c *Caller) AfterReply(f func()) {
	if c.hooks == nil {
		go f()
		return
	}
	c.hooks.add(c.seq, f)
}

func (c *Caller) bindCaller(p *Peer, seq uint64, hooks *replyHooks) {
	c.peer, c.seq, c.hooks = p, seq, hooks
}

// callerBinder is what a method's argument has when it embeds Caller.
type callerBinder interface {
	bindCaller(p *Peer, seq uint64, hooks *replyHooks)
}

// replyHooks holds the AfterReply functions of one connection's requests.
type replyHooks struct {
	n  atomic.Int32 // len(m), read without the lock on every reply
	mu sync.Mutex
	m  map[uint64][]func()
}

func (h *replyHooks) add(seq uint64, f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[uint64][]func())
	}
	h.m[seq] = append(h.m[seq], f)
	h.n.Store(int32(len(h.m)))
}

// run starts the functions registered for seq.
func (h *replyHooks) run(seq uint64) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	fs := h.m[seq]
	delete(h.m, seq)
	h.n.Store(int32(len(h.m)))
	h.mu.Unlock()
	for _, f := range fs {
		go f()
	}
}

// serverCodec is the codec a Handler serves a connection with: the protocol
// codec, plus the binding of Caller values and their AfterReply hooks.
type serverCodec struct {
	*codec.ServerCodec
	peer  *Peer
	seq   uint64 // of the request being read; net/rpc reads on one goroutine
	hooks replyHooks
}

func (s *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	err := s.ServerCodec.ReadRequestHeader(r)
	s.seq = r.Seq
	return err
}

func (s *serverCodec) ReadRequestBody(x any) error {
	if err := s.ServerCodec.ReadRequestBody(x); err != nil {
		return err
	}
	if b, ok := x.(callerBinder); ok {
		b.bindCaller(s.peer, s.seq, &s.hooks)
	}
	return nil
}

func (s *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	err := s.ServerCodec.WriteResponse(r, body)
	s.hooks.run(r.Seq)
	return err
}
