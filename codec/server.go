package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/rpc"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/semaphore"
)

// DefaultMaxInFlight is how many requests one connection may have in flight
// at once unless [ServerOptions.MaxInFlight] says otherwise.
const DefaultMaxInFlight = 64

// ServerOptions configures a [ServerCodec]. A nil *ServerOptions is valid and
// means all defaults.
type ServerOptions struct {
	// MethodName maps a request's type to a net/rpc "Service.Method" name.
	// Nil means [MethodName]: "user.get" → "User.Get".
	MethodName func(typ string) string

	// MaxInFlight caps the requests of this connection being served at once,
	// with the work they leave behind (see [ServerCodec.AfterReply]). At the
	// cap the codec stops reading the connection until one is done, so a
	// flood from one peer is held back by the transport rather than by
	// memory. Zero means [DefaultMaxInFlight]; negative means no cap on the
	// count, the byte budgets alone bounding what a connection holds.
	MaxInFlight int

	// Logger receives what cannot be told to the peer: failed notifications,
	// replies that could not be written. Nil means silent.
	Logger *slog.Logger

	// OnCall, if set, is called once for every request served by a method,
	// after its reply was written (for a notification: after it ran). It must
	// not block: it runs on the connection's reply path. It is called from
	// many goroutines at once, those of every request in flight: guard what
	// it shares.
	OnCall func(CallInfo)

	// MaxFrameSize is the largest frame the codec writes, in bytes: the
	// peer's read limit. A reply that would be larger is replaced by an error
	// reply with code TooLarge; a larger event is refused with [ErrTooLarge].
	// Zero means [DefaultMaxFrameSize]; negative means no limit.
	MaxFrameSize int

	// MaxBytes bounds, in bytes, what this connection holds at once: its
	// requests in flight (their frames, and a fixed cost for each request and
	// for each function of [ServerCodec.AfterReply] still running), the
	// reply being written and the frames queued to be written. While it is
	// spent the codec stops reading, as at the in-flight cap. Zero means
	// [DefaultMaxBytes]; negative means no bound of its own.
	MaxBytes int64

	// Budget, if set, is a budget shared with other connections, charged
	// with the same bytes as MaxBytes: while it is spent, every codec that
	// shares it stops reading.
	Budget *Budget

	// MaxQueuedBytes bounds the frames waiting to be written while another
	// is written, in bytes. Replies wait for room; events wait or are refused
	// (see [ServerCodec.SendEvent]). Zero means [DefaultMaxQueuedBytes];
	// negative means no bound (the transport's write timeout still bounds a
	// peer that stops reading).
	MaxQueuedBytes int

	// PlainError, if set, maps the text of a plain error, one that a method
	// returned without a code (see [Error]) and that is sent with code
	// ServerError, to the message the client sees. It is called with the
	// request's type, for replies only (a notification's error is logged,
	// never sent), from many goroutines at once. Nil sends the text verbatim:
	// a driver's error, a file path, a host name reach the client as they
	// are. [HidePlainErrors] returns one that logs the text and sends a
	// generic message.
	PlainError func(typ, text string) string
}

// Defaults of [ServerOptions].
const (
	DefaultMaxFrameSize   = 1 << 20  // bytes: 1 MiB, the read limit of rpcws
	DefaultMaxBytes       = 4 << 20  // bytes held per connection: 4 MiB
	DefaultMaxQueuedBytes = 64 << 10 // bytes queued per connection: 64 KiB
)

// Limits on the fields of a request. A request over them gets BadRequest,
// and nothing of it is kept.
const (
	MaxTypeLength = 256  // bytes of a request's type
	MaxIDLength   = 1024 // bytes of a request's id, as raw JSON text
)

// What a request costs against a budget beyond its frame: the goroutine that
// net/rpc runs it on and the codec's record of it; and for each function
// given to [ServerCodec.AfterReply], the goroutine it runs on.
const (
	requestCost    = 4 << 10
	afterReplyCost = 4 << 10
)

// ErrTooLarge is the error of an event larger than the peer's frame limit.
var ErrTooLarge = errors.New("codec: frame larger than the peer's limit")

// CallInfo describes one served request, for metrics.
type CallInfo struct {
	Type         string        // the request's type, as sent
	Notification bool          // true when the request had no id
	Duration     time.Duration // from reading the request to writing its reply
	Code         string        // the error code of the reply; "" for success
}

