package main

import (
	"context"
	"net"
	"net/rpc"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// Gate holds a call until the test releases it, so that the test knows a
// call is in flight when it signals.
type Gate struct {
	arrived chan struct{}
	release chan struct{}
}

func (g *Gate) Wait(_ int, ok *bool) error {
	g.arrived <- struct{}{}
	<-g.release
	*ok = true
	return nil
}

// serve, on the signal (ctx ending), refuses new connections, lets the call
// in flight finish with its reply, closes the open one with 1001 and returns
// nil.
func TestServeShutsDownGracefully(t *testing.T) {
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	gate := &Gate{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	if err := h.Register(Jobs{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Register(gate); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, signal := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, h, 10*time.Second) }()

	url := "ws://" + ln.Addr().String() + "/rpc"
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := rpcws.Dial(dctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	idle, _, err := websocket.Dial(dctx, url, nil) // a connection with nothing in flight
	if err != nil {
		t.Fatal(err)
	}
	defer idle.CloseNow()
	idleEnd := make(chan error, 1)
	go func() { _, _, err := idle.Read(dctx); idleEnd <- err }() // it answers the close
	var done bool
	if err := client.CallContext(dctx, "Jobs.Run", 1, &done); err != nil || !done {
		t.Fatalf("Jobs.Run: got %v, %v; want true, nil", done, err)
	}

	var ok bool
	call := client.Go("Gate.Wait", 0, &ok, nil)
	<-gate.arrived
	signal()
	testutil.WaitFor(t, "new connections to be refused", func() bool {
		ws, _, err := websocket.Dial(dctx, url, nil) // the listener closed, or 503
		if err == nil {
			ws.CloseNow()
		}
		return err != nil
	})
	close(gate.release)
	select {
	case <-call.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight never completed")
	}
	if call.Error != nil || !ok {
		t.Fatalf("the call in flight: got %v, %v; want true, nil", ok, call.Error)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return")
	}
	if err := <-idleEnd; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("the idle connection ended with %v, want close status 1001", err)
	}
	select {
	case <-client.Done():
	case <-time.After(10 * time.Second):
		t.Error("the client's connection was not closed")
	}
}
