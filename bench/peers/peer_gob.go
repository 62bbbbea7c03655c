package main

import (
	"context"
	"net"
	"net/rpc"
)

// gobTCP is net/rpc with its default gob codec over plain TCP: the fastest
// thing the standard library offers, but no browser can speak it.
type gobTCP struct{}

func (gobTCP) name() string  { return "gob-tcp" }
func (gobTCP) about() string { return "net/rpc + gob over TCP (stdlib)" }

func (gobTCP) start() (string, func(), error) {
	srv := newRPCServer()
	return serveTCP(func(c net.Conn) { srv.ServeConn(c) })
}

func (gobTCP) dial(ctx context.Context, addr string) (caller, error) {
	c, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return rpcCaller{rpc.NewClient(c)}, nil
}