// ServerCodec is an [rpc.ServerCodec] that speaks the wire protocol over a
// [Conn]. Hand it to [rpc.ServeCodec] or [rpc.Server.ServeCodec].
//
// It answers bad frames itself (ParseError, BadRequest) and reads on, so that
// net/rpc, which drops a connection on any read error, only ever sees good
// requests. It maps net/rpc's uint64 Seq to the peer's ids and back, and the
// error strings of net/rpc and of services to protocol codes.
type ServerCodec struct {
	conn     Conn
	ctx      context.Context // ends when the codec closes
	cancel   context.CancelFunc
	logger   *slog.Logger
	onCall   func(CallInfo)
	plainErr func(typ, text string) string // ServerOptions.PlainError
	maxSlots int64
	slots    *semaphore.Weighted // one per request in flight
	maxFrame int                 // <= 0: none
	own      Budget              // this connection's bytes
	shared   *Budget             // the server's; may be nil
	out      outbox              // the one writer of conn

	// Owned by the reading goroutine (net/rpc reads requests on one).
	names nameCache
	buf   []byte // the frame being read; reused
	data  []byte // the current request's data; aliases buf
	seq   uint64

	mu       sync.Mutex // guards pending
	pending  requestTable
	draining atomic.Bool
	paused   atomic.Bool // the reader waits for a slot or for budget

	wmu sync.Mutex // guards enc; held while a reply or error is written
	enc *encoder

	closeOnce sync.Once
	closeErr  error
}

// serverRequest is what the codec remembers of a request until its reply.
// It is kept small (at most 128 bytes), so that the pending map holds it in
// place and remembering a request costs no allocation.
type serverRequest struct {
	typ   string
	start time.Time // zero unless OnCall is set
	cost  int32     // bytes charged against the budgets until done
	after *[]func() // to run once the reply is written; nil for most

	// The id, raw JSON as the peer sent it: in idBuf when it fits, as a
	// quoted UUID does, so that remembering it costs no allocation, else in
	// idBig. idLen is -1 for a notification.
	idLen int32
	idBuf [40]byte
	idBig []byte
}

// requestTable holds the requests in flight by seq. The first is kept in
// a record of its own, made on the connection's first request and reused,
// and only the others in a map, made when first needed: a connection that
// has one call in flight at a time, as most do, never makes the map, which
// would hold a kilobyte for the rest of the connection's life once it had
// held one request (a map keeps its storage when emptied).
type requestTable struct {
	oneSeq uint64         // of the request in one; 0: none (seqs start at 1)
	one    *serverRequest // nil until the first request
	more   map[uint64]serverRequest
}

func (t *requestTable) put(seq uint64, r serverRequest) {
	if t.oneSeq == 0 {
		if t.one == nil {
			t.one = new(serverRequest)
		}
		t.oneSeq, *t.one = seq, r
		return
	}
	if t.more == nil {
		t.more = make(map[uint64]serverRequest)
	}
	t.more[seq] = r
}

// update runs f on the request numbered seq, in place, and reports whether
// there is one.
func (t *requestTable) update(seq uint64, f func(*serverRequest)) bool {
	if seq != 0 && seq == t.oneSeq {
		f(t.one)
		return true
	}
	r, ok := t.more[seq]
	if ok {
		f(&r)
		t.more[seq] = r
	}
	return ok
}

// take moves the request numbered seq into r and reports whether there was
// one. It is not inlined: its temporaries would stay in the caller's stack
// frame while the reply is written, which, on the goroutine net/rpc starts
// for a request, costs a stack growth on every call.
//
//go:noinline
func (t *requestTable) take(seq uint64, r *serverRequest) bool {
	if seq != 0 && seq == t.oneSeq {
		*r = *t.one
		t.oneSeq, *t.one = 0, serverRequest{}
		return true
	}
	m, ok := t.more[seq]
	if ok {
		*r = m
		delete(t.more, seq)
	}
	return ok
}

func (t *requestTable) len() int {
	n := len(t.more)
	if t.oneSeq != 0 {
		n++
	}
	return n
}

