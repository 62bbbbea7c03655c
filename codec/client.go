package codec

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcws/rpcws/internal/eventq"
)

// DefaultCallTimeout is how long a client waits for a reply unless
// [ClientOptions.Timeout] says otherwise.
const DefaultCallTimeout = 10 * time.Second

// ClientOptions configures a [ClientCodec]. A nil *ClientOptions is valid and
// means all defaults. For every duration and limit, zero means the default
// and a negative value means none.
type ClientOptions struct {
	// TypeName maps a net/rpc "Service.Method" name to the request's type.
	// Nil means [TypeName]: "User.Get" → "user.get".
	TypeName func(method string) string

	// Timeout bounds every call whose context has no deadline (see "Time" in
	// the package comment). Zero means [DefaultCallTimeout]; negative means
	// none.
	Timeout time.Duration

	// OnEvent, if set, receives every event (a frame without id) in arrival
	// order, one call at a time, on a goroutine of its own: a slow OnEvent
	// never holds up replies. data is the event's raw JSON, which OnEvent may
	// keep.
	OnEvent func(eventType string, data json.RawMessage)

	// MaxQueuedEventBytes caps the memory of the events received but not yet
	// handed to OnEvent: their types and data, plus a small fixed cost per
	// event. An event that does not fit is dropped and counted in
	// [ClientStats.DroppedEvents]; one event always fits an empty queue,
	// whatever its size (the read limit of the transport bounds it). Zero
	// means [DefaultMaxQueuedEventBytes]; negative means no cap.
	MaxQueuedEventBytes int

	// OnEventFrame, if set, takes the place of OnEvent and its queue: it
	// gets every event with the position fields of its frame, on the
	// reading goroutine, as it is read, in order. It must return quickly,
	// since replies wait behind it, and copy what it keeps of the event's
	// Data. It is for code that tracks where a connection's topics stand:
	// package rpcws's client that reconnects keeps its positions with it.
	OnEventFrame func(Event)

	// Logger receives what no call can be told: error frames without id,
	// frames that could not be read, dropped events. Nil means silent.
	Logger *slog.Logger
}

// ClientStats counts what a client dropped or refused.
type ClientStats struct {
	LateReplies   uint64 // replies whose call had already ended (timed out, cancelled) or was never made
	DroppedEvents uint64 // events dropped because OnEvent fell behind
	BadFrames     uint64 // frames that could not be read as a message
	BadReplies    uint64 // replies that broke the protocol or did not decode: each failed its call with BadReply, or, with an id that is not a string, named none
}

// ClientCodec is the client end of the protocol over a [Conn]. Its Call, Go
// and Notify are the client's API; it is also an [rpc.ClientCodec], for
// net/rpc's own client ([rpc.NewClientWithCodec]).
//
// Every call, whichever method made it, takes one path: it is registered in
// a table of pending calls, its request written, and the codec's reading
// goroutine (or its timer, or the end of the connection) completes it, once.
type ClientCodec struct {
	conn        Conn
	adm         *Admission      // counts the bytes out holds, and closes with the codec
	out         *Outbox         // writes the requests: those made while one is written leave together
	ctx         context.Context // adm's: ends when the codec closes
	logger      *slog.Logger
	late        atomic.Uint64
	badFrames   atomic.Uint64
	badReplies  atomic.Uint64
	readerDone  chan struct{}
	done        chan struct{} // closed once the connection is done
	doneErr     *Error        // why: what pending and later calls get; set before done closes
	closeCalled atomic.Bool

	wmu   sync.Mutex // guards names and ids
	names nameCache
	ids   idSource

	mu      sync.Mutex // guards pending
	pending pendingSet

	calls    sync.Pool // of *clientCall no longer pending
	rpcCalls sync.Pool // of *rpc.Call with an empty Done channel of capacity 1, for Call

	events  eventq.Queue
	onFrame func(Event) // ClientOptions.OnEventFrame
	stock   stockQueue  // outcomes for net/rpc's own client
}

// clientCall is a call in the pending table. It goes back to the codec's pool
// as soon as it leaves the table: its outcome travels in rc.
type clientCall struct {
	id    idKey
	typ   string
	rc    *rpc.Call // where the outcome goes: see complete
	timed bool      // in the pending set's list, with the client's timeout

	// By deadline: nanoseconds since the set's epoch.
	deadline   int64
	prev, next *clientCall // in the list
}

var _ rpc.ClientCodec = (*ClientCodec)(nil)

