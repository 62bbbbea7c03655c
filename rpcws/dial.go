package rpcws

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/rpc"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
)

// ErrTimeout matches, with errors.Is, the error of every call that got no
// reply within the client's timeout. It is [codec.ErrTimeout].
var ErrTimeout = codec.ErrTimeout

// ErrDisconnected matches the error of every call that was pending when the
// connection closed. It is [codec.ErrDisconnected].
var ErrDisconnected = codec.ErrDisconnected

// DialOptions configures [Dial]. A nil *DialOptions is valid and means all
// defaults. For the durations and limits, zero means the default and a
// negative value means none.
type DialOptions struct {
	// DialOptions are handed to websocket.Dial: the HTTP client, headers and
	// subprotocols of the handshake.
	DialOptions *websocket.DialOptions

	// Timeout bounds every call, from the stock Call as from CallContext:
	// after it the call fails with an error matching [ErrTimeout], whose text
	// is "timeout: <type>". Zero means [codec.DefaultTimeout] (10 s).
	Timeout time.Duration

	// OnEvent, if set, receives the server's pushed events, one call at a
	// time and in arrival order, on a goroutine of its own: it never holds up
	// replies. data is the event's raw JSON, which OnEvent may keep.
	OnEvent func(eventType string, data json.RawMessage)

	// MaxQueuedEvents caps events waiting for OnEvent; beyond it they are
	// dropped and counted. Zero means [codec.DefaultMaxQueuedEvents].
	MaxQueuedEvents int

	// ReadLimit caps one incoming frame, in bytes. Zero means
	// [DefaultReadLimit].
	ReadLimit int64

	// WriteTimeout bounds the writing of one frame. Zero means
	// [DefaultWriteTimeout].
	WriteTimeout time.Duration

	// PingInterval is how long the connection may be idle before the client
	// pings the server; a server that does not answer within another interval
	// is disconnected. Zero means [DefaultPingInterval].
	PingInterval time.Duration

	// TypeName maps a net/rpc method name to the request's type. Nil means
	// [codec.TypeName]: "User.Get" → "user.get".
	TypeName func(method string) string

	// Logger receives what no call can be told. Nil means silent.
	Logger *slog.Logger
}

// Client is a client of an rpcws server (or of any server that speaks the
// protocol). It embeds the stock *rpc.Client, so Call, Go and Close work
// unchanged and the client can be handed to code that wants an *rpc.Client;
// CallContext and Notify add what net/rpc lacks.
type Client struct {
	*rpc.Client
	codec *codec.ClientCodec
}

// Dial connects to the WebSocket server at url ("ws://host/rpc" or wss://).
// ctx bounds the dial only: the connection lives until Close.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Client, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	var wopts websocket.DialOptions
	if o.DialOptions != nil {
		wopts = *o.DialOptions
	}
	writeTimeout := orDefault(o.WriteTimeout, DefaultWriteTimeout)
	var batched bool
	wopts.HTTPClient, batched = batchingClient(wopts.HTTPClient, writeTimeout)
	conn := newWSConn(writeTimeout, batched)
	wopts.OnPingReceived, wopts.OnPongReceived = conn.controlHooks(wopts.OnPingReceived, wopts.OnPongReceived)
	ws, _, err := websocket.Dial(ctx, url, &wopts)
	if err != nil {
		return nil, fmt.Errorf("rpcws: dial %s: %w", url, err)
	}
	switch readLimit := orDefault(o.ReadLimit, DefaultReadLimit); {
	case readLimit > 0:
		ws.SetReadLimit(readLimit)
	default:
		ws.SetReadLimit(-1)
	}
	conn.ws = ws
	conn.startKeepalive(orDefault(o.PingInterval, DefaultPingInterval), nil)
	cc := codec.NewClientCodec(conn, &codec.ClientOptions{
		TypeName:        o.TypeName,
		Timeout:         o.Timeout,
		OnEvent:         o.OnEvent,
		MaxQueuedEvents: o.MaxQueuedEvents,
		Logger:          o.Logger,
	})
	return &Client{Client: rpc.NewClientWithCodec(cc), codec: cc}, nil
}

// CallContext calls serviceMethod and waits for its reply, which it decodes
// into reply. It returns when the reply comes; when ctx ends (the error then
// matches context.Canceled or context.DeadlineExceeded); or when the
// client's timeout passes (the error matches [ErrTimeout]). A server's error
// reply is a [*codec.Error]. A call that ended early never writes into reply
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
