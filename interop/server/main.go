// Command server runs the rpcws reference server: the reference services of
// PROTOCOL.md over WebSocket at /rpc, and the live demo page at /.
//
//	go run ./interop/server [-addr 127.0.0.1:8080] [-origin host:port]... [-grace 30s]
//
// On SIGINT or SIGTERM it shuts down gracefully: requests in flight get their
// replies, then every connection is closed with 1001. A second signal, or the
// end of the grace period, closes everything at once.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rpcws/rpcws/interop/refserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	var origins stringList
	flag.Var(&origins, "origin", "an origin pattern whose pages may connect besides the server's own (repeatable)")
	grace := flag.Duration("grace", 30*time.Second, "how long a graceful shutdown may take")
	ping := flag.Duration("ping", 0, "keepalive ping interval (0: the library's default)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, origins, *grace, *ping, logger); err != nil {
		logger.Error("server failed", "error", err)
		os.Exit(1)
	}
}

func run(addr string, origins []string, grace, ping time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ref := refserver.New(&refserver.Options{Logger: logger, OriginPatterns: origins, PingInterval: ping})
	hs := &http.Server{Handler: ref, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	logger.Info("rpcws reference server listening",
		"page", "http://"+ln.Addr().String()+"/", "websocket", "ws://"+ln.Addr().String()+"/rpc")

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal now ends the process at once
	logger.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = errors.Join(hs.Shutdown(sctx), ref.Shutdown(sctx))
	if err != nil {
		logger.Warn("shutdown cut short", "error", err)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
