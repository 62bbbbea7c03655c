// Command cluster runs one replica of the rpcws reference cluster server:
// the reference server's services (PROTOCOL.md) plus topics, user
// notifications and broadcast across every replica that shares a broker,
// over WebSocket at /rpc, and the demo page at /.
//
//	go run . [-addr 127.0.0.1:8080] [-broker redis://127.0.0.1:6379 | nats://127.0.0.1:4222] [-origin host:port]... [-grace 30s]
//
// The connection's identity is taken from the "user" query parameter of the
// WebSocket URL (ws://host/rpc?user=ada): a stand-in for real
// authentication, for trying the user address out, never for production.
//
// On SIGINT or SIGTERM it shuts down gracefully, as the reference server
// does.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	redisbroker "github.com/rpcws/rpcws/broker/redis"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	broker := flag.String("broker", "", "the broker the replicas share: empty for in-process (one replica), redis://HOST:PORT or nats://HOST:PORT")
	var origins stringList
	flag.Var(&origins, "origin", "an origin pattern whose pages may connect besides the server's own (repeatable)")
	grace := flag.Duration("grace", 30*time.Second, "how long a graceful shutdown may take")
	ping := flag.Duration("ping", 0, "keepalive ping interval (0: the library's default)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cluster [flags]\n\n"+
			"A connection's identity is the \"user\" query parameter of its WebSocket URL\n"+
			"(ws://HOST/rpc?user=ada): a stand-in for real authentication.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *broker, origins, *grace, *ping, logger); err != nil {
		logger.Error("server failed", "error", err)
		os.Exit(1)
	}
}

func run(addr, brokerURL string, origins []string, grace, ping time.Duration, logger *slog.Logger) error {
	redisbroker.SetLogger(logger) // go-redis's own lines, process-wide, in the server's log
	b, err := newBroker(brokerURL)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if b != nil {
			b.Close()
		}
		return err
	}
	srv := newServer(options{Broker: b, Logger: logger, OriginPatterns: origins, PingInterval: ping})
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	logger.Info("rpcws cluster server listening", "broker", cmp.Or(brokerURL, "in-process"),
		"page", "http://"+ln.Addr().String()+"/", "websocket", "ws://"+ln.Addr().String()+"/rpc")

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop()
	logger.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := errors.Join(hs.Shutdown(sctx), srv.Shutdown(sctx)); err != nil {
		logger.Warn("shutdown cut short", "error", err)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
