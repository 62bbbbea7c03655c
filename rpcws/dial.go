package rpcws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/rpc"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
)

// Defaults of [DialOptions] that a Handler has not: the frame limit, the
// write timeout and the ping interval are the Handler's, by the same
// names ([DefaultMaxFrameSize], [DefaultWriteTimeout],
// [DefaultPingInterval]), so that a client with the defaults accepts every
// frame that a Handler with the defaults writes.
const (
	// DefaultCallTimeout bounds a call whose context has no deadline: it is
	// [codec.DefaultCallTimeout] (10 s).
	DefaultCallTimeout = codec.DefaultCallTimeout

	// DefaultMaxQueuedEventBytes caps the events waiting for OnEvent: it is
	// [codec.DefaultMaxQueuedEventBytes] (1 MiB).
	DefaultMaxQueuedEventBytes = codec.DefaultMaxQueuedEventBytes
)

// ClientStats counts what a client dropped or refused: [codec.ClientStats].
type ClientStats = codec.ClientStats

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

	// Timeout bounds every call whose context has no deadline (see "Time"
	// in the package comment). Zero means [DefaultCallTimeout] (10 s);
	// negative means none.
	Timeout time.Duration

	// OnEvent, if set, receives the server's pushed events, one call at a
	// time and in arrival order, on a goroutine of its own: it never holds up
	// replies. data is the event's raw JSON, which OnEvent may keep. The
	// library's own frames (reserved "rpcws." types) never reach it, but
	// for [ResyncEvent], which tells the application of a gap.
	OnEvent func(eventType string, data json.RawMessage)

	// MaxQueuedEventBytes caps the memory of the events waiting for OnEvent,
	// in bytes; beyond it events are dropped and counted in
	// [ClientStats].DroppedEvents (see
	// [codec.ClientOptions.MaxQueuedEventBytes]). Zero means
	// [DefaultMaxQueuedEventBytes] (1 MiB); negative means no cap.
	MaxQueuedEventBytes int

	// ReadLimit caps one incoming frame, in bytes; a larger one closes the
	// connection (status 1009) and fails every pending call. Zero means
	// [DefaultMaxFrameSize]; negative means no limit.
	ReadLimit int64

	// WriteTimeout bounds the writing of one frame. Zero means
	// [DefaultWriteTimeout]; negative means none.
	WriteTimeout time.Duration

	// PingInterval is how long the connection may be idle before the client
	// pings the server; a server that does not answer within another interval
	// is disconnected. Zero means [DefaultPingInterval]; negative means
	// no pings.
	PingInterval time.Duration

	// TypeName maps a net/rpc method name to the request's type. Nil means
	// [codec.TypeName]: "User.Get" → "user.get".
	TypeName func(method string) string

	// Logger receives what no call can be told. Nil means silent.
	Logger *slog.Logger

	// Reconnect, if set, makes the client dial again when its connection
	// drops, and recover its session and topics from a server that keeps
	// history: see [ReconnectOptions]. Nil means a client that ends with its
	// connection. Dial itself makes one attempt; [DialCodec] ignores
	// Reconnect.
	Reconnect *ReconnectOptions
}

// Client is a client of an rpcws server (or of any server that speaks the
// protocol). Call, Go and CallContext take one path: each call waits in the
// client's table of pending calls until the client's reading goroutine
// completes it with its reply, or the client fails it: with an [*Error]
// whose code tells the client's verdicts (Timeout, Canceled, Disconnected,
// BadReply, ...) from the server's, as package codec's "Errors" tells
// ([codec]). A call's context never reaches the socket, and a call that
// ended early never writes into its reply afterwards.
//
// Close fails the pending calls at once and closes the connection with a
// closing handshake of at most a second: a server that reads nothing does
// not hold it longer. (With a [websocket.DialOptions.HTTPClient] whose
// transport is not an *http.Transport, or dials TLS itself, the handshake
// takes up to coder/websocket's own 5 s.)
//
// With [DialOptions].Reconnect, the client outlives its connection: it
// dials again when the connection drops, and the calls made meanwhile wait
// for the new one (see [ReconnectOptions]); [Client.State] tells where it
// stands.
type Client struct {
	codec *codec.ClientCodec // without Reconnect
	re    *reconnector       // with Reconnect; nil without
}

