package codec

import (
	"context"
	"io"
	"net/rpc"
	"sync"
)

// The rpc.ClientCodec methods, for net/rpc's own client
// ([rpc.NewClientWithCodec]): a request net/rpc writes is a call like any
// other, made without a done channel, and its outcome waits in the stock
// queue for net/rpc's reading goroutine. net/rpc carries errors as strings:
// its client returns an [rpc.ServerError], which [AsError] and [ErrorCode]
// read back.

// stockQueue holds the finished calls of net/rpc's client until its reading
// goroutine takes them. It holds at most the calls net/rpc has in flight.
type stockQueue struct {
	mu    sync.Mutex // guards calls
	calls []*rpc.Call
	ready chan struct{} // holds a token while calls may not be empty
	cur   *stockCall    // the reply net/rpc is reading; its reading goroutine's only
}

// stockCall is a call of net/rpc's client: its sequence number, and its
// reply's data, which complete decodes into it.
type stockCall struct {
	rpc.Call
	seq  uint64
	data []byte
}

// UnmarshalJSON keeps a copy of the reply's data, for ReadResponseBody.
func (s *stockCall) UnmarshalJSON(data []byte) error {
	s.data = append([]byte(nil), data...)
	return nil
}

func (q *stockQueue) push(rc *rpc.Call) {
	q.mu.Lock()
	q.calls = append(q.calls, rc)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *stockQueue) pop() *stockCall {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.calls) == 0 {
		return nil
	}
	rc := q.calls[0]
	q.calls[0] = nil
	q.calls = q.calls[1:]
	if len(q.calls) > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return rc.Reply.(*stockCall)
}

// WriteRequest sends a request for net/rpc. The call has the client's
// timeout: net/rpc gives it no context.
func (c *ClientCodec) WriteRequest(r *rpc.Request, body any) error {
	sc := &stockCall{seq: r.Seq}
	sc.ServiceMethod, sc.Args, sc.Reply = r.ServiceMethod, body, sc
	_, _, err := c.start(context.Background(), &sc.Call, true)
	return err
}

// ReadResponseHeader waits for the next finished call for net/rpc. Once the
// connection is done it returns io.EOF after Close (net/rpc then fails its
// calls with [rpc.ErrShutdown]), else the Disconnected [*Error].
func (c *ClientCodec) ReadResponseHeader(r *rpc.Response) error {
	for {
		if c.isDone() {
			if c.closeCalled.Load() {
				return io.EOF
			}
			return c.doneErr
		}
		if sc := c.stock.pop(); sc != nil {
			c.stock.cur = sc
			r.Seq = sc.seq
			if sc.Error != nil {
				r.Error = sc.Error.Error()
			}
			return nil
		}
		select {
		case <-c.stock.ready:
		case <-c.done:
		}
	}
}

// ReadResponseBody decodes the current reply's data into x; nil x discards
// it. net/rpc treats an error here as the end of the connection, as it does
// for its own codecs: a reply that does not decode into the stock client's
// reply value fails every pending call of that client.
func (c *ClientCodec) ReadResponseBody(x any) error {
	sc := c.stock.cur
	c.stock.cur = nil
	if x == nil || sc == nil || sc.data == nil {
		return nil
	}
	return unmarshalData(sc.data, x, false)
}