func newServerRequest(typ string, id []byte) serverRequest {
	r := serverRequest{typ: typ, idLen: int32(len(id))}
	switch {
	case id == nil:
		r.idLen = -1
	case len(id) <= len(r.idBuf):
		copy(r.idBuf[:], id)
	default:
		r.idBig = append([]byte(nil), id...)
	}
	return r
}

// id returns the request's id, nil for a notification.
func (r *serverRequest) id() []byte {
	switch {
	case r.idLen < 0:
		return nil
	case r.idBig != nil:
		return r.idBig
	}
	return r.idBuf[:r.idLen]
}

var _ rpc.ServerCodec = (*ServerCodec)(nil)

// NewServerCodec returns a server codec that serves requests read from conn.
// The codec owns conn from then on and closes it in [ServerCodec.Close].
func NewServerCodec(conn Conn, opts *ServerOptions) *ServerCodec {
	if opts == nil {
		opts = &ServerOptions{}
	}
	c := &ServerCodec{
		conn:     conn,
		logger:   opts.Logger,
		onCall:   opts.OnCall,
		plainErr: opts.PlainError,
		maxSlots: int64(opts.MaxInFlight),
		maxFrame: opts.MaxFrameSize,
		shared:   opts.Budget,
		enc:      newEncoder(),
	}
	switch {
	case c.maxSlots == 0:
		c.maxSlots = DefaultMaxInFlight
	case c.maxSlots < 0:
		c.maxSlots = math.MaxInt32 // no cap on the count
	}
	if c.maxFrame == 0 {
		c.maxFrame = DefaultMaxFrameSize
	}
	switch {
	case opts.MaxBytes == 0:
		c.own.max = DefaultMaxBytes
	case opts.MaxBytes > 0:
		c.own.max = opts.MaxBytes
	}
	c.out.conn = conn
	c.out.max = int64(opts.MaxQueuedBytes)
	switch {
	case c.out.max == 0:
		c.out.max = DefaultMaxQueuedBytes
	case c.out.max < 0:
		c.out.max = math.MaxInt64
	}
	c.out.charge = c.charge
	c.slots = semaphore.NewWeighted(c.maxSlots)
	c.names.fn = opts.MethodName
	if c.names.fn == nil {
		c.names.fn = MethodName
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.out.ctx = c.ctx
	return c
}

// charge adds n bytes (negative: frees) to this connection's budget and to
// the shared one.
func (c *ServerCodec) charge(n int64) {
	c.own.add(n)
	c.shared.add(n)
}

// waitRoom returns once a request may be read: a slot is free and neither
// budget is spent. It holds the slot it took.
func (c *ServerCodec) waitRoom() error {
	c.paused.Store(true)
	defer c.paused.Store(false)
	if err := c.own.wait(c.ctx); err != nil {
		return err
	}
	if err := c.shared.wait(c.ctx); err != nil {
		return err
	}
	if c.ctx.Err() == nil && c.slots.TryAcquire(1) {
		// Acquire would ask ctx for its Done channel, which a context
		// makes on first asking and keeps: 100 bytes on every connection
		// that ever made a call.
		return nil
	}
	return c.slots.Acquire(c.ctx, 1)
}

// ReadPaused reports whether the codec has stopped reading its connection
// for now: at the in-flight cap, or while a budget is spent. A transport
// whose keepalive needs reads (pongs arrive with them) learns here not to
// count on them.
func (c *ServerCodec) ReadPaused() bool { return c.paused.Load() }

// ReadRequestHeader reads frames until one is a request or notification for
// net/rpc to serve. Frames that are not answer themselves with an error reply
// (or, without an id, a log line) and the codec reads on.
func (c *ServerCodec) ReadRequestHeader(r *rpc.Request) error {
	// This loop is all that is on the stack while the connection waits for
	// its next frame, which is most of its life: what the frame takes to
	// handle is in handleFrame's stack frame, not in this one. (The reading
	// goroutine's stack stays at 4 KB while the wait is shallow enough.)
	for {
		frame, err := c.conn.ReadFrame(c.ctx, reusable(c.buf))
		binary := errors.Is(err, ErrBinaryFrame)
		if err != nil && !binary {
			if c.ctx.Err() != nil {
				return io.EOF // closed by us: net/rpc ends quietly
			}
			return err
		}
		if ok, err := c.handleFrame(frame, binary, r); ok {
			return err
		}
	}
}

// handleFrame handles a frame that ReadRequestHeader read. It reports true when
// ReadRequestHeader returns err: the frame is a request or notification for
// net/rpc to serve (err nil), or the codec is closing. It reports false when
// the frame answered itself (with an error reply, or a log line) and the
// codec reads on.
func (c *ServerCodec) handleFrame(frame []byte, binary bool, r *rpc.Request) (bool, error) {
	if binary {
		c.replyError(nil, CodeParseError, "binary frames are not supported")
		return false, nil
	}
	c.buf = frame
	if !utf8.Valid(frame) {
		// A text frame must be UTF-8 (RFC 6455): nothing of it can be
		// echoed, not even its id.
		c.replyError(nil, CodeParseError, "frame is not valid UTF-8")
		return false, nil
	}
	env, err := parseEnvelope(frame)
	if err != nil {
		c.replyError(nil, CodeParseError, err.Error())
		return false, nil
	}
	hasID := env.hasID()
	if len(env.id) > MaxIDLength {
		c.replyError(nil, CodeBadRequest, fmt.Sprintf("id is longer than %d bytes", MaxIDLength))
		return false, nil
	}
	var id []byte
	if hasID {
		id = env.id
	}
	typ, ok := stringValue(env.typ)
	msg := ""
	switch {
	case env.typ == nil:
		msg = "type is missing"
	case !ok || len(typ) == 0:
		msg = "type must be a non-empty string"
	case len(typ) > MaxTypeLength:
		msg = fmt.Sprintf("type is longer than %d bytes", MaxTypeLength)
	}
	if msg != "" {
		if hasID {
			c.replyError(id, CodeBadRequest, msg)
		} else {
			c.log("dropped a notification", "code", CodeBadRequest, "error", msg)
		}
		return false, nil
	}
	typStr, method := c.names.lookup(typ)
	req := newServerRequest(typStr, id)

	// Drain waits for all slots: check before queueing behind it, and
	// again once a slot is had.
	if c.refuse(id) {
		return false, nil
	}
	if err := c.waitRoom(); err != nil {
		return true, io.EOF
	}
	if c.onCall != nil {
		req.start = time.Now()
	}
	if c.refuse(id) { // before the slot goes back, which lets Drain end
		c.slots.Release(1)
		return false, nil
	}
	req.cost = int32(len(frame)) + requestCost // frames are far below 2 GiB
	c.charge(int64(req.cost))
	c.mu.Lock()
	c.seq++
	c.pending.put(c.seq, req)
	c.mu.Unlock()

	c.data = env.data
	r.ServiceMethod = method
	r.Seq = c.seq
	return true, nil
}

// refuse answers the request with the given id (nil: a notification) with
// Unavailable if the codec is draining, and reports whether it did.
func (c *ServerCodec) refuse(id []byte) bool {
	draining := c.draining.Load()
	if draining && id != nil {
		c.replyError(id, CodeUnavailable, "server is shutting down")
	}
	return draining
}

// ReadRequestBody decodes the current request's data into x. Absent or null
// data leaves x at its zero value. A nil x discards the data.
func (c *ServerCodec) ReadRequestBody(x any) error {
	data := c.data
	c.data = nil
	if x == nil || data == nil || isNull(data) {
		return nil
	}
	if err := unmarshalData(data, x, true); err != nil { // handleFrame checked the frame's UTF-8
		// net/rpc replies with this error's text, which WriteResponse maps
		// back to the code.
		return &Error{Code: CodeInvalidParams, Message: invalidData(err)}
	}
	return nil
}

// invalidData says what in a request's data did not fit, in the words of
// the JSON the peer sent rather than of the Go types it missed: "data.id
// must be a string, not a number".
func invalidData(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return "invalid data: " + strings.TrimPrefix(err.Error(), "json: ")
	}
	where := "data"
	if te.Field != "" {
		where += "." + te.Field
	}
	return fmt.Sprintf("%s must be %s, not %s", where, jsonKind(te.Type), article(te.Value))
}