// Dial connects to the WebSocket server at url ("ws://host/rpc" or wss://).
// ctx bounds the dial only: the connection lives until Close. A failed dial
// is a DialFailed [*Error].
func Dial(ctx context.Context, url string, opts *DialOptions) (*Client, error) {
	if opts != nil && opts.Reconnect != nil {
		re, err := dialReconnecting(ctx, url, opts)
		if err != nil {
			return nil, err
		}
		return &Client{re: re}, nil
	}
	cc, err := DialCodec(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	return &Client{codec: cc}, nil
}

// DialCodec connects as [Dial] does and returns the connection's client
// codec, for code that wants net/rpc's own client:
// rpc.NewClientWithCodec(cc) is an *rpc.Client over rpcws.
func DialCodec(ctx context.Context, url string, opts *DialOptions) (*codec.ClientCodec, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	return dialCodec(ctx, url, &o, &codec.ClientOptions{
		TypeName:            o.TypeName,
		Timeout:             o.Timeout,
		OnEvent:             applicationEvents(o.OnEvent),
		MaxQueuedEventBytes: o.MaxQueuedEventBytes,
		Logger:              o.Logger,
	})
}

// applicationEvents wraps an OnEvent so that it never sees the library's
// own frames (see [libraryEvent]), which a client that does not reconnect
// has no use for.
func applicationEvents(onEvent func(string, json.RawMessage)) func(string, json.RawMessage) {
	if onEvent == nil {
		return nil
	}
	return func(typ string, data json.RawMessage) {
		if !libraryEvent(typ) {
			onEvent(typ, data)
		}
	}
}

// libraryEvent reports whether an event is the library's business alone:
// a reserved "rpcws." type (rpcws.session, whose id is a secret,
// rpcws.joined, rpcws.left, ...) other than rpcws.resync, which tells the
// application of a gap.
func libraryEvent(typ string) bool {
	return strings.HasPrefix(typ, "rpcws.") && typ != ResyncEvent
}

// dialCodec makes one connection to url with o's transport options, and
// the codec of copts over it.
func dialCodec(ctx context.Context, url string, o *DialOptions, copts *codec.ClientOptions) (*codec.ClientCodec, error) {
	var wopts websocket.DialOptions
	if o.WebSocket != nil {
		wopts = *o.WebSocket
	}
	writeTimeout := orDefault(o.WriteTimeout, DefaultWriteTimeout)
	var conns *netConns
	wopts.HTTPClient, conns = recordingClient(wopts.HTTPClient)
	var cork *corkConn
	wopts.HTTPClient = corkingClient(wopts.HTTPClient, writeTimeout, func(c *corkConn) { cork = c })
	hd := new(heard)
	wopts.OnPingReceived, wopts.OnPongReceived = hd.controlHooks(nil, wopts.OnPingReceived, wopts.OnPongReceived)
	ws, _, err := websocket.Dial(ctx, url, &wopts)
	if err != nil {
		conns.close()
		return nil, dialError(ctx, url, err)
	}
	ws.SetReadLimit(max(orDefault(o.ReadLimit, DefaultMaxFrameSize), -1))
	dc := &dialedConn{wsConn: newWSConn(wsParts{ws: ws, cork: cork, writeTimeout: writeTimeout, heard: hd}, clientWriteBuffer), net: conns}
	dc.startKeepalive(orDefault(o.PingInterval, DefaultPingInterval))
	return codec.NewClientCodec(dc, copts), nil
}

// dialError is the error of a failed dial: DialFailed, wrapping the cause
// and, when ctx ended, ctx's error, so that errors.Is finds either.
func dialError(ctx context.Context, url string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	return &codec.Error{Code: codec.CodeDialFailed, Message: "dial " + url + ": " + err.Error(), Err: err}
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
// reply, as [rpc.Client.Call] does, bounded by [DialOptions.Timeout].
func (c *Client) Call(serviceMethod string, args, reply any) error {
	return c.CallContext(context.Background(), serviceMethod, args, reply)
}

// Go starts a call of serviceMethod and returns its *rpc.Call, which is sent
// on done when it completes, as [rpc.Client.Go] does, bounded by
// [DialOptions.Timeout]. done must be buffered; nil means a new channel.
func (c *Client) Go(serviceMethod string, args, reply any, done chan *rpc.Call) *rpc.Call {
	if c.re != nil {
		return c.re.goCall(serviceMethod, args, reply, done)
	}
	return c.codec.Go(serviceMethod, args, reply, done)
}

// CallContext calls serviceMethod and waits for its reply, which it decodes
// into reply. ctx bounds the call: its deadline, if any, in place of
// [DialOptions.Timeout].
func (c *Client) CallContext(ctx context.Context, serviceMethod string, args, reply any) error {
	if c.re != nil {
		return c.re.call(ctx, serviceMethod, args, reply)
	}
	return c.codec.Call(ctx, serviceMethod, args, reply)
}

// Notify sends a notification: the server runs serviceMethod with args and
// sends nothing back, not even an error.
func (c *Client) Notify(ctx context.Context, serviceMethod string, args any) error {
	if c.re != nil {
		return c.re.notify(ctx, serviceMethod, args)
	}
	return c.codec.Notify(ctx, serviceMethod, args)
}

// Close closes the connection; pending and later calls fail with
// Disconnected, matching [rpc.ErrShutdown]. With Reconnect it also stops
// reconnecting, at once: a wait between attempts or an attempt under way
// ends, and calls waiting for a connection fail alike.
func (c *Client) Close() error {
	if c.re != nil {
		return c.re.close()
	}
	return c.codec.Close()
}

// Stats returns what the client has dropped or refused so far: late
// replies, events beyond the queue, unreadable frames, bad replies; with
// Reconnect, over all its connections.
func (c *Client) Stats() ClientStats {
	if c.re != nil {
		return c.re.stats()
	}
	return c.codec.Stats()
}

// Done returns a channel that is closed once the client has ended: by
// Close, or when its connection ended (with Reconnect: when reconnecting
// gave up).
func (c *Client) Done() <-chan struct{} {
	if c.re != nil {
		return c.re.done
	}
	return c.codec.Done()
}

// State returns where the client's connection stands: [StateConnected],
// [StateReconnecting] (only with Reconnect) or [StateClosed]. To be told
// of each change, see [ReconnectOptions].OnState.
func (c *Client) State() ConnState {
	if c.re != nil {
		return ConnState(c.re.state.Load())
	}
	if isDone(c.codec.Done()) {
		return StateClosed
	}
	return StateConnected
}
