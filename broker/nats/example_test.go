package nats_test

import (
	"log"
	"net/http"
	"net/rpc"

	"github.com/rpcws/rpcws/broker/nats"
	"github.com/rpcws/rpcws/rpcws"
)

// Every replica of the service gets a broker on the same NATS server; then
// Handler.Publish reaches the connections of all of them.
func ExampleNew() {
	b, err := nats.New("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	h := rpcws.NewHandler(rpc.NewServer(), &rpcws.HandlerOptions{Broker: b}) // h owns b: Shutdown closes it
	http.Handle("/rpc", h)
}
