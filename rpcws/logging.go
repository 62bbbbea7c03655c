package rpcws

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
)

// The handler logs at the level a line's reader acts on: Debug for what is
// routine (a plain HTTP request to the endpoint, an upgrade refused while
// shutting down), Warn for a client's fault (a page of another origin, a
// token refused, too many connections from one address), Error for what an
// operator must act on (the handler at MaxConns).

// logger returns the handler's logger: HandlerOptions.Logger, or the
// process's default logger at the time of the call.
func (h *Handler) logger() *slog.Logger {
	if h.opts.Logger != nil {
		return h.opts.Logger
	}
	return slog.Default()
}

// logAt logs msg at level, prefixed with the package's name.
func (h *Handler) logAt(level slog.Level, msg string, args ...any) {
	h.logger().Log(context.Background(), level, "rpcws: "+msg, args...)
}

// isUpgrade reports whether r asks for a WebSocket at all; a request that
// does not (a health check, curl, a browser opening the URL) is refused as
// routine.
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
