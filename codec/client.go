package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout is how long a client waits for a reply unless
// [ClientOptions.Timeout] says otherwise.
const DefaultTimeout = 10 * time.Second

// ClientOptions configures a [ClientCodec]. A nil *ClientOptions is valid and
// means all defaults. For every duration and limit, zero means the default
// and a negative value means none.
type ClientOptions struct {
	// TypeName maps a net/rpc "Service.Method" name to the request's type.
	// Nil means [TypeName]: "User.Get" → "user.get".
	TypeName func(method string) string

	// Timeout bounds every call that has no deadline of its own: when it
	// passes without a reply the codec fails the call itself with the text
	// "timeout: <type>" (code Timeout), so that even the stock
	// (*rpc.Client).Call returns. From [ClientCodec.Call] that error is an
	// [*Error] matching [ErrTimeout]; from the stock Call and Go it is an
	// [rpc.ServerError], whose code [ErrorCode] and [AsError] recover. A call
	// made with a context that has a deadline is bounded by that deadline
	// instead, later or earlier, and one made with [WithTimeout] by its own
	// timeout. Zero means [DefaultTimeout]; negative means none.
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

	// Logger receives what no call can be told: error frames without id,
	// frames that could not be read, dropped events. Nil means silent.
	Logger *slog.Logger
}

// ClientStats counts what a client dropped.
type ClientStats struct {
	LateReplies   uint64 // replies whose call had already ended (timed out, cancelled) or was never made
	DroppedEvents uint64 // events dropped because OnEvent fell behind
	BadFrames     uint64 // frames that could not be read as a message
}

// ClientCodec is an [rpc.ClientCodec] that speaks the wire protocol over a
// [Conn]; hand it to [rpc.NewClientWithCodec]. Beyond what net/rpc asks of
// it, it times calls out, cancels them with a context ([ClientCodec.Call]),
// sends notifications and delivers events.
//
// A goroutine of its own reads the connection, so that a timeout can complete
// a call while no reply comes.
type ClientCodec struct {
	conn        Conn
	ctx         context.Context // ends when the codec closes
	cancel      context.CancelFunc
	logger      *slog.Logger
	late        atomic.Uint64
	badFrames   atomic.Uint64
	readerDone  chan struct{}
	responses   chan response // replies for net/rpc, in the order they complete
	cur         response      // the reply net/rpc is reading; its goroutine only
	free        chan []byte   // read buffers not in use
	done        chan struct{} // closed once the connection is done
	doneErr     error         // why; set before done closes
	closeCalled atomic.Bool

	wmu   sync.Mutex // serialises writes; guards enc, names and ids
	enc   *encoder
	names nameCache
	ids   idSource

	mu      sync.Mutex // guards pending
	pending pendingSet

	calls sync.Pool // of *clientCall no longer in use, with their done channels

	events eventQueue
}

// clientCall is a call waiting for its reply. It goes back to the codec's
// pool (freeCall) once its outcome is delivered: by the deliverer, or, for
// [ClientCodec.Call], by the caller once it has taken the outcome.
type clientCall struct {
	id    idKey
	where uint8 // in the pending set: untimed, listed or inHeap
	slot  int32 // in the pending set's heap
	typ   string

	// deliver hands the call's outcome to whoever waits for it: net/rpc's
	// reading goroutine ([deliverRPC]), [ClientCodec.Call] ([deliverDirect])
	// or the done channel of [ClientCodec.Go] ([deliverGo]).
	deliver func(c *ClientCodec, call *clientCall, out outcome) (reuse bool)
	seq     uint64     // net/rpc's sequence number; for deliverRPC
	reply   any        // where the reply's data goes, for deliverDirect; the *rpc.Call, for deliverGo
	done    chan error // the call's outcome; for deliverDirect

	// In the pending set's list or heap, by deadline: nanoseconds since the
	// set's epoch, which keeps a call in 128 bytes.
	deadline   int64
	prev, next *clientCall // in the list
}

// outcome is how a call ended: with a reply or an error reply from the
// server, or with a verdict of the codec's own (a timeout, the end of the
// connection).
type outcome struct {
	err    error           // an error reply or a verdict; nil for a reply
	data   json.RawMessage // a reply's data, inside frame
	frame  []byte          // the read buffer holding data; nil for a verdict
	closed bool            // the connection is done: err says why
}

