package codec

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ServerOptions configures a [ServerCodec]. A nil *ServerOptions is valid and
// means all defaults.
type ServerOptions struct {
	// MethodName maps a request's type to a net/rpc "Service.Method" name.
	// Nil means [MethodName]: "user.get" → "User.Get".
	MethodName func(typ string) string

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
	// reply with code TooLarge. Zero means [DefaultMaxFrameSize]; negative
	// means no limit.
	MaxFrameSize int

	// Bind, if set, sees the decoded argument of every request before its
	// method runs, with the request's number (for [ServerCodec.AfterReply]):
	// a transport binds what it gives methods to it.
	Bind func(args any, seq uint64)

	// Go, if set, runs a request's service on a goroutine for [ServerCodec.Serve]:
	// a transport may run it on a goroutine it keeps. Nil means a new
	// goroutine for each request.
	Go func(f func())

	// Admission decides when the codec takes another request, and counts
	// the bytes the connection holds. Nil means a new [Admission] with the
	// defaults.
	Admission *Admission

	// Outbox writes the codec's replies, in order with whatever else is
	// written to the connection (pushed events). Nil means a new [Outbox]
	// of the connection, with the default bound.
	Outbox *Outbox

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

// DefaultMaxFrameSize is the largest frame written or read, in bytes, unless
// an option says otherwise: 1 MiB.
const DefaultMaxFrameSize = 1 << 20

// Limits on the fields of a request. A request over them gets BadRequest,
// and nothing of it is kept.
const (
	MaxTypeLength = 256  // bytes of a request's type
	MaxIDLength   = 1024 // bytes of a request's id, as raw JSON text
)

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
// error strings of net/rpc and of services to protocol codes. It asks its
// [Admission] before it serves each request, and writes through its
// [Outbox].
type ServerCodec struct {
	conn     Conn
	adm      *Admission
	out      *Outbox
	logger   *slog.Logger
	onCall   func(CallInfo)
	bind     func(any, uint64)
	spawn    func(func())
	plainErr func(typ, text string) string // ServerOptions.PlainError
	maxFrame int                           // <= 0: none

	// Owned by the reading goroutine: net/rpc's ServeCodec reads on one,
	// and so does Serve.
	names nameCache
	buf   []byte // the frame being read, for ServeCodec; reused
	data  []byte // the current request's data, for ServeCodec; aliases buf
	seq   uint64

	mu      sync.Mutex // guards pending
	pending requestTable

	closeOnce sync.Once
	closeErr  error
}

var _ rpc.ServerCodec = (*ServerCodec)(nil)

// NewServerCodec returns a server codec that serves requests read from conn.
// The codec owns conn from then on and closes it in [ServerCodec.Close].
func NewServerCodec(conn Conn, opts *ServerOptions) *ServerCodec {
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	if o.Admission == nil {
		o.Admission = NewAdmission(nil)
	}
	if o.Outbox == nil {
		o.Outbox = NewOutbox(conn, o.Admission, 0)
	}
	c := &ServerCodec{
		conn:     conn,
		adm:      o.Admission,
		out:      o.Outbox,
		logger:   o.Logger,
		onCall:   o.OnCall,
		bind:     o.Bind,
		spawn:    o.Go,
		plainErr: o.PlainError,
		maxFrame: o.MaxFrameSize,
	}
	if c.maxFrame == 0 {
		c.maxFrame = DefaultMaxFrameSize
	}
	c.names.fn = o.MethodName
	if c.names.fn == nil {
		c.names.fn = MethodName
	}
	if c.spawn == nil {
		c.spawn = func(f func()) { go f() }
	}
	return c
}

// Serve serves the connection's requests with srv until the connection
// ends, then closes the codec. It reads on the calling goroutine and serves
// each request on a goroutine of its own with [rpc.Server.ServeRequest], as
// [rpc.Server.ServeCodec] would serve it, with two differences: the replies
// of requests that complete together leave in one send (ServeCodec writes
// one reply at a time), and the reading goroutine never decodes a request's
// data, which would grow its stack for as long as the connection lives
// (BenchmarkIdleConns).
func (c *ServerCodec) Serve(srv *rpc.Server) {
	var wg sync.WaitGroup
	for {
		rq := c.newRequest()
		if !c.next(rq) {
			break
		}
		wg.Add(1)
		c.spawn(func() {
			defer wg.Done()
			srv.ServeRequest(rq)
		})
	}
	wg.Wait()
	c.Close()
}

// next reads frames until one is a request for Serve, which it puts in rq.
// It reports false once the connection has ended.
func (c *ServerCodec) next(rq *request) bool {
	for {
		frame, err := c.conn.ReadFrame(c.adm.Context(), rq.buf)
		binary := errors.Is(err, ErrBinaryFrame)
		if err != nil && !binary {
			return false
		}
		rq.buf = frame[:0]
		switch data, ok, err := c.handleFrame(frame, binary, &rq.header); {
		case err != nil:
			return false
		case ok:
			rq.data = data
			return true
		}
		rq.buf = reusable(rq.buf) // a large frame is not kept while idle
	}
}

// ReadRequestHeader reads frames until one is a request or notification for
// net/rpc to serve. Frames that are not answer themselves with an error reply
// (or, without an id, a log line) and the codec reads on.
func (c *ServerCodec) ReadRequestHeader(r *rpc.Request) error {
	// This loop is all that is on the stack while the connection waits for
	// its next frame, which is most of its life: what the frame takes to
	// handle is in handleFrame's stack frame, not in this one.
	for {
		frame, err := c.conn.ReadFrame(c.adm.Context(), reusable(c.buf))
		binary := errors.Is(err, ErrBinaryFrame)
		if err != nil && !binary {
			if c.adm.isClosed() {
				return io.EOF // closed by us: net/rpc ends quietly
			}
			return err
		}
		c.buf = frame
		data, ok, err := c.handleFrame(frame, binary, r)
		if err != nil {
			return err
		}
		if ok {
			c.data, c.seq = data, r.Seq
			return nil
		}
		c.buf = reusable(frame) // a large frame is not kept while idle
	}
}

// handleFrame handles a frame that was read. It reports true, with the
// request's data, when the frame is a request or notification for net/rpc
// to serve, which it registers and describes in r; false when the frame
// answered itself (with an error reply, or a log line) and the codec reads
// on. It returns io.EOF once the codec is closed.
func (c *ServerCodec) handleFrame(frame []byte, binary bool, r *rpc.Request) ([]byte, bool, error) {
	env, id, bad := parseRequest(frame, binary)
	switch {
	case bad.quiet:
		c.log("dropped a notification", "code", bad.code, "error", bad.msg)
		return nil, false, nil
	case bad.code != "":
		c.replyError(id, bad.code, bad.msg)
		return nil, false, nil
	}
	typ, _ := stringValue(env.typ)
	typStr, method := c.names.lookup(typ)
	req := newServerRequest(typStr, id)
	req.cost = int32(len(frame)) + requestCost // frames are far below 2 GiB
	switch err := c.adm.Acquire(int64(req.cost)); {
	case errors.Is(err, ErrDraining):
		if id != nil {
			c.replyError(id, CodeUnavailable, "server is shutting down")
		}
		return nil, false, nil
	case err != nil:
		return nil, false, io.EOF
	}
	if c.onCall != nil {
		req.start = time.Now()
	}
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.pending.put(seq, req)
	c.mu.Unlock()
	r.ServiceMethod, r.Seq = method, seq
	return env.data, true, nil
}

// badFrame is why a frame is no request: the code and message of its error
// reply, or, quiet, of the log line of a notification that gets none.
type badFrame struct {
	code, msg string
	quiet     bool
}

// parseRequest reads a frame as a request. It returns the envelope and the
// request's id (nil: none), and, when the frame is no request, why.
func parseRequest(frame []byte, binary bool) (env envelope, id []byte, bad badFrame) {
	switch {
	case binary:
		return env, nil, badFrame{code: CodeParseError, msg: "binary frames are not supported"}
	case !utf8.Valid(frame):
		// A text frame must be UTF-8 (RFC 6455): nothing of it can be
		// echoed, not even its id.
		return env, nil, badFrame{code: CodeParseError, msg: "frame is not valid UTF-8"}
	}
	env, err := parseEnvelope(frame)
	if err != nil {
		return env, nil, badFrame{code: CodeParseError, msg: err.Error()}
	}
	if len(env.id) > MaxIDLength {
		return env, nil, badFrame{code: CodeBadRequest, msg: fmt.Sprintf("id is longer than %d bytes", MaxIDLength)}
	}
	if env.hasID() {
		id = env.id
	}
	typ, ok := stringValue(env.typ)
	bad = badFrame{code: CodeBadRequest, quiet: id == nil}
	switch {
	case env.typ == nil:
		bad.msg = "type is missing"
	case !ok || len(typ) == 0:
		bad.msg = "type must be a non-empty string"
	case len(typ) > MaxTypeLength:
		bad.msg = fmt.Sprintf("type is longer than %d bytes", MaxTypeLength)
	default:
		return env, id, badFrame{}
	}
	return env, id, bad
}

// ReadRequestBody decodes the current request's data into x. Absent or null
// data leaves x at its zero value. A nil x discards the data.
func (c *ServerCodec) ReadRequestBody(x any) error {
	data := c.data
	c.data = nil
	err := c.decode(data, x, c.seq)
	c.buf = reusable(c.buf) // a large frame is not kept while its method runs
	return err
}

// decode decodes a request's data into x, and binds x.
func (c *ServerCodec) decode(data []byte, x any, seq uint64) error {
	if x == nil {
		return nil
	}
	if data != nil && !isNull(data) {
		if err := unmarshalData(data, x, true); err != nil { // handleFrame checked the frame's UTF-8
			// net/rpc replies with this error's text, which WriteResponse
			// maps back to the code.
			return &Error{Code: CodeInvalidParams, Message: invalidData(err)}
		}
	}
	if c.bind != nil {
		c.bind(x, seq)
	}
	return nil
}

// WriteResponse writes the reply to the request numbered r.Seq: its result,
// or an error reply with the code that r.Error carries. Nothing is written
// for a notification, nor once the connection's [Admission] closed. Then the
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
		code, err = c.reply(id, req.typ, body)
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

// reply writes the result of the request with the given id and type. It
// returns the code of the error reply written in its place when the result
// cannot be sent.
func (c *ServerCodec) reply(id []byte, typ string, body any) (code string, err error) {
	enc := getEncoder()
	defer putEncoder(enc)
	enc.start(id, typ, ".response")
	if encErr := enc.data(body); encErr != nil {
		code = CodeServerError
		enc.errorFrame(id, code, "cannot encode the result: "+encErr.Error())
	} else if c.maxFrame > 0 && enc.buf.Len() > c.maxFrame {
		code = CodeTooLarge
		enc.errorFrame(id, code, fmt.Sprintf("the reply to %s would be %d bytes, over the frame limit of %d", typ, enc.buf.Len(), c.maxFrame))
	}
	err = c.out.Write(c.adm.Context(), enc.buf.Bytes(), true)
	return code, err
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
		c.adm.Done(int64(req.cost))
		return
	}
	after := *req.after
	cost := int64(req.cost) + int64(len(after))*afterReplyCost
	c.adm.Charge(cost - int64(req.cost))
	var left atomic.Int32
	left.Store(int32(len(after)))
	for _, f := range after {
		go func() {
			defer func() {
				if left.Add(-1) == 0 {
					c.adm.Done(cost)
				}
			}()
			f()
		}()
	}
}

// replyError writes an error reply; id nil means an error that belongs to no
// request.
func (c *ServerCodec) replyError(id []byte, code, message string) error {
	enc := getEncoder()
	defer putEncoder(enc)
	err := c.out.Write(c.adm.Context(), enc.errorFrame(id, code, message), true)
	if err != nil && !errors.Is(err, ErrClosed) {
		c.debug("cannot write an error reply", "code", code, "error", err)
	}
	return err
}

// Close closes the connection. net/rpc calls it when it stops serving.
func (c *ServerCodec) Close() error {
	c.closeOnce.Do(func() {
		c.adm.Close()
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
