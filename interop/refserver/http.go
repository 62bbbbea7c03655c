package refserver

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Defaults of [Timeouts]: long enough for any request the demo page makes,
// short enough that idle or stalled HTTP connections do not pile up.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
)

// Timeouts are the timeouts of the reference server's http.Server (see
// [Server.HTTPServer]). They bound plain HTTP connections only: a WebSocket
// lives on after its upgrade, bounded by the handler's write timeout and
// pings instead. A nil *Timeouts is valid. Zero means the default, negative
// none.
type Timeouts struct {
	// ReadHeader bounds the reading of a request's headers; Read, of the
	// whole request; Write, from the end of the request's headers to the end
	// of its response. Idle is how long a keep-alive connection may wait for
	// its next request.
	ReadHeader, Read, Write, Idle time.Duration
}

// HTTPServer returns an http.Server that serves s with the timeouts t:
// without them, idle keep-alive connections and clients that send a request
// slowly hold their sockets for ever, and can starve WebSocket handshakes of
// file descriptors. The caller sets Addr or calls Serve.
func (s *Server) HTTPServer(t *Timeouts) *http.Server {
	var o Timeouts
	if t != nil {
		o = *t
	}
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: orDefault(o.ReadHeader, DefaultReadHeaderTimeout),
		ReadTimeout:       orDefault(o.Read, DefaultReadTimeout),
		WriteTimeout:      orDefault(o.Write, DefaultWriteTimeout),
		IdleTimeout:       orDefault(o.Idle, DefaultIdleTimeout),
	}
}

// orDefault returns def for zero; http.Server takes a negative timeout as
// none.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ShutdownHTTP shuts down hs, the http.Server that serves s, and s's
// WebSocket endpoint side by side, under ctx: hs stops listening and waits
// for its plain HTTP requests while the WebSocket connections drain (see
// [rpcws.Handler.Shutdown]). One after the other, a single stuck HTTP
// request would use the whole grace before the drain began, and requests on
// open WebSockets would go on being served meanwhile. When ctx ends first,
// hs's remaining connections are closed too, and ShutdownHTTP returns
// ctx's error.
func (s *Server) ShutdownHTTP(ctx context.Context, hs *http.Server) error {
	var wg sync.WaitGroup
	var httpErr, wsErr error
	wg.Go(func() {
		if httpErr = hs.Shutdown(ctx); httpErr != nil {
			hs.Close()
		}
	})
	wg.Go(func() { wsErr = s.Shutdown(ctx) })
	wg.Wait()
	return errors.Join(httpErr, wsErr)
}
