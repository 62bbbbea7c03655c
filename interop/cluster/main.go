// Command cluster runs one replica of the rpcws reference cluster server:
// the reference server's services (PROTOCOL.md) plus topics, user
// notifications and broadcast across every replica that shares a broker,
// over WebSocket at /rpc, the demo page at / and a chat at /chat/.
//
//	go run . [-addr 127.0.0.1:8080] [-broker redis://127.0.0.1:6379 | nats://127.0.0.1:4222] [-origin host:port]... [-grace 30s]
//	         [-history-size 100] [-history-ttl 5m] [-recovery-window 2m] [-presence-ttl 60s]
//
// It keeps each topic's last -history-size events, and a session for each
// connection, so that a client that reconnects within -recovery-window, to
// any replica, gets its topics back and the events it missed
// (PROTOCOL.md, "Sessions and recovery"); -history-size 0 keeps neither.
// Presence (topic.presence) is always on: it costs one write to the engine
// per join and leave and a refresh per -presence-ttl, and a chat needs it.
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
	"github.com/rpcws/rpcws/rpcws"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	broker := flag.String("broker", "", "the broker the replicas share: empty for in-process (one replica), redis://HOST:PORT or nats://HOST:PORT")
	var origins stringList
	flag.Var(&origins, "origin", "an origin pattern whose pages may connect besides the server's own (repeatable)")
	grace := flag.Duration("grace", 30*time.Second, "how long a graceful shutdown may take")
	ping := flag.Duration("ping", 0, "keepalive ping interval (0: the library's default)")
	var kept keepFlags
	flag.IntVar(&kept.historySize, "history-size", rpcws.DefaultHistorySize, "events kept per topic for recovery and topic.history (0: no history and no sessions)")
	flag.DurationVar(&kept.historyTTL, "history-ttl", rpcws.DefaultHistoryTTL, "how long an event is kept (a quiet topic's position stays recoverable)")
	flag.DurationVar(&kept.recoveryWindow, "recovery-window", rpcws.DefaultRecoveryWindow, "how long a session outlives its connection")
	flag.DurationVar(&kept.presenceTTL, "presence-ttl", rpcws.DefaultPresenceTTL, "how long the connections of a replica that died stay in topic.presence")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cluster [flags]\n\n"+
			"A connection's identity is the \"user\" query parameter of its WebSocket URL\n"+
			"(ws://HOST/rpc?user=ada): a stand-in for real authentication.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	history, presence, err := kept.options()
	if err != nil {
		fmt.Fprintln(flag.CommandLine.Output(), err)
		flag.Usage()
		os.Exit(2)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts := options{Logger: logger, OriginPatterns: origins, PingInterval: *ping, History: history, Presence: presence}
	if err := run(*addr, *broker, opts, *grace); err != nil {
		logger.Error("server failed", "error", err)
		os.Exit(1)
	}
}

// run serves one replica on addr until SIGINT or SIGTERM; opts without its
// Broker, which run makes from brokerURL.
func run(addr, brokerURL string, opts options, grace time.Duration) error {
	logger := opts.Logger
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
	opts.Broker = b
	srv := newServer(opts)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	logger.Info("rpcws cluster server listening", "broker", cmp.Or(brokerURL, "in-process"),
		"page", "http://"+ln.Addr().String()+"/", "chat", "http://"+ln.Addr().String()+"/chat/",
		"websocket", "ws://"+ln.Addr().String()+"/rpc", "history", opts.History != nil)

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

// keepFlags are the flags of history, sessions and presence.
type keepFlags struct {
	historySize                             int
	historyTTL, recoveryWindow, presenceTTL time.Duration
}

// options maps the flags onto the handler's options: history and sessions
// unless -history-size is 0, presence always.
func (f keepFlags) options() (*rpcws.HistoryOptions, *rpcws.PresenceOptions, error) {
	if f.historySize < 0 {
		return nil, nil, fmt.Errorf("-history-size %d: want 0 (no history) or more", f.historySize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-history-ttl", f.historyTTL}, {"-recovery-window", f.recoveryWindow}, {"-presence-ttl", f.presenceTTL}} {
		if d.v <= 0 {
			return nil, nil, fmt.Errorf("%s %v: want a positive duration", d.name, d.v)
		}
	}
	presence := &rpcws.PresenceOptions{TTL: f.presenceTTL}
	if f.historySize == 0 {
		return nil, presence, nil
	}
	return &rpcws.HistoryOptions{Size: f.historySize, TTL: f.historyTTL, RecoveryWindow: f.recoveryWindow}, presence, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
