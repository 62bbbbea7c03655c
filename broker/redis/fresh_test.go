package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/internal/engines"
)

// A subscription made while the broker subscribes again to 100,000
// channels does not wait behind them: it is confirmed before the
// resubscription ends (and the gap is reported).
func TestFreshSubscribeDuringResubscription(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 100,000 subscriptions; not in -short")
	}
	srv := engines.StartT(t, engines.Redis)
	b := newBroker(t, srv.URL())
	r := &lostOnly{lost: make(chan struct{}, 16)}
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tail := strings.Repeat("_C3_A9", 64)
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 100_000; i += 64 {
				if err := b.Subscribe(ctx, fmt.Sprintf("rpcws.t.%06d%s", i, tail)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	for attempt := range 3 {
		if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		// Wait until the new connection has some channels back, not all
		// (state that no event announces: polled, within ctx).
		for len(r.lost) == 0 && !resubscribing(ctx, t, admin) {
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case <-r.lost:
			t.Logf("attempt %d: the resubscription ended before the test could subscribe", attempt)
			continue
		default:
		}
		start := time.Now()
		if err := b.Subscribe(ctx, fmt.Sprint("rpcws.t.fresh", attempt)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.lost:
			t.Fatalf("the fresh subscription returned after the resubscription (%v)", time.Since(start))
		default:
			t.Logf("fresh subscription confirmed in %v, during the resubscription", time.Since(start).Round(time.Millisecond))
			return
		}
	}
	t.Skip("the resubscription was too quick to subscribe during it")
}

// resubscribing reports whether a pub/sub client holds some channels, but
// fewer than 100,000.
func resubscribing(ctx context.Context, t *testing.T, admin *goredis.Client) bool {
	list, err := admin.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(list, "\n") {
		var n int
		if i := strings.Index(line, " sub="); i >= 0 {
			fmt.Sscanf(line[i+5:], "%d", &n)
		}
		if n > 0 && n < 100_000 {
			return true
		}
	}
	return false
}

type lostOnly struct{ lost chan struct{} }

func (r *lostOnly) Receive(string, []byte) {}
func (r *lostOnly) Lost([]string) {
	select {
	case r.lost <- struct{}{}:
	default:
	}
}
func (r *lostOnly) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
