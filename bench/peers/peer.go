package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/rpc"
	"strings"
	"sync"
)

// A peer is one way of doing RPC between two Go processes. Every peer serves
// the same two methods (see [Arith] and [Echo]) and is measured by the same
// workloads.
type peer interface {
	// name is the short label used in tables and in the -peers flag.
	name() string
	// about says in a few words what the peer is.
	about() string
	// start serves the peer's methods on a fresh listener on 127.0.0.1 and
	// returns the address to dial and a function that stops the server and
	// closes every connection it accepted.
	start() (addr string, stop func(), err error)
	// dial opens one connection to addr. ctx bounds the dial only, never the
	// life of the connection.
	dial(ctx context.Context, addr string) (caller, error)
}

// A caller is one client connection. Its methods are safe for concurrent use:
// the shared-connection workloads call one caller from many goroutines.
type caller interface {
	// multiply calls Arith.Multiply (or the peer's equivalent) and returns a*b.
	multiply(a, b int) (int, error)
	// echo calls Echo.Echo (or the peer's equivalent) and returns s.
	echo(s string) (string, error)
	// close closes the connection; calls in flight fail.
	close() error
}

// Args are the operands of Arith.Multiply.
type Args struct {
	A, B int
}

// Arith is the small-method service of every net/rpc peer.
type Arith struct{}

// Multiply sets reply to args.A * args.B.
func (*Arith) Multiply(args *Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

// Echo is the payload service of every net/rpc peer.
type Echo struct{}

// Echo sets reply to s.
func (*Echo) Echo(s string, reply *string) error {
	*reply = s
	return nil
}

// newRPCServer returns a net/rpc server with Arith and Echo registered.
func newRPCServer() *rpc.Server {
	srv := rpc.NewServer()
	if err := srv.Register(new(Arith)); err != nil {
		panic(err) // the types above are valid services
	}
	if err := srv.Register(new(Echo)); err != nil {
		panic(err)
	}
	return srv
}

// rpcCaller is a caller over a net/rpc client, whatever its codec, or over a
// client with the same Call, such as *rpcws.Client.
type rpcCaller struct {
	c interface {
		Call(serviceMethod string, args, reply any) error
		Close() error
	}
}

func (r rpcCaller) multiply(a, b int) (int, error) {
	var reply int
	err := r.c.Call("Arith.Multiply", &Args{A: a, B: b}, &reply)
	return reply, err
}

func (r rpcCaller) echo(s string) (string, error) {
	var reply string
	err := r.c.Call("Echo.Echo", s, &reply)
	return reply, err
}

func (r rpcCaller) close() error { return r.c.Close() }

// trackingListener remembers every connection it accepts, so that stopping
// a server also closes connections that were handed over (hijacked) to a
// WebSocket library and are no longer known to net/http.
type trackingListener struct {
	net.Listener

	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// closeAll closes the listener and every accepted connection.
func (l *trackingListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// listenLocal listens on a free port of 127.0.0.1.
func listenLocal() (*trackingListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return &trackingListener{Listener: ln}, nil
}

// serveTCP accepts raw TCP connections on 127.0.0.1 and hands each to serve
// on its own goroutine.
func serveTCP(serve func(net.Conn)) (addr string, stop func(), err error) {
	ln, err := listenLocal()
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String(), ln.closeAll, nil
}

// serveHTTP serves h over HTTP on 127.0.0.1 and returns the host:port.
func serveHTTP(h http.Handler) (addr string, stop func(), err error) {
	ln, err := listenLocal()
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	stop = func() {
		srv.Close()
		ln.closeAll()
	}
	return ln.Addr().String(), stop, nil
}

// dialTCP opens a TCP connection to addr within ctx.
func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// errWrongReply reports a reply that is not what the method returns.
var errWrongReply = errors.New("wrong reply")

// checkMultiply calls c.multiply and checks the product.
func checkMultiply(c caller, a, b int) error {
	got, err := c.multiply(a, b)
	if err != nil {
		return err
	}
	if got != a*b {
		return fmt.Errorf("%w: multiply(%d, %d) = %d", errWrongReply, a, b, got)
	}
	return nil
}

// checkEcho calls c.echo and checks that s came back.
func checkEcho(c caller, s string) error {
	got, err := c.echo(s)
	if err != nil {
		return err
	}
	if got != s {
		return fmt.Errorf("%w: echo of %d bytes returned %d bytes", errWrongReply, len(s), len(got))
	}
	return nil
}

// payload returns an n-byte ASCII string for the echo workload.
func payload(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.Grow(n)
	for i := range n {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}
