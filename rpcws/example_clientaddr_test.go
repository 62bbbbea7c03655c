package rpcws_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"net/netip"
	"net/rpc"
	"sync"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// Behind nginx (on 10.0.0.0/8 here), cap each client's connections by the
// address nginx puts in X-Forwarded-For, and give the http.Server timeouts
// that cut idle and slow HTTP connections but not WebSockets, which live on
// after their upgrade.
func ExampleForwardedFor() {
	srv := rpc.NewServer()
	if err := srv.RegisterName("User", Users{}); err != nil {
		log.Fatal(err)
	}
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{
		MaxConns:          10000,
		MaxConnsPerClient: 200,
		ClientAddr:        rpcws.ForwardedFor(netip.MustParsePrefix("10.0.0.0/8")),
	})
	hs := &http.Server{
		Addr:              "127.0.0.1:8080",
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
	}
	_ = hs // go hs.ListenAndServe()

	// On SIGTERM: stop the HTTP server and drain the WebSockets side by
	// side, under one deadline, so that a stuck HTTP request does not hold
	// up the drain.
	shutdown := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var httpErr, wsErr error
		wg.Go(func() { httpErr = hs.Shutdown(ctx) })
		wg.Go(func() { wsErr = h.Shutdown(ctx) })
		wg.Wait()
		return errors.Join(httpErr, wsErr)
	}
	_ = shutdown
}