// NewClientCodec returns a client codec that sends requests on conn and reads
// replies from it. The codec owns conn from then on and closes it in
// [ClientCodec.Close].
func NewClientCodec(conn Conn, opts *ClientOptions) *ClientCodec {
	if opts == nil {
		opts = &ClientOptions{}
	}
	c := &ClientCodec{
		conn:       conn,
		logger:     opts.Logger,
		readerDone: make(chan struct{}),
		done:       make(chan struct{}),
		pending:    pendingSet{byID: make(map[idKey]*clientCall), epoch: time.Now()},
		stock:      stockQueue{ready: make(chan struct{}, 1)},
	}
	c.pending.timeout = opts.Timeout
	if c.pending.timeout == 0 {
		c.pending.timeout = DefaultCallTimeout
	}
	c.pending.expire = c.expireDue
	if c.onFrame = opts.OnEventFrame; c.onFrame == nil {
		c.events.Init(opts.OnEvent, opts.MaxQueuedEventBytes, c.logf)
	}
	c.names.fn = opts.TypeName
	if c.names.fn == nil {
		c.names.fn = TypeName
	}
	c.adm = NewAdmission(&AdmissionOptions{MaxConnBytes: -1})
	c.out = NewOutbox(conn, c.adm, 0)
	c.ctx = c.adm.Context()
	go c.read()
	return c
}

// Call sends a request for serviceMethod and waits for its reply, which it
// decodes into reply. ctx bounds the call: with a deadline, the deadline is
// the call's timeout; without, the client's [ClientOptions.Timeout] is.
// Ending ctx never touches the connection, and a call that ended early never
// writes into reply afterwards. Its errors are those of the package
// comment's "Errors".
func (c *ClientCodec) Call(ctx context.Context, serviceMethod string, args, reply any) error {
	rc, _ := c.rpcCalls.Get().(*rpc.Call)
	if rc == nil {
		rc = &rpc.Call{Done: make(chan *rpc.Call, 1)}
	}
	rc.ServiceMethod, rc.Args, rc.Reply = serviceMethod, args, reply
	_, hasDeadline := ctx.Deadline()
	id, typ, err := c.start(ctx, rc, !hasDeadline)
	if err == nil {
		select {
		case <-rc.Done:
			err = rc.Error
		case <-ctx.Done():
			if c.remove(id) {
				err = contextError(ctx, typ)
			} else { // the reply (or a verdict) is being delivered: take it
				<-rc.Done
				err = rc.Error
			}
		}
	}
	*rc = rpc.Call{Done: rc.Done} // empty: a call completes once
	c.rpcCalls.Put(rc)
	return err
}

// Go starts a call of serviceMethod, as [rpc.Client.Go] does, and returns
// its *rpc.Call, which is sent on done once the reply (decoded into reply)
// or an error has come. done must be buffered; nil means a new channel with
// room for 10 calls. As with net/rpc, a call whose done channel is full when
// it completes is dropped, not waited for. The call has the client's
// timeout; its errors are those of [ClientCodec.Call].
func (c *ClientCodec) Go(serviceMethod string, args, reply any, done chan *rpc.Call) *rpc.Call {
	if done == nil {
		done = make(chan *rpc.Call, 10)
	} else if cap(done) == 0 {
		panic("codec: done channel is unbuffered")
	}
	rc := &rpc.Call{ServiceMethod: serviceMethod, Args: args, Reply: reply, Done: done}
	if _, _, err := c.start(context.Background(), rc, true); err != nil {
		rc.Error = err
		c.handOver(rc)
	}
	return rc
}

// Notify sends a notification: the server runs serviceMethod with args and
// sends nothing back, not even an error.
func (c *ClientCodec) Notify(ctx context.Context, serviceMethod string, args any) error {
	c.wmu.Lock()
	_, typ := c.names.lookup([]byte(serviceMethod))
	c.wmu.Unlock()
	if ctx.Err() != nil {
		return contextError(ctx, typ)
	}
	if c.isDone() {
		return c.doneErr
	}
	enc := getEncoder()
	defer putEncoder(enc)
	enc.start(nil, typ, "")
	if err := enc.data(args); err != nil {
		return badArgsError(typ, err)
	}
	return c.write(ctx, typ, enc)
}

// start registers rc as a pending call, timed by the client's timeout or
// (when its context has a deadline) not, and writes its request. It returns
// the call's id and type. An error means that no call is pending: rc is the
// caller's to complete. Otherwise complete ends the call, once, unless the
// caller takes it back with remove.
func (c *ClientCodec) start(ctx context.Context, rc *rpc.Call, timed bool) (idKey, string, error) {
	c.wmu.Lock()
	_, typ := c.names.lookup([]byte(rc.ServiceMethod))
	id := c.ids.next()
	c.wmu.Unlock()
	if ctx.Err() != nil {
		return idKey{}, typ, contextError(ctx, typ)
	}
	var idJSON [2 + len(idKey{})]byte
	idJSON[0], idJSON[len(idJSON)-1] = '"', '"'
	encodeUUID(idJSON[1:], id)
	key := idKey(idJSON[1 : len(idJSON)-1])
	enc := getEncoder()
	defer putEncoder(enc)
	enc.start(idJSON[:], typ, "")
	if err := enc.data(rc.Args); err != nil {
		return key, typ, badArgsError(typ, err)
	}

	// Register before writing: the reply may come before the write returns.
	call, _ := c.calls.Get().(*clientCall)
	if call == nil {
		call = new(clientCall)
	}
	call.id, call.typ, call.rc = key, typ, rc
	c.mu.Lock()
	if c.isDone() {
		c.mu.Unlock()
		c.freeCall(call)
		return key, typ, c.doneErr
	}
	c.pending.add(call, timed)
	c.mu.Unlock()

	if err := c.write(ctx, typ, enc); err != nil && c.remove(key) {
		return key, typ, err
	} // else the connection ended during the write, and its verdict is on its way
	return key, typ, nil
}

