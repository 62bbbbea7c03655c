package main

import (
	"context"
	"net"
	"net/rpc/jsonrpc"
)

// jsonTCP is net/rpc with the standard JSON-RPC 1.0 codec over plain TCP: the
// cost of JSON without the cost of WebSocket framing.
type jsonTCP struct{}

func (jsonTCP) name() string  { return "jsonrpc-tcp" }
func (jsonTCP) about() string { return "net/rpc/jsonrpc over TCP (stdlib)" }

func (jsonTCP) start() (string, func(), error) {
	srv := newRPCServer()
	return serveTCP(func(c net.Conn) { srv.ServeCodec(jsonrpc.NewServerCodec(c)) })
}

func (jsonTCP) dial(ctx context.Context, addr string) (caller, error) {
	c, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return rpcCaller{jsonrpc.NewClient(c)}, nil
}
