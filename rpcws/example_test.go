package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// Users is an ordinary net/rpc service. Registered under the name "User",
// it is reached as "user.get" from JavaScript and as "User.Get" from Go.
type Users struct{}

type UserID struct {
	ID string `json:"id"`
}

type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (Users) Get(args *UserID, reply *User) error {
	if args.ID != "123" {
		return &codec.Error{Code: "NotFound", Message: "no user " + args.ID}
	}
	*reply = User{ID: "123", Name: "Ada Lovelace"}
	return nil
}

// Serve a net/rpc server to browsers at /rpc.
func ExampleNewHandler() {
	h := rpcws.NewHandler(rpc.NewServer(), &rpcws.HandlerOptions{
		MaxInFlight: 32, // per connection
	})
	if err := h.RegisterName("User", Users{}); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/rpc", h)
	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: mux}
	_ = hs // hs.ListenAndServe()
}

// Call a server with the stock net/rpc API, and with a context.
func ExampleDial() {
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	h.RegisterName("User", Users{})
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{Timeout: 2 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var u User
	if err := client.Call("User.Get", &UserID{ID: "123"}, &u); err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Name)

	err = client.CallContext(ctx, "User.Get", &UserID{ID: "7"}, &u)
	var e *codec.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Message)
	}
	// Output:
	// Ada Lovelace
	// NotFound no user 7
}

// Ticker pushes events to the connection that called it.
type Ticker struct{}

type TickArgs struct {
	Count int `json:"count"`
	rpcws.Caller
}

func (Ticker) Start(args *TickArgs, reply *int) error {
	peer, count := args.Peer(), args.Count
	*reply = count
	args.AfterReply(func() {
		for n := 1; n <= count; n++ {
			peer.Notify(peer.Context(), "tick", n)
		}
	})
	return nil
}

// A method pushes events to its caller; a Go client gets them in OnEvent.
func ExampleCaller() {
	srv := rpc.NewServer()
	srv.Register(Ticker{})
	h := rpcws.NewHandler(srv, nil)
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())

	got := make(chan string, 3)
	client, err := rpcws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"), &rpcws.DialOptions{
		OnEvent: func(eventType string, data json.RawMessage) { got <- eventType + " " + string(data) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var n int
	if err := client.Call("Ticker.Start", &TickArgs{Count: 3}, &n); err != nil {
		log.Fatal(err)
	}
	for range n {
		fmt.Println(<-got)
	}
	// Output:
	// tick 1
	// tick 2
	// tick 3
}
