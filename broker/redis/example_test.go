package redis_test

import (
	"log"
	"net/http"
	"net/rpc"
	"time"

	goredis "github.com/redis/go-redis/v9"

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

// With history and presence turned on, the replicas keep each topic's
// recent events, the sessions of their connections and who is in each
// topic in the same Redis: a client that reconnects to any replica within
// the recovery window gets its topics and the events it missed.
func ExampleNewWithOptions_history() {
	b := redis.NewWithOptions(redis.Options{
		Redis:     &goredis.Options{Addr: "127.0.0.1:6379"},
		KeyPrefix: "chat:", // the service's keys: chat:h:…, chat:s:…, chat:p:…
	})
	h := rpcws.NewHandler(rpc.NewServer(), &rpcws.HandlerOptions{
		Broker:   b,
		History:  &rpcws.HistoryOptions{Size: 200, TTL: 10 * time.Minute},
		Presence: &rpcws.PresenceOptions{},
	})
	http.Handle("/rpc", h)
}
