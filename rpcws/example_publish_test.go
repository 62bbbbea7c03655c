package rpcws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// Chat is a service whose methods join rooms and publish to them.
type Chat struct {
	h *rpcws.Handler
}

type RoomArgs struct {
	Room string `json:"room"`
	Text string `json:"text"`
	rpcws.Caller
}

// Join makes the caller a member of a room, on every replica.
func (c *Chat) Join(args *RoomArgs, ok *bool) error {
	*ok = true
	p := args.Peer()
	return p.Join(p.Context(), args.Room)
}

// Say publishes to every member of the room but the sender.
func (c *Chat) Say(args *RoomArgs, ok *bool) error {
	*ok = true
	to := rpcws.Topic(args.Room).Except(args.Peer())
	return c.h.Publish(context.Background(), to, "chat.said", args.Text)
}

// Two replicas share one broker, here the in-process MemoryBus; across
// processes give each replica a Redis or NATS broker instead
// (github.com/rpcws/rpcws/broker/redis, github.com/rpcws/rpcws/broker/nats).
// A member connected to one replica hears what is said on the other.
func ExampleHandler_Publish() {
	var bus rpcws.MemoryBus
	var urls []string
	for range 2 {
		chat := new(Chat)
		srv := rpc.NewServer()
		srv.Register(chat)
		chat.h = rpcws.NewHandler(srv, &rpcws.HandlerOptions{
			Broker: bus.NewBroker(),
			// The user address: a string identity is the user name.
			Authorize: func(r *http.Request) (any, error) { return r.URL.Query().Get("user"), nil },
		})
		hs := httptest.NewServer(chat.h)
		defer hs.Close()
		defer chat.h.Shutdown(context.Background())
		urls = append(urls, "ws"+strings.TrimPrefix(hs.URL, "http"))
	}

	ctx := context.Background()
	heard := make(chan string, 1)
	ada, err := rpcws.Dial(ctx, urls[0]+"?user=ada", &rpcws.DialOptions{
		OnEvent: func(typ string, data json.RawMessage) { heard <- typ + " " + string(data) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ada.Close()
	bob, err := rpcws.Dial(ctx, urls[1]+"?user=bob", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()

	var ok bool
	ada.Call("Chat.Join", &RoomArgs{Room: "room 42"}, &ok)
	bob.Call("Chat.Join", &RoomArgs{Room: "room 42"}, &ok)
	bob.Call("Chat.Say", &RoomArgs{Room: "room 42", Text: "hello"}, &ok)
	select {
	case e := <-heard:
		fmt.Println(e)
	case <-time.After(10 * time.Second):
		fmt.Println("nothing heard")
	}
	// Output: chat.said "hello"
}
