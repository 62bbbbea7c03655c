package codec_test

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// Arith is an ordinary net/rpc service.
type Arith struct{}

type Args struct{ A, B int }

func (Arith) Multiply(args *Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

func (Arith) Divide(args *Args, reply *int) error {
	if args.B == 0 {
		return &codec.Error{Code: "DivideByZero", Message: "cannot divide by zero"}
	}
	*reply = args.A / args.B
	return nil
}

// An unchanged net/rpc server and client, talking the wire protocol over an
// in-memory pipe. Over a WebSocket, package rpcws does the same.
func Example() {
	srv := rpc.NewServer()
	if err := srv.Register(Arith{}); err != nil {
		panic(err)
	}
	serverEnd, clientEnd := codec.Pipe()
	go srv.ServeCodec(codec.NewServerCodec(serverEnd, nil))

	client := rpc.NewClientWithCodec(codec.NewClientCodec(clientEnd, nil))
	defer client.Close()

	var product int
	if err := client.Call("Arith.Multiply", &Args{6, 7}, &product); err != nil {
		panic(err)
	}
	fmt.Println(product)

	err := client.Call("Arith.Divide", &Args{1, 0}, &product)
	fmt.Println(err)
	if e, ok := codec.AsError(err); ok {
		fmt.Println(e.Code, "/", e.Message)
	}
	// Output:
	// 42
	// [DivideByZero] cannot divide by zero
	// DivideByZero / cannot divide by zero
}

// Call bounds one call with a context and returns coded errors as *codec.Error.
func ExampleClientCodec_Call() {
	srv := rpc.NewServer()
	if err := srv.Register(Arith{}); err != nil {
		panic(err)
	}
	serverEnd, clientEnd := codec.Pipe()
	go srv.ServeCodec(codec.NewServerCodec(serverEnd, nil))
	cc := codec.NewClientCodec(clientEnd, nil)
	defer cc.Close()

	var quotient int
	err := cc.Call(context.Background(), "Arith.Divide", &Args{1, 0}, &quotient)
	var e *codec.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code)
	}
	err = cc.Call(context.Background(), "Arith.Nope", &Args{1, 0}, &quotient)
	fmt.Println(codec.ErrorCode(err), err)
	// Output:
	// DivideByZero
	// MethodNotFound [MethodNotFound] method not found: arith.nope
}

// A context's deadline is one call's timeout, shorter or longer than the
// client's: the call fails as at the client's timeout, with an error that
// matches both ErrTimeout and context.DeadlineExceeded.
func ExampleClientCodec_Call_timeout() {
	serverEnd, clientEnd := codec.Pipe()
	go func() { // a server that never answers
		for {
			if _, err := serverEnd.ReadFrame(context.Background(), nil); err != nil {
				return
			}
		}
	}()
	cc := codec.NewClientCodec(clientEnd, &codec.ClientOptions{Timeout: time.Minute})
	defer cc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := cc.Call(ctx, "Reports.Build", nil, nil)
	fmt.Println(err, codec.ErrorCode(err), errors.Is(err, codec.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// timeout: reports.build Timeout true true
}
