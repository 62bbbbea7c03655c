package codec

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

	// MaxInFlight caps the requests of this connection being served at once.
	// At the cap the codec stops reading the connection until a reply has
	// been written, so a flood from one peer is held back by the transport
	// rather than by memory. Zero or negative means [DefaultMaxInFlight]:
	// there is always a cap.
	MaxInFlight int

	// Logger receives what cannot be told to the peer: failed notifications,
	// replies that could not be written. Nil means silent.
	Logger *slog.Logger

	// OnCall, if set, is called once for every request served by a method,
	// after its reply was written (for a notification: after it ran). It must
	// not block: it runs on the connection's reply path.
	OnCall func(CallInfo)
}

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
	maxSlots int64
	slots    *semaphore.Weighted // one per request in flight

	// Owned by the reading goroutine (net/rpc reads requests on one).
	names nameCache
	buf   []byte // the frame being read; reused
	data  []byte // the current request's data; aliases buf
	seq   uint64

	mu       sync.Mutex // guards pending
	pending  map[uint64]serverRequest
	draining atomic.Bool

	wmu sync.Mutex // serialises writes; guards enc
	enc *encoder

	closeOnce sync.Once
	closeErr  error
}

// serverRequest is what the codec remembers of a request until its reply.
type serverRequest struct {
	typ   string
	start time.Time // zero unless OnCall is set

	// The id, raw JSON as the peer sent it: in idBuf when it fits, as a
	// quoted UUID does, so that remembering it costs no allocation, else in
	// idBig. idLen is -1 for a notification.
	idLen int
	idBuf [40]byte
	idBig []byte
}

func newServerRequest(typ string, id []byte) serverRequest {
	r := serverRequest{typ: typ, idLen: len(id)}
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
		maxSlots: int64(opts.MaxInFlight),
		pending:  make(map[uint64]serverRequest),
		enc:      newEncoder(),
	}
	if c.maxSlots <= 0 {
		c.maxSlots = DefaultMaxInFlight
	}
	c.slots = semaphore.NewWeighted(c.maxSlots)
	c.names.fn = opts.MethodName
	if c.names.fn == nil {
		c.names.fn = MethodName
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// ReadRequestHeader reads frames until one is a request or notification for
// net/rpc to serve. Frames that are not answer themselves with an error reply
// (or, without an id, a log line) and the codec reads on.
func (c *ServerCodec) ReadRequestHeader(r *rpc.Request) error {
	for {
		frame, err := c.conn.ReadFrame(c.ctx, reusable(c.buf))
		if errors.Is(err, ErrBinaryFrame) {
			c.replyError(nil, CodeParseError, "binary frames are not supported")
			continue
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return io.EOF // closed by us: net/rpc ends quietly
			}
			return err
		}
		c.buf = frame
		env, err := parseEnvelope(frame)
		if err != nil {
			c.replyError(nil, CodeParseError, err.Error())
			continue
		}
		hasID := env.hasID()
		typ, ok := stringValue(env.typ)
		if !ok || len(typ) == 0 {
			msg := "type is missing"
			if env.typ != nil {
				msg = "type must be a non-empty string"
			}
			if hasID {
				c.replyError(env.id, CodeBadRequest, msg)
			} else {
				c.log("dropped a notification", "code", CodeBadRequest, "error", msg)
			}
			continue
		}
		typStr, method := c.names.lookup(typ)
		var id []byte
		if hasID {
			id = env.id
		}
		req := newServerRequest(typStr, id)

		// Drain waits for all slots: check before queueing behind it, and
		// again once a slot is had.
		if c.refuse(id) {
			continue
		}
		if err := c.slots.Acquire(c.ctx, 1); err != nil {
			return io.EOF
		}
		if c.onCall != nil {
			req.start = time.Now()
		}
		if c.refuse(id) { // before the slot goes back, which lets Drain end
			c.slots.Release(1)
			continue
		}
		c.mu.Lock()
		c.seq++
		c.pending[c.seq] = req
		c.mu.Unlock()

		c.data = env.data
		r.ServiceMethod = method
		r.Seq = c.seq
		return nil
	}
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
	if err := json.Unmarshal(data, x); err != nil {
		// net/rpc replies with this error's text, which WriteResponse maps
		// back to the code.
		return &Error{Code: CodeInvalidParams, Message: "invalid data: " + err.Error()}
	}
	return nil
}

// WriteResponse writes the reply to the request numbered r.Seq: its result,
// or an error reply with the code that r.Error carries. Nothing is written
// for a notification.
func (c *ServerCodec) WriteResponse(r *rpc.Response, body any) error {
	c.mu.Lock()
	req, ok := c.pending[r.Seq]
	delete(c.pending, r.Seq)
	c.mu.Unlock()
	if !ok {
		return nil // never read by this codec; nothing to answer
	}
	defer c.slots.Release(1)

	var code, message string
	if r.Error != "" {
		code, message = classify(r.Error, req.typ)
	}
	id := req.id()
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
		}
		err = c.conn.WriteFrame(c.ctx, c.enc.buf.Bytes())
		c.enc.trim()
		c.wmu.Unlock()
	}
	if err != nil {
		c.log("cannot write a reply", "type", req.typ, "error", err)
	}
	if c.onCall != nil {
		c.onCall(CallInfo{Type: req.typ, Notification: id == nil, Duration: time.Since(req.start), Code: code})
	}
	return err
}

// replyError writes an error reply; id nil means an error that belongs to no
// request.
func (c *ServerCodec) replyError(id []byte, code, message string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.conn.WriteFrame(c.ctx, c.enc.errorFrame(id, code, message))
	if err != nil {
		c.log("cannot write an error reply", "code", code, "error", err)
	}
	return err
}

// classify maps the error text that net/rpc hands to WriteResponse to a code
// and message: the frozen "[Code] Message" of an *Error, net/rpc's own
// lookup failures, or else a plain error.
func classify(text, typ string) (code, message string) {
	if e, ok := parseError(text); ok && ValidCode(e.Code) && e.Code != CodeTimeout {
		return e.Code, e.Message
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
	return len(c.pending)
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
		c.cancel()
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

func (c *ServerCodec) log(msg string, args ...any) {
	if c.logger != nil {
		c.logger.Warn("codec: "+msg, args...)
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
