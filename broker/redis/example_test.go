package redis_test

import (
	"log"
	"net/http"
	"net/rpc"

	"github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/rpcws"
)

// Every replica of the service gets a broker on the same Redis server; then
// Handler.Publish reaches the connections of all of them.
func ExampleNew() {
	b, err := redis.New("redis://127.0.0.1:6379")
	if err != nil {
		log.Fatal(err)
	}
	h := rpcws.NewHandler(rpc.NewServer(), &rpcws.HandlerOptions{Broker: b}) // h owns b: Shutdown closes it
	http.Handle("/rpc", h)
}