// jsonKind names the JSON values that decode into t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another kind of value"
}

// article puts "a" or "an" before what encoding/json calls the value it
// found: "string", "number", "number 1.5", "bool", "array", "object".
func article(v string) string {
	switch {
	case v == "bool":
		return "a boolean"
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ") // the number found: "-1"
	case v == "array" || v == "object":
		return "an " + v
	}
	return "a " + v
}

// WriteResponse writes the reply to the request numbered r.Seq: its result,
// or an error reply with the code that r.Error carries. Nothing is written
// for a notification, nor once [ServerCodec.StopWrites] was called. Then the
// functions given to [ServerCodec.AfterReply] start; the request counts as
// in flight until they have returned.
func (c *ServerCodec) WriteResponse(r *rpc.Response, body any) error {
	c.mu.Lock()
	var req serverRequest
	ok := c.pending.take(r.Seq, &req)
	c.mu.Unlock()
	if !ok {
		return nil // never read by this codec; nothing to answer
	}

	var code, message string
	if r.Error != "" {
		code, message = classify(r.Error, req.typ)
	}
	id := req.id()
	if code == CodeServerError && c.plainErr != nil && id != nil {
		message = c.plainErr(req.typ, message)
	}
	var err error
	switch {
	case id == nil:
		if code != "" {
			c.log("notification failed", "type", req.typ, "code", code, "error", message)
		}
	case code != "":
		err = c.replyError(id, code, message)
	default:
		c.wmu.Lock()
		c.enc.start(id, req.typ, ".response")
		if encErr := c.enc.data(body); encErr != nil {
			code, message = CodeServerError, "cannot encode the result: "+encErr.Error()
			c.enc.errorFrame(id, code, message)
		} else if c.maxFrame > 0 && c.enc.buf.Len() > c.maxFrame {
			code = CodeTooLarge
			message = fmt.Sprintf("the reply to %s would be %d bytes, over the frame limit of %d", req.typ, c.enc.buf.Len(), c.maxFrame)
			c.enc.errorFrame(id, code, message)
		}
		err = c.out.write(c.ctx, c.enc.buf.Bytes(), true, true)
		c.enc.trim()
		c.wmu.Unlock()
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		c.debug("cannot write a reply", "type", req.typ, "error", err)
	}
	if c.onCall != nil {
		c.onCall(CallInfo{Type: req.typ, Notification: id == nil, Duration: time.Since(req.start), Code: code})
	}
	c.runAfter(&req)
	return err
}

