package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/gorilla/websocket"
	"github.com/sourcegraph/jsonrpc2"
	wsstream "github.com/sourcegraph/jsonrpc2/websocket"
)

// sourcegraphWS is github.com/sourcegraph/jsonrpc2 (JSON-RPC 2.0) over
// github.com/gorilla/websocket, one JSON object per frame. The server handles
// each request on its own goroutine (jsonrpc2.AsyncHandler), as net/rpc does.
type sourcegraphWS struct {
	// quiet drops jsonrpc2's log lines about connections closed by the
	// benchmark. One logger serves every connection.
	quiet jsonrpc2.ConnOpt
}

func newSourcegraphWS() sourcegraphWS {
	return sourcegraphWS{quiet: jsonrpc2.SetLogger(log.New(io.Discard, "", 0))}
}

func (sourcegraphWS) name() string  { return "sourcegraph-gorilla" }
func (sourcegraphWS) about() string { return "sourcegraph/jsonrpc2 over gorilla/websocket" }

func (s sourcegraphWS) start() (string, func(), error) {
	var upgrader websocket.Upgrader // no Origin header: accepted
	handler := jsonrpc2.AsyncHandler(jsonrpc2.HandlerWithError(sourcegraphHandle))
	return serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn := jsonrpc2.NewConn(context.Background(), wsstream.NewObjectStream(c), handler, s.quiet)
		<-conn.DisconnectNotify()
	}))
}

// sourcegraphHandle serves Arith.Multiply and Echo.Echo.
func sourcegraphHandle(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	if req.Params == nil {
		return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: "missing params"}
	}
	switch req.Method {
	case "Arith.Multiply":
		var args Args
		if err := json.Unmarshal(*req.Params, &args); err != nil {
			return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: err.Error()}
		}
		return args.A * args.B, nil
	case "Echo.Echo":
		var s string
		if err := json.Unmarshal(*req.Params, &s); err != nil {
			return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: err.Error()}
		}
		return s, nil
	}
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: fmt.Sprintf("no method %q", req.Method)}
}

func (s sourcegraphWS) dial(ctx context.Context, addr string) (caller, error) {
	c, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	conn := jsonrpc2.NewConn(context.Background(), wsstream.NewObjectStream(c), noRequests{}, s.quiet)
	return sourcegraphCaller{conn}, nil
}

// noRequests is the client's handler: the server never sends requests.
type noRequests struct{}

func (noRequests) Handle(context.Context, *jsonrpc2.Conn, *jsonrpc2.Request) {}

// sourcegraphCaller is a caller over a jsonrpc2.Conn.
type sourcegraphCaller struct {
	c *jsonrpc2.Conn
}

func (s sourcegraphCaller) multiply(a, b int) (int, error) {
	var reply int
	err := s.c.Call(context.Background(), "Arith.Multiply", Args{A: a, B: b}, &reply)
	return reply, err
}

func (s sourcegraphCaller) echo(msg string) (string, error) {
	var reply string
	err := s.c.Call(context.Background(), "Echo.Echo", msg, &reply)
	return reply, err
}

func (s sourcegraphCaller) close() error { return s.c.Close() }
