package main

import (
	"context"
	"net/rpc/jsonrpc"

	"golang.org/x/net/websocket"
)

// classicWS is the classic way to put net/rpc on WebSocket: the standard
// JSON-RPC codec reading and writing a golang.org/x/net/websocket connection
// as a byte stream. Each message goes out as one text frame. It is the
// baseline of the "×classic" ratios.
type classicWS struct{}

func (classicWS) name() string  { return "classic-xnet" }
func (classicWS) about() string { return "net/rpc/jsonrpc over golang.org/x/net/websocket" }

func (classicWS) start() (string, func(), error) {
	srv := newRPCServer()
	// A websocket.Server without a Handshake accepts any Origin, as the
	// non-browser clients of this benchmark need.
	ws := websocket.Server{Handler: func(c *websocket.Conn) {
		srv.ServeCodec(jsonrpc.NewServerCodec(c))
	}}
	return serveHTTP(ws)
}

func (classicWS) dial(ctx context.Context, addr string) (caller, error) {
	cfg, err := websocket.NewConfig("ws://"+addr+"/", "http://"+addr+"/")
	if err != nil {
		return nil, err
	}
	c, err := cfg.DialContext(ctx)
	if err != nil {
		return nil, err
	}
	return rpcCaller{jsonrpc.NewClient(c)}, nil
}
