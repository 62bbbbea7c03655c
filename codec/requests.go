package codec

import (
	"net/rpc"
	"sync"
	"time"
)

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

// request is one request read by [ServerCodec.Serve], as the codec that
// [rpc.Server.ServeRequest] serves it with: its header was read already,
// its data is decoded by ReadRequestBody, on the goroutine that serves it,
// and its reply goes to the codec.
type request struct {
	c      *ServerCodec
	header rpc.Request
	data   []byte // aliases buf
	buf    []byte // the frame; empty once the data is decoded
}

func (r *request) ReadRequestHeader(h *rpc.Request) error {
	h.ServiceMethod, h.Seq = r.header.ServiceMethod, r.header.Seq
	return nil
}

func (r *request) ReadRequestBody(x any) error {
	err := r.c.decode(r.data, x, r.header.Seq)
	r.data = nil
	r.buf = reusable(r.buf)[:0] // a large frame is not kept while its method runs
	return err
}

func (r *request) WriteResponse(resp *rpc.Response, body any) error {
	err := r.c.WriteResponse(resp, body)
	r.c.freeRequest(r)
	return err
}

// Close closes nothing: the connection is Serve's.
func (r *request) Close() error { return nil }

// Request views, with their frame buffers, are pooled by the process, not
// kept by each connection: a busy connection needs many at once, and an
// idle one none (BenchmarkShared64Small, BenchmarkIdleConns).
var requestPool = sync.Pool{New: func() any { return new(request) }}

// newRequest returns a request view to read into, with a frame buffer.
func (c *ServerCodec) newRequest() *request {
	r := requestPool.Get().(*request)
	r.c = c
	return r
}

// freeRequest gives r back, once its reply is written.
func (c *ServerCodec) freeRequest(r *request) {
	*r = request{buf: r.buf}
	requestPool.Put(r)
}