// response is a reply (or a verdict) on its way to net/rpc.
type response struct {
	seq   uint64
	err   string
	data  []byte
	frame []byte // the buffer data lives in, returned to free once read
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
		responses:  make(chan response),
		free:       make(chan []byte, 2),
		done:       make(chan struct{}),
		enc:        newEncoder(),
		pending:    pendingSet{byID: make(map[idKey]*clientCall), epoch: time.Now()},
	}
	c.pending.timeout = opts.Timeout
	if c.pending.timeout == 0 {
		c.pending.timeout = DefaultTimeout
	}
	c.pending.expire = c.expireDue
	c.events.init(opts.OnEvent, opts.MaxQueuedEventBytes, c.logf)
	c.names.fn = opts.TypeName
	if c.names.fn == nil {
		c.names.fn = TypeName
	}
	c.free <- nil
	c.free <- nil
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.read()
	return c
}

// WriteRequest sends a request for net/rpc. The call has the client's
// timeout: net/rpc gives it no context.
func (c *ClientCodec) WriteRequest(r *rpc.Request, body any) error {
	call := c.newCall(deliverRPC)
	call.seq = r.Seq
	err := c.send(call, r.ServiceMethod, body, 0)
	if err != nil {
		c.freeCall(call)
	}
	return err
}

// newCall returns a clientCall from the pool, for deliver.
func (c *ClientCodec) newCall(deliver func(c *ClientCodec, call *clientCall, out outcome) bool) *clientCall {
	call, _ := c.calls.Get().(*clientCall)
	if call == nil {
		call = new(clientCall)
	}
	call.deliver = deliver
	return call
}

// freeCall puts call back in the pool. No one may refer to it any more: it
// is out of the pending set and its outcome has been taken. Its done
// channel, empty again, stays with it.
func (c *ClientCodec) freeCall(call *clientCall) {
	*call = clientCall{done: call.done}
	c.calls.Put(call)
}

// ReadResponseHeader waits for the next reply or verdict for net/rpc.
func (c *ClientCodec) ReadResponseHeader(r *rpc.Response) error {
	select {
	case resp := <-c.responses:
		c.cur = resp
		r.Seq = resp.seq
		r.Error = resp.err
		return nil
	case <-c.done:
		return c.closedErr()
	}
}

// ReadResponseBody decodes the current reply's data into x; nil x discards it.
//
// net/rpc treats an error here as the end of the connection, as it does for
// its own codecs: a reply that does not decode into the stock client's reply
// value fails every pending call. [ClientCodec.Call] fails only its own call.
func (c *ClientCodec) ReadResponseBody(x any) error {
	resp := c.cur
	c.cur = response{}
	var err error
	if x != nil && resp.data != nil && !isNull(resp.data) {
		err = unmarshalData(resp.data, x, false)
	}
	if resp.frame != nil {
		c.free <- reusable(resp.frame)
	}
	return err
}

// timeoutKey is the context key of [WithTimeout].
type timeoutKey struct{}

// WithTimeout returns a copy of ctx that gives the calls made with it by
// [ClientCodec.Call] a timeout of their own, d, in place of the client's
// [ClientOptions.Timeout]: the counterpart of the JavaScript client's
// per-request timeoutMs. When d passes without a reply the call fails as it
// would at the client's timeout, with an [*Error] matching [ErrTimeout].
//
// context.WithTimeout bounds a call too (its error then matches
// context.DeadlineExceeded); WithTimeout differs in its error, and in its
// cost: the codec times the call out with the one timer it keeps for all of
// its calls. When ctx has a deadline as well, the call ends at whichever
// comes first. Zero d means the client's timeout (for a context without a
// deadline); negative d means no timeout but the context's.
func WithTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, timeoutKey{}, d)
}