// AfterReply arranges for f to run on a goroutine of its own once the reply
// to the request numbered seq has been written (for a notification: once the
// method has returned). Until f returns, the request still counts against
// the in-flight cap and the budgets, so work that a client starts after its
// replies is bounded as its requests are. It reports false, and runs nothing,
// when seq is not a request in flight: call it before the method returns.
func (c *ServerCodec) AfterReply(seq uint64, f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending.update(seq, func(req *serverRequest) {
		if req.after == nil {
			req.after = new([]func())
		}
		*req.after = append(*req.after, f)
	})
}

// runAfter starts the request's AfterReply functions, and frees its slot
// and bytes once they have all returned.
func (c *ServerCodec) runAfter(req *serverRequest) {
	if req.after == nil {
		c.done(int64(req.cost))
		return
	}
	after := *req.after
	cost := int64(req.cost) + int64(len(after))*afterReplyCost
	c.charge(cost - int64(req.cost))
	var left atomic.Int32
	left.Store(int32(len(after)))
	for _, f := range after {
		go func() {
			defer func() {
				if left.Add(-1) == 0 {
					c.done(cost)
				}
			}()
			f()
		}()
	}
}

// done frees a finished request's slot and bytes.
func (c *ServerCodec) done(cost int64) {
	c.charge(-cost)
	c.slots.Release(1)
}

// replyError writes an error reply; id nil means an error that belongs to no
// request.
func (c *ServerCodec) replyError(id []byte, code, message string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.out.write(c.ctx, c.enc.errorFrame(id, code, message), true, true)
	if err != nil && !errors.Is(err, ErrClosed) {
		c.debug("cannot write an error reply", "code", code, "error", err)
	}
	return err
}

// SendEvent writes an encoded event frame (see [EncodeEvent]) after the
// frames handed to the codec before it. When the connection's queue is
// full it waits for room until ctx ends, and then returns ctx's error; the
// connection is left as it is. It returns [ErrTooLarge] for a frame over
// the peer's limit and [ErrClosed] once the codec writes no more. frame
// must not change afterwards; it may be shared between connections.
func (c *ServerCodec) SendEvent(ctx context.Context, frame []byte) error {
	if c.maxFrame > 0 && len(frame) > c.maxFrame {
		return ErrTooLarge
	}
	return c.out.write(ctx, frame, false, true)
}

