package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
)

// The cost of history on a publish: a plain PUBLISH against the script
// that also keeps the event and the position, from parallel publishers,
// with a subscriber of the topic.
func BenchmarkPublish(b *testing.B) {
	for _, history := range []bool{false, true} {
		name := "plain"
		if history {
			name = "history"
		}
		b.Run(name, func(b *testing.B) {
			srv := engines.StartT(b, engines.Redis)
			pub := started(b, srv.URL(), nopHistory{})
			started(b, srv.URL(), nopHistory{}, "rpcws.t.bench")
			msg := make([]byte, 200)
			msg[0] = 1
			p := rpcws.HistoryPolicy{Size: 100, TTL: 5 * time.Minute}
			b.ReportAllocs()
			b.SetParallelism(16) // 16 publishers a core: Redis, not the round trip, is the bound
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					var err error
					if history {
						_, err = pub.PublishHistory(ctx, "rpcws.t.bench", msg, p)
					} else {
						err = pub.Publish(ctx, "rpcws.t.bench", msg)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cmd := "publish"
			if history {
				cmd = "evalsha"
			}
			b.ReportMetric(redisMicros(b, srv.Addr, cmd), "redis-µs/op")
		})
	}
}

// redisMicros returns the microseconds of Redis's CPU per call of cmd, as
// INFO commandstats tells them.
func redisMicros(b *testing.B, addr, cmd string) float64 {
	admin := goredis.NewClient(&goredis.Options{Addr: addr})
	defer admin.Close()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":"); ok {
			for _, f := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(f, "usec_per_call="); ok {
					x, _ := strconv.ParseFloat(v, 64)
					return x
				}
			}
		}
	}
	b.Fatalf("no %s in INFO commandstats", cmd)
	return 0
}
