package codec_test

import (
	"bytes"
	"context"
	"io"
	"net/rpc"
	"strings"
	"sync"
	"testing"

	"github.com/rpcws/rpcws/codec"
)

type benchArgs struct{ A, B int }

// frameSource is a Conn that reads the same frame forever and discards what
// is written: the codec alone, without a transport.
type frameSource struct{ frame []byte }

func (s frameSource) ReadFrame(_ context.Context, buf []byte) ([]byte, error) {
	return append(buf[:0], s.frame...), nil
}
func (frameSource) WriteFrame(context.Context, []byte) error { return nil }
func (frameSource) Close() error                             { return nil }

// Decode a request: the envelope, the name mapping, and the data into
// net/rpc's argument value.
func BenchmarkServerReadRequest(b *testing.B) {
	sc := codec.NewServerCodec(frameSource{[]byte(`{"id":"3f0c8a52-6e0e-4f7a-9a53-1c2b3d4e5f60","type":"arith.multiply","data":{"A":6,"B":7}}`)}, nil)
	var r rpc.Request
	var args benchArgs
	b.ReportAllocs()
	for range b.N {
		if err := sc.ReadRequestHeader(&r); err != nil {
			b.Fatal(err)
		}
		if err := sc.ReadRequestBody(&args); err != nil {
			b.Fatal(err)
		}
		sc.WriteResponse(&rpc.Response{Seq: r.Seq}, 42) // frees its place
	}
}

// Decode a request whose data is a 1 KiB string, and encode its echo: the
// passes over the payload on the server.
func BenchmarkServerEcho1KiB(b *testing.B) {
	payload := strings.Repeat("0123456789abcdef", 64)
	sc := codec.NewServerCodec(frameSource{[]byte(`{"id":"3f0c8a52-6e0e-4f7a-9a53-1c2b3d4e5f60","type":"echo.echo","data":"` + payload + `"}`)}, nil)
	var r rpc.Request
	var s string
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for range b.N {
		if err := sc.ReadRequestHeader(&r); err != nil {
			b.Fatal(err)
		}
		if err := sc.ReadRequestBody(&s); err != nil {
			b.Fatal(err)
		}
		sc.WriteResponse(&rpc.Response{Seq: r.Seq}, &s)
	}
}

// Encode a reply.
func BenchmarkServerWriteResponse(b *testing.B) {
	sc := codec.NewServerCodec(frameSource{[]byte(`{"id":"3f0c8a52-6e0e-4f7a-9a53-1c2b3d4e5f60","type":"arith.multiply","data":{"A":6,"B":7}}`)}, &codec.ServerOptions{Admission: codec.NewAdmission(&codec.AdmissionOptions{MaxInFlight: -1, MaxConnBytes: -1})}) // all b.N requests held at once
	var r rpc.Request
	seqs := make([]uint64, b.N)
	for i := range seqs {
		sc.ReadRequestHeader(&r)
		sc.ReadRequestBody(nil)
		seqs[i] = r.Seq
	}
	reply := 42
	b.ReportAllocs()
	b.ResetTimer()
	for _, seq := range seqs {
		if err := sc.WriteResponse(&rpc.Response{Seq: seq}, &reply); err != nil {
			b.Fatal(err)
		}
	}
}

// echoConn answers every request the client writes with a reply carrying its
// id, as a server would: the client codec alone, both directions.
type echoConn struct {
	replies chan []byte
	done    chan struct{}
	once    sync.Once
}

func (c *echoConn) WriteFrame(_ context.Context, p []byte) error {
	i := bytes.Index(p, []byte(`","type"`))
	c.replies <- append([]byte(`{"id":"`+string(p[7:i])+`","type":"arith.multiply.response","data":42}`), nil...)
	return nil
}

func (c *echoConn) ReadFrame(_ context.Context, buf []byte) ([]byte, error) {
	select {
	case p := <-c.replies:
		return append(buf[:0], p...), nil
	case <-c.done:
		return nil, io.EOF
	}
}

func (c *echoConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// A call through the client codec: encode the request, decode the reply,
// match it. With the stock rpc.Client on top, and with Call.
func BenchmarkClientCall(b *testing.B) {
	newConn := func() *echoConn { return &echoConn{replies: make(chan []byte, 1), done: make(chan struct{})} }
	b.Run("stock", func(b *testing.B) {
		client := rpc.NewClientWithCodec(codec.NewClientCodec(newConn(), nil))
		defer client.Close()
		var reply int
		b.ReportAllocs()
		for range b.N {
			if err := client.Call("Arith.Multiply", &benchArgs{6, 7}, &reply); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("context", func(b *testing.B) {
		cc := codec.NewClientCodec(newConn(), nil)
		defer cc.Close()
		ctx := context.Background()
		var reply int
		b.ReportAllocs()
		for range b.N {
			if err := cc.Call(ctx, "Arith.Multiply", &benchArgs{6, 7}, &reply); err != nil {
				b.Fatal(err)
			}
		}
	})
}
