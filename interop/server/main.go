// Command server runs the rpcws reference server: the reference services of
// PROTOCOL.md over WebSocket at /rpc, and the live demo page at /.
//
//	go run ./interop/server [-addr 127.0.0.1:8080] [-origin host:port]... [-grace 30s]
//	    [-read-timeout 30s] [-write-timeout 30s] [-idle-timeout 30s]
//	    [-trusted-proxy 10.0.0.0/8]... [-max-conns-per-client n]
//
// The HTTP timeouts bound plain HTTP connections (the page, idle
// keep-alives); WebSocket connections outlive them. Behind reverse proxies,
// list them with -trusted-proxy so that the per-client connection cap counts
// the clients named in X-Forwarded-For, not the proxies.
//
// On SIGINT or SIGTERM it shuts down gracefully: the HTTP server stops and,
// side by side, the WebSocket connections drain (requests in flight get their
// replies, new ones Unavailable), then every connection is closed with 1001.
// A second signal, or the end of the grace period, closes everything at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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
	var timeouts refserver.Timeouts
	flag.DurationVar(&timeouts.Read, "read-timeout", refserver.DefaultReadTimeout, "how long a plain HTTP request may take to arrive (negative: none)")
	flag.DurationVar(&timeouts.Write, "write-timeout", refserver.DefaultWriteTimeout, "how long a plain HTTP response may take (negative: none)")
	flag.DurationVar(&timeouts.Idle, "idle-timeout", refserver.DefaultIdleTimeout, "how long a keep-alive connection may wait for its next request (negative: none)")
	var proxies prefixList
	flag.Var(&proxies, "trusted-proxy", "a reverse proxy's address or prefix, whose X-Forwarded-For is believed (repeatable)")
	perClient := flag.Int("max-conns-per-client", 0, "WebSocket connections per client address (0: the library's default, negative: no cap)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts := &refserver.Options{
		Logger:            logger,
		OriginPatterns:    origins,
		PingInterval:      *ping,
		TrustedProxies:    proxies,
		MaxConnsPerClient: *perClient,
	}
	if err := run(*addr, opts, &timeouts, *grace, logger); err != nil {
		logger.Error("server failed", "error", err)
		os.Exit(1)
	}
}

func run(addr string, opts *refserver.Options, timeouts *refserver.Timeouts, grace time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ref := refserver.New(opts)
	hs := ref.HTTPServer(timeouts)

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
	if err := ref.ShutdownHTTP(sctx, hs); err != nil {
		logger.Warn("shutdown cut short", "error", err)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// prefixList is a repeatable flag of IP prefixes; a bare address is a prefix
// of its full length.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	if p, err := netip.ParsePrefix(v); err == nil {
		*l = append(*l, p)
		return nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return fmt.Errorf("not an IP address or prefix: %q", v)
	}
	a = a.Unmap()
	*l = append(*l, netip.PrefixFrom(a, a.BitLen()))
	return nil
}
