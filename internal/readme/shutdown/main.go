// A server that shuts down gracefully on SIGINT or SIGTERM: calls in flight
// get their replies, then every connection closes with 1001 (going away).
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// Jobs has a method that takes its time, as real ones do.
type Jobs struct{}

func (Jobs) Run(ms int, done *bool) error {
	time.Sleep(time.Duration(ms) * time.Millisecond)
	*done = true
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := rpcws.NewHandler(rpc.NewServer(), nil)
	if err := h.Register(Jobs{}); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving ws://%s/rpc", ln.Addr())
	if err := serve(ctx, ln, h, 30*time.Second); err != nil {
		log.Fatal(err)
	}
}

// serve serves h at /rpc on ln until ctx ends, then shuts down within grace:
// the HTTP server and the WebSockets side by side, under one deadline.
func serve(ctx context.Context, ln net.Listener, h *rpcws.Handler, grace time.Duration) error {
	mux := http.NewServeMux()
	mux.Handle("/rpc", h)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // these bound plain HTTP only:
		ReadTimeout:       30 * time.Second, // a WebSocket lives on past them
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err // the listener failed
	case <-ctx.Done():
	}

	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	var httpErr, wsErr error
	wg.Go(func() { httpErr = hs.Shutdown(ctx) })
	wg.Go(func() { wsErr = h.Shutdown(ctx) }) // replies to calls in flight, then closes
	wg.Wait()
	<-served // http.ErrServerClosed
	return errors.Join(httpErr, wsErr)
}
