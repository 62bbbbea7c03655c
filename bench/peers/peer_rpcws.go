package main

import (
	"context"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// rpcwsPeer is this project: the stock net/rpc server and client speaking
// the lesson's JSON protocol over coder/websocket.
type rpcwsPeer struct{}

func (rpcwsPeer) name() string  { return "rpcws" }
func (rpcwsPeer) about() string { return "net/rpc over rpcws (this project)" }

func (rpcwsPeer) start() (string, func(), error) {
	// The defaults accept clients that send no Origin header. MaxConns is
	// lifted so that -idle can go past the default cap, as the other peers
	// have none.
	return startRPCWS(&rpcws.HandlerOptions{MaxConns: -1})
}

// startRPCWS serves the peers' methods with an rpcws Handler of opts, and
// returns its address and a function that shuts it down.
func startRPCWS(opts *rpcws.HandlerOptions) (string, func(), error) {
	h := rpcws.NewHandler(newRPCServer(), opts)
	addr, stop, err := serveHTTP(h)
	if err != nil {
		return "", nil, err
	}
	return addr, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		h.Shutdown(ctx)
		stop()
	}, nil
}

func (rpcwsPeer) dial(ctx context.Context, addr string) (caller, error) {
	c, err := rpcws.Dial(ctx, "ws://"+addr+"/", &rpcws.DialOptions{})
	if err != nil {
		return nil, err
	}
	return rpcCaller{c}, nil
}
