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
	mu    sync.Mutex  // guards calls and head
	calls []*rpc.Call // calls[head:] wait, oldest first
	head  int
	ready chan struct{} // holds a token while calls may not be empty
	cur   *stockCall    // the reply net/rpc is reading; its reading goroutine's only
	free  sync.Pool     // of *stockCall that net/rpc has read
}

// stockCall is a call of net/rpc's client: its sequence number, and a copy
// of its reply's data (see decodeReply), which net/rpc decodes itself in
// ReadResponseBody. It is its own Reply.
type stockCall struct {
	rpc.Call
	seq  uint64
	data []byte
}

// decodeReply decodes a reply's data into reply, or, for a call of net/rpc's
// own client, which decodes its replies itself, keeps a copy of it.
func decodeReply(data []byte, reply any) error {
	if sc, ok := reply.(*stockCall); ok {
		sc.data = append(sc.data[:0], data...)
		return nil
	}
	return unmarshalData(data, reply, false)
}

// newStockCall returns an empty stockCall, from the pool when it can.
func (q *stockQueue) newStockCall() *stockCall {
	sc, _ := q.free.Get().(*stockCall)
	if sc == nil {
		sc = new(stockCall)
	}
	sc.Reply = sc
	return sc
}

// freeStockCall puts sc back in the pool once net/rpc is done with it,
// without a buffer too large to keep.
func (q *stockQueue) freeStockCall(sc *stockCall) {
	*sc = stockCall{data: reusable(sc.data)[:0]}
	q.free.Put(sc)
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
	if q.head == len(q.calls) {
		return nil
	}
	rc := q.calls[q.head]
	q.calls[q.head] = nil
	q.head++
	if q.head == len(q.calls) { // empty: reuse the array from its start
		q.calls, q.head = q.calls[:0], 0
	} else {
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
	sc := c.stock.newStockCall()
	sc.ServiceMethod, sc.Args, sc.seq = r.ServiceMethod, body, r.Seq
	_, _, err := c.start(context.Background(), &sc.Call, true)
	if err != nil {
		c.stock.freeStockCall(sc)
	}
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
	if sc == nil {
		return nil
	}
	c.stock.cur = nil
	defer c.stock.freeStockCall(sc)
	if x == nil || len(sc.data) == 0 {
		return nil
	}
	return unmarshalData(sc.data, x, false)
}
