package rpcws_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/rpc"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// A client that outlives a restart of its server: the calls made while the
// server is away wait for the new connection (within their timeout), and
// OnState tells a UI where the connection stands. Against a server that
// keeps history (HandlerOptions.History), the client also gets back its
// topics and the events it missed, through OnEvent, with no code of its
// own.
func ExampleDialOptions_reconnect() {
	serve := func(ln net.Listener) (*rpcws.Handler, *http.Server) {
		h := rpcws.NewHandler(rpc.NewServer(), nil)
		h.RegisterName("User", Users{})
		hs := &http.Server{Handler: h}
		go hs.Serve(ln)
		return h, hs
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	h, hs := serve(ln)

	states := make(chan rpcws.ConnState, 8) // OnState must not block
	client, err := rpcws.Dial(context.Background(), "ws://"+addr+"/rpc", &rpcws.DialOptions{
		Timeout: 10 * time.Second, // also bounds a call's wait for the new connection
		Reconnect: &rpcws.ReconnectOptions{
			MaxDelay: 2 * time.Second, // 200 ms, 400 ms, ... 2 s between attempts
			OnState:  func(s rpcws.ConnState) { states <- s },
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// The server restarts.
	h.Shutdown(context.Background())
	hs.Close()
	fmt.Println(<-states)
	if ln, err = net.Listen("tcp", addr); err != nil {
		log.Fatal(err)
	}
	h, hs = serve(ln)
	defer hs.Close()
	defer h.Shutdown(context.Background())

	var u User
	err = client.Call("User.Get", &UserID{ID: "123"}, &u) // waits for the new connection
	fmt.Println(u.Name, err)
	fmt.Println(<-states, client.State())
	// Output:
	// reconnecting
	// Ada Lovelace <nil>
	// connected connected
}
