package readme_test

// docs/reconnect.md: the block dials a server that restarts, and its client
// comes back by itself.

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/rpc"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// The block's client outlives a restart of its server: OnState stores
// each state, and a call made after the restart gets its reply.
func TestReconnectBlock(t *testing.T) {
	serve := func(ln net.Listener) func() {
		h := rpcws.NewHandler(rpc.NewServer(), nil)
		h.RegisterName("User", new(Users))
		hs := &http.Server{Handler: h}
		go hs.Serve(ln)
		return func() { h.Shutdown(context.Background()); hs.Close() }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(ln)
	url := "ws://" + ln.Addr().String() + "/rpc"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	onEvent := func(string, json.RawMessage) {}
	var status atomic.Int32

	client, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{
		OnEvent: onEvent, // the events missed while away come here too, in order
		Reconnect: &rpcws.ReconnectOptions{
			OnState: func(s rpcws.ConnState) { status.Store(int32(s)) }, // for a UI or a metric
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	stop()
	testutil.WaitFor(t, "the client to notice the drop", func() bool { return rpcws.ConnState(status.Load()) == rpcws.StateReconnecting })
	if ln, err = net.Listen("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	defer serve(ln)()
	var user User
	if err := client.CallContext(ctx, "User.Get", &UserID{ID: "123"}, &user); err != nil || user.Name == "" {
		t.Fatalf("call after the restart: %+v, %v", user, err)
	}
	if got := client.State(); got != rpcws.StateConnected {
		t.Fatalf("state after the call: %v", got)
	}
	testutil.WaitFor(t, "OnState to tell", func() bool { return rpcws.ConnState(status.Load()) == rpcws.StateConnected })
}
