package codec_test

import (
	"context"
	"errors"
	"net/rpc"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// goFunc starts a call: through the stock net/rpc client, or through the
// codec's own Go.
type goFunc func(client *rpc.Client, cc *codec.ClientCodec, method string, args, reply any) *rpc.Call

var goPaths = []struct {
	name string
	call goFunc
}{
	{"rpc.Client.Go", func(client *rpc.Client, _ *codec.ClientCodec, method string, args, reply any) *rpc.Call {
		return client.Go(method, args, reply, nil)
	}},
	{"ClientCodec.Go", func(_ *rpc.Client, cc *codec.ClientCodec, method string, args, reply any) *rpc.Call {
		return cc.Go(method, args, reply, nil)
	}},
}

// waitCall waits for call within the bubble's time.
func waitCall(t *testing.T, call *rpc.Call) *rpc.Call {
	t.Helper()
	select {
	case got := <-call.Done:
		if got != call {
			t.Fatalf("done channel gave another call")
		}
		return got
	case <-time.After(time.Minute):
		t.Fatalf("%s: no outcome within a minute", call.ServiceMethod)
		return nil
	}
}

// The codec's Go gives every outcome the stock client gives, with the same
// text and code: the reply, an error reply, a timeout, a lost connection.
// The codec's errors are *codec.Error; the stock client's error replies and
// timeouts are rpc.ServerError, as net/rpc makes them (they were
// rpc.ServerError through the codec's Go too).
func TestGoMatchesStockClient(t *testing.T) {
	type outcome struct {
		reply    int
		errText  string
		code     string
		duration time.Duration
	}
	run := func(t *testing.T, start goFunc, serve func(srv fakeServer, r request)) outcome {
		var out outcome
		synctest.Test(t, func(t *testing.T) {
			client, cc, srv := newClient(t, &codec.ClientOptions{Timeout: 3 * time.Second})
			defer client.Close()
			begin := time.Now()
			var reply int
			call := start(client, cc, "Demo.Echo", 7, &reply)
			serve(srv, srv.next())
			waitCall(t, call)
			out = outcome{reply: reply, duration: time.Since(begin)}
			if call.Error != nil {
				var e *codec.Error
				if _, stock := call.Error.(rpc.ServerError); !stock && !errors.As(call.Error, &e) {
					t.Errorf("error of type %T, want *codec.Error or rpc.ServerError", call.Error)
				}
				out.errText = call.Error.Error()
				out.code = codec.ErrorCode(call.Error)
			}
		})
		return out
	}
	cases := []struct {
		name  string
		serve func(srv fakeServer, r request)
		want  outcome
	}{
		{"reply", func(srv fakeServer, r request) { srv.reply(r, "42") },
			outcome{reply: 42}},
		{"error reply", func(srv fakeServer, r request) {
			srv.send(`{"id":%s,"type":"error","code":"NotFound","message":"no such echo"}`, r.ID)
		}, outcome{errText: "[NotFound] no such echo", code: "NotFound"}},
		{"timeout", func(fakeServer, request) {},
			outcome{errText: "timeout: demo.echo", code: "Timeout", duration: 3 * time.Second}},
		{"disconnect", func(srv fakeServer, _ request) { srv.conn.Close() },
			outcome{errText: "[Disconnected] connection closed: EOF", code: "Disconnected"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range goPaths {
				got := run(t, p.call, tc.serve)
				if got != tc.want {
					t.Errorf("%s: got %+v, want %+v", p.name, got, tc.want)
				}
			}
		})
	}
}

// After Close, both paths fail calls with rpc.ErrShutdown, pending and new.
func TestGoAfterClose(t *testing.T) {
	for _, p := range goPaths {
		t.Run(p.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client, cc, srv := newClient(t, nil)
				pending := p.call(client, cc, "Demo.Echo", 1, new(int))
				srv.next()
				client.Close()
				if err := waitCall(t, pending).Error; !errors.Is(err, rpc.ErrShutdown) {
					t.Errorf("pending call: %v, want rpc.ErrShutdown", err)
				}
				if err := waitCall(t, p.call(client, cc, "Demo.Echo", 2, new(int))).Error; !errors.Is(err, rpc.ErrShutdown) {
					t.Errorf("new call: %v, want rpc.ErrShutdown", err)
				}
			})
		})
	}
}

// A reply that does not fit its reply value fails that call alone through
// the codec's Go; the stock client ends itself, failing every call.
func TestGoUndecodableReplyFailsOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, cc, srv := newClient(t, nil)
		defer client.Close()
		var bad, good int
		badCall := cc.Go("Demo.Echo", 1, &bad, nil)
		goodCall := cc.Go("Demo.Echo", 2, &good, nil)
		r1, r2 := srv.next(), srv.next()
		srv.reply(r1, `"not a number"`)
		srv.reply(r2, "2")
		if err := waitCall(t, badCall).Error; !errors.Is(err, codec.ErrBadReply) || !strings.Contains(err.Error(), "cannot decode the reply to demo.echo") {
			t.Errorf("undecodable reply: %v, want a BadReply decoding error", err)
		}
		if err := waitCall(t, goodCall).Error; err != nil || good != 2 {
			t.Errorf("next call: %d, %v; want 2, nil", good, err)
		}
		// The connection still serves.
		var after int
		third := cc.Go("Demo.Echo", 3, &after, nil)
		srv.reply(srv.next(), "3")
		if err := waitCall(t, third).Error; err != nil || after != 3 {
			t.Errorf("call after: %d, %v; want 3, nil", after, err)
		}
	})
}

// Go panics on an unbuffered done channel, as net/rpc's does, and makes one
// when given none.
func TestGoDoneChannel(t *testing.T) {
	client, cc, _ := newClient(t, nil)
	defer client.Close()
	defer func() {
		if recover() == nil {
			t.Error("Go with an unbuffered done channel did not panic")
		}
	}()
	if call := cc.Go("Demo.Echo", 1, nil, nil); cap(call.Done) != 10 {
		t.Errorf("done channel of capacity %d, want 10", cap(call.Done))
	}
	cc.Go("Demo.Echo", 1, nil, make(chan *rpc.Call))
}

// stuckWriteConn is a Conn whose writes block until the test ends them.
type stuckWriteConn struct {
	codec.Conn
	writing chan struct{} // closed once a write has begun
	result  chan error    // what the write returns
}

func (c *stuckWriteConn) WriteFrame(context.Context, []byte) error {
	close(c.writing)
	return <-c.result
}

// A call of the codec's Go whose connection ends while its request is
// being written completes once, with the verdict of the end, though the
// write fails too: the two must not both complete it. (The stock client
// cannot meet this: net/rpc holds its sending lock during the write, and its
// reading goroutine waits for it before failing the calls.)
func TestGoConnectionEndsDuringWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		serverEnd, clientEnd := codec.Pipe()
		conn := &stuckWriteConn{Conn: clientEnd, writing: make(chan struct{}), result: make(chan error)}
		cc := codec.NewClientCodec(conn, nil)
		defer cc.Close()

		done := make(chan *rpc.Call, 2)
		started := make(chan *rpc.Call)
		go func() { started <- cc.Go("Demo.Echo", 1, new(int), done) }()
		<-conn.writing
		serverEnd.Close() // the reader learns of the end and fails the call
		synctest.Wait()
		conn.result <- errors.New("write: broken pipe")
		call := <-started
		synctest.Wait()
		if len(done) != 1 {
			t.Fatalf("the call completed %d times, want once", len(done))
		}
		if got := <-done; got != call || got.Error == nil {
			t.Errorf("completion %+v, want the call, with an error", got)
		}
	})
}
