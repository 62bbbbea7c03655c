// Package refserver is the reference server of the rpcws protocol: the
// services of PROTOCOL.md's "reference service" table, written as ordinary
// net/rpc services and served over WebSocket by rpcws, beside the demo page
// and the JavaScript client. The interop suite, the demo and anyone probing
// an implementation talk to it; cmd interop/server runs it.
package refserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/rpc"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/interop/js"
	"github.com/rpcws/rpcws/rpcws"
)

// Options configures the reference server. A nil *Options is valid.
type Options struct {
	// Logger receives the server's log lines. Nil means silent.
	Logger *slog.Logger

	// OriginPatterns lists the origins, besides the server's own, whose pages
	// may connect (coder/websocket patterns, such as "localhost:3000").
	OriginPatterns []string

	// PingInterval is handed to [rpcws.HandlerOptions]; zero means its default.
	PingInterval time.Duration

	// TrustedProxies lists the reverse proxies in front of the server: from
	// them, a client's address is taken from X-Forwarded-For (see
	// [rpcws.ForwardedFor]), for the per-client connection cap. Empty means
	// none: the address is the peer's.
	TrustedProxies []netip.Prefix

	// MaxConnsPerClient is handed to [rpcws.HandlerOptions]; zero means its
	// default.
	MaxConnsPerClient int
}

// Server is the reference server: an http.Handler with the WebSocket
// endpoint at /rpc and the demo page and client module at /.
type Server struct {
	mux *http.ServeMux
	rpc *rpcws.Handler
}

// New returns a reference server with fresh state (one stored user, "123").
func New(opts *Options) *Server {
	if opts == nil {
		opts = &Options{}
	}
	srv := rpc.NewServer()
	must(srv.RegisterName("User", NewUsers()))
	must(srv.RegisterName("Demo", new(Demo)))
	var clientAddr func(*http.Request) string // nil: rpcws.RemoteHost
	if len(opts.TrustedProxies) > 0 {
		clientAddr = rpcws.ForwardedFor(opts.TrustedProxies...)
	}
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{
		// A page may offer the subprotocol "rpcws" (beside a token, say):
		// a browser fails the handshake when it offers subprotocols and the
		// server selects none.
		AcceptOptions:     &websocket.AcceptOptions{OriginPatterns: opts.OriginPatterns, Subprotocols: []string{"rpcws"}},
		Logger:            opts.Logger,
		PingInterval:      opts.PingInterval,
		MaxConnsPerClient: opts.MaxConnsPerClient,
		ClientAddr:        clientAddr,
	})
	mux := http.NewServeMux()
	mux.Handle("/rpc", h)
	mux.Handle("/", http.FileServerFS(js.Files))
	return &Server{mux: mux, rpc: h}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// RPC returns the WebSocket handler, for its connection count and Broadcast.
func (s *Server) RPC() *rpcws.Handler { return s.rpc }

// Shutdown shuts the WebSocket endpoint down gracefully; see
// [rpcws.Handler.Shutdown]. To shut down the http.Server that serves s as
// well, use [Server.ShutdownHTTP].
func (s *Server) Shutdown(ctx context.Context) error { return s.rpc.Shutdown(ctx) }

// invalidParams is the error of a request whose data is out of range.
func invalidParams(msg string) error {
	return &codec.Error{Code: codec.CodeInvalidParams, Message: msg}
}