// Call sends a request for serviceMethod and waits for its reply, which it
// decodes into reply. It returns when the reply comes; when ctx ends (the
// error then wraps ctx.Err()); or when the call's timeout passes (an [*Error]
// matching [ErrTimeout]). The timeout is the one [WithTimeout] gave ctx, if
// any; else, when ctx has a deadline, none: the deadline bounds the call,
// whether it is later or earlier than the client's timeout; else the
// client's [ClientOptions.Timeout]. An error reply is an [*Error]. A call
// that ended early never writes into reply afterwards. ctx bounds the call
// only: ending it never touches the connection.
func (c *ClientCodec) Call(ctx context.Context, serviceMethod string, args, reply any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("codec: call %s: %w", serviceMethod, err)
	}
	var timeout time.Duration // the client's
	if d, ok := ctx.Value(timeoutKey{}).(time.Duration); ok && d != 0 {
		timeout = d
	} else if _, ok := ctx.Deadline(); ok {
		timeout = -1 // the deadline bounds the call
	}
	call := c.newCall(deliverDirect)
	call.reply = reply
	if call.done == nil {
		call.done = make(chan error, 1)
	}
	err := c.send(call, serviceMethod, args, timeout)
	if err == nil {
		select {
		case err = <-call.done:
		case <-ctx.Done():
			if c.remove(call.id, call) {
				err = fmt.Errorf("codec: call %s: %w", call.typ, ctx.Err())
			} else {
				// The reader took the reply first and is delivering it now.
				err = <-call.done
			}
		}
	}
	c.freeCall(call)
	return err
}

// Go starts a call of serviceMethod, as [rpc.Client.Go] does, and returns
// its *rpc.Call, which is sent on done once the reply (decoded into reply)
// or an error has come. done must be buffered; nil means a new channel with
// room for 10 calls. As with net/rpc, a call whose done channel is full when
// it completes is dropped, not waited for.
//
// The errors are those of the stock client: an error reply or a timeout is
// an [rpc.ServerError] (see [ErrorCode] and [AsError]); after Close,
// [rpc.ErrShutdown]; a lost connection, a Disconnected [*Error]. One thing
// differs: a reply that does not decode into reply fails its own call only,
// where net/rpc ends the client.
//
// The reply is decoded and the call completed by the codec's reading
// goroutine: one goroutine hand-off fewer than a call through net/rpc, whose
// own reading goroutine stands in between.
func (c *ClientCodec) Go(serviceMethod string, args, reply any, done chan *rpc.Call) *rpc.Call {
	if done == nil {
		done = make(chan *rpc.Call, 10)
	} else if cap(done) == 0 {
		panic("codec: done channel is unbuffered")
	}
	rc := &rpc.Call{ServiceMethod: serviceMethod, Args: args, Reply: reply, Done: done}
	call := c.newCall(deliverGo)
	call.reply = rc
	if err := c.send(call, serviceMethod, args, 0); err != nil {
		c.freeCall(call)
		rc.Error = err
		completeGo(rc)
	}
	return rc
}

// deliverGo completes a call of [ClientCodec.Go], with the errors that
// net/rpc would give it.
func deliverGo(c *ClientCodec, call *clientCall, out outcome) (reuse bool) {
	rc := call.reply.(*rpc.Call)
	switch {
	case out.closed:
		rc.Error = out.err
	case out.err != nil:
		rc.Error = rpc.ServerError(out.err.Error())
	case rc.Reply != nil && out.data != nil && !isNull(out.data):
		if err := unmarshalData(out.data, rc.Reply, false); err != nil {
			rc.Error = fmt.Errorf("codec: cannot decode the reply to %s: %w", call.typ, err)
		}
	}
	c.freeCall(call)
	completeGo(rc)
	return true
}

// completeGo sends a finished call on its done channel, unless the channel
// is full: the caller chose its capacity, as with net/rpc.
func completeGo(rc *rpc.Call) {
	select {
	case rc.Done <- rc:
	default:
	}
}

// deliverRPC hands a call's outcome to net/rpc's reading goroutine, which
// then reads the reply's data from frame and frees it.
func deliverRPC(c *ClientCodec, call *clientCall, out outcome) (reuse bool) {
	seq := call.seq
	c.freeCall(call)
	if out.closed {
		// net/rpc learns of the end from ReadResponseHeader and fails
		// every call it still has.
		return true
	}
	resp := response{seq: seq}
	if out.err != nil {
		resp.err = out.err.Error()
	} else {
		resp.data, resp.frame = out.data, out.frame
	}
	select {
	case c.responses <- resp:
		return resp.frame == nil
	case <-c.done:
		return true
	}
}