// TrySendEvent is [ServerCodec.SendEvent] without waiting: when the queue
// is full it returns [ErrQueueFull] at once.
func (c *ServerCodec) TrySendEvent(frame []byte) error {
	if c.maxFrame > 0 && len(frame) > c.maxFrame {
		return ErrTooLarge
	}
	return c.out.write(c.ctx, frame, false, false)
}

// Flush waits until every frame handed to the codec has been written, or
// ctx ends.
func (c *ServerCodec) Flush(ctx context.Context) error { return c.out.flush(ctx) }

// StopWrites makes the codec write nothing more: frames queued are dropped,
// replies of requests still running are not written, and the codec reads no
// further request (net/rpc then ends, and closes the codec). A transport
// that tears a connection down calls it before it ends the contexts that
// methods watch, so that a method cut short never has a success reply
// written.
func (c *ServerCodec) StopWrites() {
	c.out.seal()
	c.cancel()
}

// Hold reserves n bytes against this connection's budget and the shared
// one, for a transport that reads a large frame: it reports false, and
// reserves nothing, when the shared budget has no room for them. (The
// connection's own budget may run over by a frame: the codec stops reading
// the connection before the next one.) Give them back with
// [ServerCodec.Release] once the frame is read.
func (c *ServerCodec) Hold(n int64) bool {
	if !c.shared.room(n) {
		return false
	}
	c.charge(n)
	return true
}

// Release gives back n bytes reserved with [ServerCodec.Hold].
func (c *ServerCodec) Release(n int64) { c.charge(-n) }

// classify maps the error text that net/rpc hands to WriteResponse to a code
// and message: the frozen "[Code] Message" of an *Error, net/rpc's own
// lookup failures, or else a plain error.
func classify(text, typ string) (code, message string) {
	if e, ok := parseError(text); ok && ValidCode(e.Code) && e.Code != CodeTimeout {
		return e.Code, e.Message
	}
	// An error that wraps an *Error, as fmt.Errorf("…: %w", err) does, reads
	// "context: [Code] message": it carries that code, and its whole context.
	for i := strings.Index(text, ": ["); i >= 0; {
		if e, ok := parseError(text[i+2:]); ok && ValidCode(e.Code) && e.Code != CodeTimeout {
			return e.Code, text[:i+2] + e.Message
		}
		j := strings.Index(text[i+3:], ": [")
		if j < 0 {
			break
		}
		i += 3 + j
	}
	for _, p := range [...]string{"rpc: can't find service ", "rpc: can't find method ", "rpc: service/method request ill-formed: "} {
		if strings.HasPrefix(text, p) {
			return CodeMethodNotFound, "method not found: " + typ
		}
	}
	return CodeServerError, text
}

// InFlight returns the number of requests read but not yet answered.
func (c *ServerCodec) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending.len()
}

// Drain stops the codec taking new requests and waits until every request in
// flight has been answered, or ctx ends. Requests read after Drain began are
// answered at once with code Unavailable. Drain does not close the
// connection.
func (c *ServerCodec) Drain(ctx context.Context) error {
	c.draining.Store(true)
	if err := c.slots.Acquire(ctx, c.maxSlots); err != nil {
		return err
	}
	c.slots.Release(c.maxSlots)
	return nil
}

// Close closes the connection. net/rpc calls it when it stops serving.
func (c *ServerCodec) Close() error {
	c.closeOnce.Do(func() {
		c.StopWrites()
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

func (c *ServerCodec) log(msg string, args ...any) {
	if c.logger != nil {
		c.logger.Warn("codec: "+msg, args...)
	}
}

// debug logs what is routine, such as a reply to a client that has left.
func (c *ServerCodec) debug(msg string, args ...any) {
	if c.logger != nil {
		c.logger.Debug("codec: "+msg, args...)
	}
}

// EncodeEvent returns the frame of an unsolicited event:
// {"type":typ,"data":data}. A transport that offers push writes it to the
// connection; see package rpcws.
func EncodeEvent(typ string, data any) ([]byte, error) {
	e := newEncoder()
	e.start(nil, typ, "")
	if err := e.data(data); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}
