// A Go client of the server in ../server: net/rpc's API, plus contexts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

type UserID struct {
	ID string `json:"id"`
}

type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/rpc", "the server's WebSocket endpoint")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := rpcws.Dial(ctx, *url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var user User
	err = client.Call("User.Get", &UserID{ID: "123"}, &user) // net/rpc's signature; sent as "user.get"
	fmt.Println(user.Name, err)                              // Ada Lovelace <nil>

	err = client.CallContext(ctx, "User.Get", &UserID{ID: "7"}, &user) // bounded by ctx
	var e *codec.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Message) // NotFound no user with id "7"
	}
}