// deliverDirect decodes a reply into the call's reply value and tells
// [ClientCodec.Call] the outcome; Call frees the call once it has it.
func deliverDirect(c *ClientCodec, call *clientCall, out outcome) (reuse bool) {
	switch {
	case out.err != nil:
		call.done <- out.err
	case call.reply != nil && out.data != nil && !isNull(out.data):
		if err := unmarshalData(out.data, call.reply, false); err != nil {
			call.done <- fmt.Errorf("codec: cannot decode the reply to %s: %w", call.typ, err)
		} else {
			call.done <- nil
		}
	default:
		call.done <- nil
	}
	return true
}

// Notify sends a notification: the server runs serviceMethod with args and
// sends nothing back.
func (c *ClientCodec) Notify(ctx context.Context, serviceMethod string, args any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, typ := c.names.lookup([]byte(serviceMethod))
	c.enc.start(nil, typ, "")
	if err := c.enc.data(args); err != nil {
		return fmt.Errorf("codec: cannot encode the data of %s: %w", typ, err)
	}
	return c.write(ctx)
}

// send registers call, with its own timeout (zero: the client's; negative:
// none), and writes its request.
func (c *ClientCodec) send(call *clientCall, serviceMethod string, args any, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, call.typ = c.names.lookup([]byte(serviceMethod))
	id, err := c.ids.next()
	if err != nil {
		return fmt.Errorf("codec: cannot make an id: %w", err)
	}
	var idJSON [2 + len(idKey{})]byte
	idJSON[0], idJSON[len(idJSON)-1] = '"', '"'
	encodeUUID(idJSON[1:], id)
	key := idKey(idJSON[1 : len(idJSON)-1])
	call.id = key
	c.enc.start(idJSON[:], call.typ, "")
	if err := c.enc.data(args); err != nil {
		return fmt.Errorf("codec: cannot encode the data of %s: %w", call.typ, err)
	}

	// Register before writing: the reply may come before WriteFrame returns.
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return c.callClosedErr()
	default:
	}
	c.pending.add(call, timeout)
	c.mu.Unlock()

	// Once registered, the call may be delivered (timed out, failed by the
	// end of the connection), freed and taken from the pool again: only its
	// id, and its pointer, are still ours.
	if err := c.write(c.ctx); err != nil {
		if !c.remove(key, call) {
			// The connection ended during the write, and the reader (or
			// the timer) has taken the call already: its verdict is the
			// call's outcome, which must come once.
			return nil
		}
		return err
	}
	return nil
}

func (c *ClientCodec) write(ctx context.Context) error {
	err := c.conn.WriteFrame(ctx, c.enc.buf.Bytes())
	c.enc.trim()
	if err != nil {
		select {
		case <-c.done:
			return c.callClosedErr()
		default:
		}
		return fmt.Errorf("codec: write: %w", err)
	}
	return nil
}

// remove takes call, registered under id, out of the pending set. It
// reports false when the call was no longer there: its reply or verdict is
// already on its way.
func (c *ClientCodec) remove(id idKey, call *clientCall) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending.byID[id] != call {
		return false
	}
	c.pending.remove(call)
	return true
}

