package rpcws

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/rpc"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
)

// ErrTimeout matches, with errors.Is, the error of a [Client.CallContext]
// that got no reply within its timeout. It is [codec.ErrTimeout]. The stock
// Call's error is an [rpc.ServerError] instead: see [DialOptions.Timeout].
var ErrTimeout = codec.ErrTimeout

// ErrDisconnected matches the error of every call that was pending when the
// connection closed. It is [codec.ErrDisconnected].
var ErrDisconnected = codec.ErrDisconnected

// Defaults of [DialOptions]. A client with the defaults accepts every frame
// that a [Handler] with the defaults writes: a Handler never writes a frame
// larger than its own ReadLimit.
const (
	// DefaultDialReadLimit is the largest frame a client accepts, in bytes:
	// a Handler's [DefaultReadLimit] (1 MiB), the largest frame it writes
	// with default options. No headroom is needed above it: both count the
	// message's payload, and coder/websocket accepts a message of exactly
	// the limit.
	DefaultDialReadLimit = DefaultReadLimit

	// DefaultDialWriteTimeout bounds the writing of one frame.
	DefaultDialWriteTimeout = 10 * time.Second

	// DefaultDialPingInterval is how long a connection may be idle before
	// the client pings the server.
	DefaultDialPingInterval = 30 * time.Second
)

// clientWriteBuffer is the size of the buffer a client's coder/websocket
// connection writes its frames through, which coder/websocket makes itself
// (bufio's default).
const clientWriteBuffer = 4096

// dialCloseTimeout bounds the closing handshake of [Client.Close]: a server
// that reads nothing would otherwise hold Close for the 5 s that
// coder/websocket waits for its close frame. A server that reads answers
// within a round trip.
const dialCloseTimeout = time.Second

// DialOptions configures [Dial]. A nil *DialOptions is valid and means all
// defaults. For every duration and limit, zero means the default and a
// negative value means none.
type DialOptions struct {
	// WebSocket is handed to websocket.Dial: the HTTP client, headers and
	// subprotocols of the handshake.
	WebSocket *websocket.DialOptions

	// Timeout bounds every call that has no deadline of its own: after it
	// the call fails with the text "timeout: <type>" (code Timeout). From
	// [Client.CallContext] that error matches [ErrTimeout] with errors.Is;
	// from the stock Call and Go it is an [rpc.ServerError], which does not:
	// there codec.ErrorCode(err) == codec.CodeTimeout, or [codec.AsError],
	// tells a timeout. A CallContext whose context has a deadline is bounded
	// by that deadline instead, later or earlier; [codec.WithTimeout] gives
	// a call a timeout of its own. Zero means [codec.DefaultTimeout] (10 s);
	// negative means none.
	Timeout time.Duration

	// OnEvent, if set, receives the server's pushed events, one call at a
	// time and in arrival order, on a goroutine of its own: it never holds up
	// replies. data is the event's raw JSON, which OnEvent may keep.
	OnEvent func(eventType string, data json.RawMessage)

	// MaxQueuedEventBytes caps the memory of the events waiting for OnEvent,
	// in bytes; beyond it events are dropped and counted in
	// [codec.ClientStats.DroppedEvents] (see
	// [codec.ClientOptions.MaxQueuedEventBytes]). Zero means
	// [codec.DefaultMaxQueuedEventBytes] (1 MiB); negative means no cap.
	MaxQueuedEventBytes int

	// ReadLimit caps one incoming frame, in bytes; a larger one closes the
	// connection (status 1009) and fails every pending call. Zero means
	// [DefaultDialReadLimit]; negative means no limit.
	ReadLimit int64

	// WriteTimeout bounds the writing of one frame. Zero means
	// [DefaultDialWriteTimeout]; negative means none.
	WriteTimeout time.Duration

	// PingInterval is how long the connection may be idle before the client
	// pings the server; a server that does not answer within another interval
	// is disconnected. Zero means [DefaultDialPingInterval]; negative means
	// no pings.
	PingInterval time.Duration

	// TypeName maps a net/rpc method name to the request's type. Nil means
	// [codec.TypeName]: "User.Get" → "user.get".
	TypeName func(method string) string

	// Logger receives what no call can be told. Nil means silent.
	Logger *slog.Logger
}

// Client is a client of an rpcws server (or of any server that speaks the
// protocol). It embeds the stock *rpc.Client, so Close works unchanged and
// c.Client can be handed to code that wants an *rpc.Client. Its own Call and
// Go behave as the stock ones, a goroutine hand-off faster; CallContext and
// Notify add what net/rpc lacks.
//
// Close fails the pending calls at once and closes the connection with a
// closing handshake of at most a second: a server that reads nothing does
// not hold it longer. (With a [websocket.DialOptions.HTTPClient] whose
// transport is not an *http.Transport, or dials TLS itself, the handshake
// takes up to coder/websocket's own 5 s.)
type Client struct {
	*rpc.Client
	codec *codec.ClientCodec
	dones sync.Pool // of empty done channels (chan *rpc.Call, capacity 1), for Call
}

