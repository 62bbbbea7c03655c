package readme_test

// README.md, "Push": the block is TicksArgs and Demo.Ticks as they stand.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// Demo, TicksReply and Tick are what the README's block takes as given.
type Demo struct{}

type TicksReply struct {
	Count int `json:"count"`
}

type Tick struct {
	N int `json:"n"`
}

type TicksArgs struct {
	Count      int `json:"count"`
	IntervalMs int `json:"intervalMs"`
	rpcws.Caller
}

func (Demo) Ticks(args *TicksArgs, reply *TicksReply) error {
	reply.Count = args.Count
	peer := args.Peer()
	args.AfterReply(func() { // runs once the reply has been written
		for n := 1; n <= args.Count; n++ {
			if peer.Notify(peer.Context(), "demo.tick", Tick{N: n}) != nil {
				return // the connection closed, or no rpcws connection
			}
		}
	})
	return nil
}

// Served by rpcws, the README's Ticks pushes its events after its reply.
func TestPushBlock(t *testing.T) {
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	if err := h.Register(Demo{}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	events := make(chan string, 10)
	client, err := rpcws.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), &rpcws.DialOptions{
		OnEvent: func(typ string, data json.RawMessage) { events <- typ + " " + string(data) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var reply TicksReply
	if err := client.CallContext(ctx, "Demo.Ticks", &TicksArgs{Count: 3}, &reply); err != nil || reply.Count != 3 {
		t.Fatalf("Demo.Ticks: got %+v, %v; want count 3", reply, err)
	}
	for n := 1; n <= 3; n++ {
		select {
		case got := <-events:
			if want := fmt.Sprintf(`demo.tick {"n":%d}`, n); got != want {
				t.Errorf("event %d: got %s, want %s", n, got, want)
			}
		case <-ctx.Done():
			t.Fatalf("event %d never came", n)
		}
	}
}

// Served through the codec alone, as "Swapping the codec" allows, the
// README's Ticks replies and pushes nothing: its Peer is nil, and the nil
// Peer's Notify fails instead of crashing the server.
func TestPushBlockThroughAnotherCodec(t *testing.T) {
	srv := rpc.NewServer()
	if err := srv.Register(Demo{}); err != nil {
		t.Fatal(err)
	}
	serverConn, clientConn := codec.Pipe()
	served := make(chan struct{})
	go func() { srv.ServeCodec(codec.NewServerCodec(serverConn, nil)); close(served) }()
	events := make(chan string, 10)
	cc := codec.NewClientCodec(clientConn, &codec.ClientOptions{
		OnEvent: func(typ string, _ json.RawMessage) { events <- typ },
	})
	client := rpc.NewClientWithCodec(cc)
	for range 2 { // a second call shows the server still serving
		var reply TicksReply
		if err := client.Call("Demo.Ticks", &TicksArgs{Count: 3}, &reply); err != nil || reply.Count != 3 {
			t.Fatalf("Demo.Ticks: got %+v, %v; want count 3", reply, err)
		}
	}
	client.Close()
	<-served
	select {
	case typ := <-events:
		t.Errorf("got an event %s through a codec without push", typ)
	default:
	}
}