// claim takes the call with the given id out of the pending set, for its
// reply to be delivered.
func (c *ClientCodec) claim(id []byte) *clientCall {
	if len(id) != len(idKey{}) {
		return nil // not an id of ours
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	call := c.pending.byID[idKey(id)]
	if call != nil {
		c.pending.remove(call)
	}
	return call
}

// expireDue runs on the pending set's timer: it fails the calls whose
// timeout has passed.
func (c *ClientCodec) expireDue() {
	c.mu.Lock()
	due := c.pending.takeDue()
	c.mu.Unlock()
	for _, call := range due {
		call.deliver(c, call, outcome{err: timeoutError(call.typ)})
	}
}

// read is the codec's reading goroutine: it matches replies to calls and
// hands events to OnEvent, until the connection ends.
func (c *ClientCodec) read() {
	defer close(c.readerDone)
	for {
		buf := <-c.free
		frame, err := c.conn.ReadFrame(c.ctx, buf)
		if errors.Is(err, ErrBinaryFrame) {
			c.badFrame("binary frame")
			c.free <- reusable(frame)
			continue
		}
		if err != nil {
			c.shutdown(err)
			return
		}
		if c.dispatch(frame) {
			c.free <- reusable(frame)
		}
	}
}

// dispatch delivers one frame. It reports whether frame is free for reuse;
// false means it went to net/rpc, which frees it.
func (c *ClientCodec) dispatch(frame []byte) bool {
	env, err := parseEnvelope(frame)
	if err != nil {
		c.badFrame(err.Error())
		return true
	}
	typ, _ := stringValue(env.typ)
	isError := string(typ) == "error"
	if !env.hasID() {
		if isError {
			code, msg := errorFields(&env)
			c.logf("the server reported an error", "code", code, "message", msg)
		} else if len(typ) > 0 {
			c.events.add(typ, env.data)
		} else {
			c.badFrame("frame without id and type")
		}
		return true
	}
	id, ok := stringValue(env.id)
	var call *clientCall
	if ok {
		call = c.claim(id)
	}
	if call == nil {
		c.late.Add(1)
		return true
	}
	if isError {
		code, msg := errorFields(&env)
		return call.deliver(c, call, outcome{err: &Error{Code: code, Message: msg}})
	}
	return call.deliver(c, call, outcome{data: env.data, frame: frame})
}

// errorFields returns the code and message of an error frame. A foreign
// server may leave them out or send them in another shape: the client keeps
// what it can.
func errorFields(env *envelope) (code, message string) {
	code = CodeServerError
	if b, ok := stringValue(env.code); ok && validWireCode(string(b)) {
		code = string(b)
	} else if env.code != nil && validWireCode(string(env.code)) {
		code = string(env.code) // a number, say
	}
	if b, ok := stringValue(env.message); ok {
		message = string(b)
	}
	return code, message
}

// shutdown records why the connection ended and fails every pending call.
func (c *ClientCodec) shutdown(cause error) {
	c.mu.Lock()
	if c.closeCalled.Load() {
		c.doneErr = io.EOF
	} else {
		c.doneErr = &Error{Code: CodeDisconnected, Message: "connection closed: " + cause.Error()}
	}
	pending := c.pending.takeAll()
	close(c.done)
	c.mu.Unlock()
	for _, call := range pending {
		call.deliver(c, call, outcome{err: c.callClosedErr(), closed: true})
	}
	c.conn.Close()
}

// closedErr is what net/rpc gets once the connection is done: io.EOF after
// Close (net/rpc reports rpc.ErrShutdown), else a Disconnected *Error.
func (c *ClientCodec) closedErr() error {
	<-c.done
	return c.doneErr
}

// callClosedErr is what a call of [ClientCodec.Call] gets once the
// connection is done.
func (c *ClientCodec) callClosedErr() error {
	if c.doneErr == io.EOF {
		return rpc.ErrShutdown
	}
	return c.doneErr
}

// Stats returns what the client has dropped so far.
func (c *ClientCodec) Stats() ClientStats {
	return ClientStats{
		LateReplies:   c.late.Load(),
		DroppedEvents: c.events.dropped.Load(),
		BadFrames:     c.badFrames.Load(),
	}
}

// Done returns a channel that is closed once the connection has ended, by
// Close or by the peer.
func (c *ClientCodec) Done() <-chan struct{} { return c.done }

// Close closes the connection and waits for the reading goroutine to end.
// Pending calls fail: net/rpc's with [rpc.ErrShutdown], those of Call too.
// Events still queued are not delivered. How long Close takes is up to the
// Conn's Close: over WebSocket, a short closing handshake.
func (c *ClientCodec) Close() error {
	if c.closeCalled.Swap(true) {
		<-c.readerDone
		return nil
	}
	c.events.stop()
	c.cancel()
	err := c.conn.Close()
	<-c.readerDone
	return err
}

func (c *ClientCodec) badFrame(why string) {
	c.badFrames.Add(1)
	c.logf("dropped a frame", "error", why)
}

func (c *ClientCodec) logf(msg string, args ...any) {
	if c.logger != nil {
		c.logger.Warn("codec: "+msg, args...)
	}
}
