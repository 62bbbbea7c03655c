package rpcws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/rpc"
	"strings"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// A join over the topic limit fails with code TooManyTopics, which reaches
// the client when the method returns Join's error; leaving makes room.
func ExamplePeer_Join_limit() {
	chat := new(Chat)
	srv := rpc.NewServer()
	srv.Register(chat)
	chat.h = rpcws.NewHandler(srv, &rpcws.HandlerOptions{MaxTopicsPerConn: 2})
	hs := httptest.NewServer(chat.h)
	defer hs.Close()
	defer chat.h.Shutdown(context.Background())

	c, err := rpcws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	var ok bool
	for _, room := range []string{"a", "b", "c"} {
		err := c.Call("Chat.Join", &RoomArgs{Room: room}, &ok)
		fmt.Printf("join %s: %q\n", room, codec.ErrorCode(err))
	}
	// Output:
	// join a: ""
	// join b: ""
	// join c: "TooManyTopics"
}