// Dial connects to the WebSocket server at url ("ws://host/rpc" or wss://).
// ctx bounds the dial only: the connection lives until Close.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Client, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	var wopts websocket.DialOptions
	if o.WebSocket != nil {
		wopts = *o.WebSocket
	}
	writeTimeout := orDefault(o.WriteTimeout, DefaultDialWriteTimeout)
	var conns *netConns
	wopts.HTTPClient, conns = recordingClient(wopts.HTTPClient)
	var cork *corkConn
	wopts.HTTPClient = corkingClient(wopts.HTTPClient, writeTimeout, func(c *corkConn) { cork = c })
	hd := new(heard)
	wopts.OnPingReceived, wopts.OnPongReceived = hd.controlHooks(nil, wopts.OnPingReceived, wopts.OnPongReceived)
	ws, _, err := websocket.Dial(ctx, url, &wopts)
	if err != nil {
		conns.close()
		return nil, fmt.Errorf("rpcws: dial %s: %w", url, err)
	}
	ws.SetReadLimit(max(orDefault(o.ReadLimit, DefaultDialReadLimit), -1))
	dc := &dialedConn{wsConn: newWSConn(ws, cork, clientWriteBuffer, writeTimeout, hd, nil), net: conns}
	dc.startKeepalive(orDefault(o.PingInterval, DefaultDialPingInterval))
	cc := codec.NewClientCodec(dc, &codec.ClientOptions{
		TypeName:            o.TypeName,
		Timeout:             o.Timeout,
		OnEvent:             o.OnEvent,
		MaxQueuedEventBytes: o.MaxQueuedEventBytes,
		Logger:              o.Logger,
	})
	return &Client{Client: rpc.NewClientWithCodec(cc), codec: cc}, nil
}

// dialedConn is the client's end of a connection: a wsConn whose Close
// cuts the closing handshake short after dialCloseTimeout, by closing the
// network connection under it.
type dialedConn struct {
	*wsConn
	net *netConns // nil when the HTTP client's connections cannot be seen
}

func (c *dialedConn) Close() error {
	if c.net == nil {
		return c.wsConn.Close()
	}
	cut := time.AfterFunc(dialCloseTimeout, c.net.close)
	err := c.wsConn.Close()
	if !cut.Stop() {
		return nil // cut short: the server did not answer, which is no error of ours
	}
	return err
}

// netConns remembers the network connections that an HTTP client opened.
type netConns struct {
	mu    sync.Mutex
	conns []net.Conn
}

// close closes every connection remembered; nil closes nothing.
func (n *netConns) close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.conns {
		c.Close()
	}
}

// recordingClient returns an HTTP client for the WebSocket handshake that
// remembers the network connections it opens (see [wrapDialer]), or base
// unchanged and nil when it could not wrap base.
func recordingClient(base *http.Client) (*http.Client, *netConns) {
	conns := &netConns{}
	c, ok := wrapDialer(base, func(conn net.Conn) net.Conn {
		conns.mu.Lock()
		conns.conns = append(conns.conns, conn)
		conns.mu.Unlock()
		return conn
	})
	if !ok {
		return base, nil
	}
	return c, conns
}

// Call calls serviceMethod and waits for its reply, which it decodes into
// reply, as [rpc.Client.Call] does and with the same errors: an error reply
// or a timeout is an [rpc.ServerError], whose code [codec.ErrorCode]
// recovers. It is the embedded client's Call made faster: the reply is
// completed by the codec's reading goroutine, one goroutine hand-off fewer
// than through net/rpc's. A reply that does not decode into reply fails this
// call only, where net/rpc's Call would end the client. c.Client.Call, the
// stock one, still works, for code that holds the *rpc.Client.
func (c *Client) Call(serviceMethod string, args, reply any) error {
	done, _ := c.dones.Get().(chan *rpc.Call)
	if done == nil {
		done = make(chan *rpc.Call, 1)
	}
	call := <-c.codec.Go(serviceMethod, args, reply, done).Done
	c.dones.Put(done) // empty again: a call completes once
	return call.Error
}

// Go starts a call of serviceMethod and returns its *rpc.Call, which is sent
// on done when it completes, as [rpc.Client.Go] does; see [Client.Call] for
// how it differs. done must be buffered; nil means a new channel.
func (c *Client) Go(serviceMethod string, args, reply any, done chan *rpc.Call) *rpc.Call {
	return c.codec.Go(serviceMethod, args, reply, done)
}

// CallContext calls serviceMethod and waits for its reply, which it decodes
// into reply. It returns when the reply comes; when ctx ends (the error then
// matches context.Canceled or context.DeadlineExceeded); or when the call's
// timeout passes (the error matches [ErrTimeout]). The timeout is the one
// [codec.WithTimeout] gave ctx, if any; else none when ctx has a deadline,
// which then bounds the call whether it is later or earlier than
// [DialOptions.Timeout]; else DialOptions.Timeout. A server's error reply is
// a [*codec.Error]. A call that ended early never writes into reply
// afterwards, and ending ctx never affects the connection.
func (c *Client) CallContext(ctx context.Context, serviceMethod string, args, reply any) error {
	return c.codec.Call(ctx, serviceMethod, args, reply)
}

// Notify sends a notification: the server runs serviceMethod with args and
// sends nothing back, not even an error.
func (c *Client) Notify(ctx context.Context, serviceMethod string, args any) error {
	return c.codec.Notify(ctx, serviceMethod, args)
}

// Stats returns what the client has dropped so far: late replies, events
// beyond the queue, unreadable frames.
func (c *Client) Stats() codec.ClientStats { return c.codec.Stats() }

// Done returns a channel that is closed once the connection has ended, by
// Close or by the server.
func (c *Client) Done() <-chan struct{} { return c.codec.Done() }
