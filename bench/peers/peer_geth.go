package main

import (
	"context"

	"github.com/ethereum/go-ethereum/rpc"
)

// gethWS is go-ethereum's rpc package (JSON-RPC 2.0) over its WebSocket
// transport (gorilla/websocket underneath). Its method names are
// "service_method": arith_multiply and echo_echo.
type gethWS struct{}

func (gethWS) name() string  { return "geth-ws" }
func (gethWS) about() string { return "go-ethereum rpc over WebSocket" }

// gethArith is Arith in go-ethereum's calling convention.
type gethArith struct{}

// Multiply returns args.A * args.B.
func (gethArith) Multiply(args Args) int { return args.A * args.B }

// gethEcho is Echo in go-ethereum's calling convention.
type gethEcho struct{}

// Echo returns s.
func (gethEcho) Echo(s string) string { return s }

func (gethWS) start() (string, func(), error) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("arith", gethArith{}); err != nil {
		return "", nil, err
	}
	if err := srv.RegisterName("echo", gethEcho{}); err != nil {
		return "", nil, err
	}
	// Requests without an Origin header (non-browser clients) are accepted.
	addr, stop, err := serveHTTP(srv.WebsocketHandler(nil))
	if err != nil {
		return "", nil, err
	}
	return addr, func() { srv.Stop(); stop() }, nil
}

func (gethWS) dial(ctx context.Context, addr string) (caller, error) {
	c, err := rpc.DialWebsocket(ctx, "ws://"+addr+"/", "")
	if err != nil {
		return nil, err
	}
	return gethCaller{c}, nil
}

// gethCaller is a caller over a go-ethereum rpc.Client.
type gethCaller struct {
	c *rpc.Client
}

func (g gethCaller) multiply(a, b int) (int, error) {
	var reply int
	err := g.c.Call(&reply, "arith_multiply", Args{A: a, B: b})
	return reply, err
}

func (g gethCaller) echo(s string) (string, error) {
	var reply string
	err := g.c.Call(&reply, "echo_echo", s)
	return reply, err
}

func (g gethCaller) close() error {
	g.c.Close()
	return nil
}