// write hands the frame in enc to the outbox, which sends it at once or
// with the frames written meanwhile; ctx bounds a wait for room in its
// queue.
func (c *ClientCodec) write(ctx context.Context, typ string, enc *encoder) error {
	err := c.out.Write(ctx, enc.buf.Bytes(), true)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return contextError(ctx, typ)
	case c.isDone():
		return c.doneErr
	}
	return &Error{Code: CodeDisconnected, Message: "cannot write: " + err.Error(), Err: err}
}

// remove takes the call with the given id out of the pending table. It
// reports false when the call was no longer there: its outcome is already on
// its way.
func (c *ClientCodec) remove(id idKey) bool {
	c.mu.Lock()
	call := c.pending.byID[id]
	if call != nil {
		c.pending.remove(call)
	}
	c.mu.Unlock()
	if call != nil {
		c.freeCall(call)
	}
	return call != nil
}

// freeCall puts call back in the pool. It is out of the pending table, and
// no one refers to it any more.
func (c *ClientCodec) freeCall(call *clientCall) {
	*call = clientCall{}
	c.calls.Put(call)
}

// expireDue runs on the pending set's timer: it fails the calls whose
// timeout has passed.
func (c *ClientCodec) expireDue() {
	c.mu.Lock()
	due := c.pending.takeDue()
	c.mu.Unlock()
	for _, call := range due {
		c.complete(call, timeoutError(call.typ, nil), nil)
	}
}

// complete ends a call that has left the pending table: it decodes a reply's
// data into the reply value (a value that does not fit fails the call with
// BadReply), sets the *rpc.Call's Error and hands it over. Every outcome of
// every call passes here, once.
func (c *ClientCodec) complete(call *clientCall, err error, data []byte) {
	rc, typ := call.rc, call.typ
	c.freeCall(call)
	if err == nil && rc.Reply != nil && data != nil && !isNull(data) {
		if derr := decodeReply(data, rc.Reply); derr != nil {
			c.badReplies.Add(1)
			err = &Error{Code: CodeBadReply, Message: "cannot decode the reply to " + typ + ": " + derr.Error(), Err: derr}
		}
	}
	rc.Error = err
	c.handOver(rc)
}

// handOver sends a finished call on its done channel, unless the channel is
// full: the caller chose its capacity, as with net/rpc. A call without one
// was made by net/rpc's own client, whose reading goroutine takes it.
func (c *ClientCodec) handOver(rc *rpc.Call) {
	if rc.Done == nil {
		c.stock.push(rc)
		return
	}
	select {
	case rc.Done <- rc:
	default:
		c.logf("dropped the outcome of a call: its done channel is full", "method", rc.ServiceMethod)
	}
}

// isDone reports whether the connection has ended.
func (c *ClientCodec) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stats returns what the client has dropped or refused so far.
func (c *ClientCodec) Stats() ClientStats {
	return ClientStats{
		LateReplies:   c.late.Load(),
		DroppedEvents: c.events.Dropped(),
		BadFrames:     c.badFrames.Load(),
		BadReplies:    c.badReplies.Load(),
	}
}

// Done returns a channel that is closed once the connection has ended, by
// Close or by the peer.
func (c *ClientCodec) Done() <-chan struct{} { return c.done }

// Close closes the connection and waits for the reading goroutine to end.
// Pending and later calls fail with Disconnected (matching
// [rpc.ErrShutdown]). Events still queued are not delivered. How long Close
// takes is up to the Conn's Close: over WebSocket, a short closing handshake.
func (c *ClientCodec) Close() error {
	if c.closeCalled.Swap(true) {
		<-c.readerDone
		return nil
	}
	c.events.Stop()
	c.adm.Close()
	err := c.conn.Close()
	<-c.readerDone
	return err
}

func (c *ClientCodec) logf(msg string, args ...any) {
	if c.logger != nil {
		c.logger.Warn("codec: "+msg, args...)
	}
}
