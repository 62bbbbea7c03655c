package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// Of 30 callers on three brokers taking one session at once, one gets it;
// the key in Redis does not contain the id.
func TestSessionTakeOnce(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokers := []rpcws.SessionBroker{
		started(t, srv.URL(), nopHistory{}), started(t, srv.URL(), nopHistory{}), started(t, srv.URL(), nopHistory{}),
	}
	ctx := ctxT(t)
	const id = "s3cr3t-session-id"
	for round := range 5 {
		if err := brokers[0].SaveSession(ctx, id, []byte(fmt.Sprint("record", round)), time.Minute); err != nil {
			t.Fatal(err)
		}
		var got atomic.Int32
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				rec, err := brokers[i%3].TakeSession(ctx, id)
				switch {
				case err == nil && string(rec) == fmt.Sprint("record", round):
					got.Add(1)
				case !errors.Is(err, rpcws.ErrNoSession):
					t.Errorf("take: %q, %v", rec, err)
				}
			})
		}
		wg.Wait()
		if got.Load() != 1 {
			t.Fatalf("round %d: %d callers got the session, want 1", round, got.Load())
		}
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := brokers[1].SaveSession(ctx, id, []byte("r"), time.Minute); err != nil {
		t.Fatal(err)
	}
	keys, err := admin.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 1 || strings.Contains(keys[0], id) || !strings.HasPrefix(keys[0], "rpcws:s:") {
		t.Fatalf("keys %q, %v: want one session key without the id", keys, err)
	}
}

// A session expires after its TTL unless touched; touching sets the TTL of
// those that exist and creates none.
func TestSessionExpiryAndTouch(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	b := started(t, srv.URL(), nopHistory{})
	ctx := ctxT(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := b.SaveSession(ctx, "short", []byte("r"), 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the session to expire", func() bool {
		_, err := b.TakeSession(ctx, "short")
		if err != nil && !errors.Is(err, rpcws.ErrNoSession) {
			t.Fatal(err)
		}
		return err != nil
	})
	ids := make([]string, 2500) // three batches
	for i := range ids {
		ids[i] = fmt.Sprint("id", i)
		if i%2 == 0 {
			if err := b.SaveSession(ctx, ids[i], []byte(ids[i]), time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.TouchSessions(ctx, ids, time.Hour); err != nil {
		t.Fatal(err)
	}
	keys, err := admin.Keys(ctx, "rpcws:s:*").Result()
	if err != nil || len(keys) != 1250 {
		t.Fatalf("%d session keys, %v; want 1250 (touching creates none)", len(keys), err)
	}
	for _, k := range keys {
		if ttl := admin.PTTL(ctx, k).Val(); ttl < 59*time.Minute {
			t.Fatalf("a touched session expires in %v, want an hour", ttl)
		}
	}
	rec, err := b.TakeSession(ctx, "id2498")
	if err != nil || string(rec) != "id2498" {
		t.Fatalf("take after touch: %q %v", rec, err)
	}
}

// Entries of a node that stops refreshing them go within their TTL; a
// removed one goes at once; expired ones are deleted by the next read.
func TestPresenceExpiry(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	live, dead := started(t, srv.URL(), nopHistory{}), started(t, srv.URL(), nopHistory{})
	ctx := ctxT(t)
	const topic = "rpcws.t.room"
	const ttl = 200 * time.Millisecond
	added := time.Now()
	if err := dead.AddPresence(ctx, ttl,
		rpcws.PresenceEntry{Topic: topic, Peer: "d1", Info: []byte(`"eve"`)},
		rpcws.PresenceEntry{Topic: topic, Peer: "d2"},
		rpcws.PresenceEntry{Topic: "rpcws.t.other", Peer: "d1"}); err != nil {
		t.Fatal(err)
	}
	dead.Close() // a replica that died: its entries are never refreshed
	add := func() {
		if err := live.AddPresence(ctx, time.Minute,
			rpcws.PresenceEntry{Topic: topic, Peer: "l1", Info: []byte(`"ada"`)},
			rpcws.PresenceEntry{Topic: topic, Peer: "l2", Info: []byte(`"bob"`)}); err != nil {
			t.Fatal(err)
		}
	}
	add()
	add() // refreshing adds nothing twice
	if got := peers(t, live, topic); !slices.Equal(got, []string{"d1=\"eve\"", "d2=", "l1=\"ada\"", "l2=\"bob\""}) {
		t.Fatalf("presence %q", got)
	}
	if err := live.RemovePresence(ctx, rpcws.PresenceEntry{Topic: topic, Peer: "l2"}); err != nil {
		t.Fatal(err)
	}
	if got := peers(t, live, topic); !slices.Equal(got, []string{"d1=\"eve\"", "d2=", "l1=\"ada\""}) {
		t.Fatalf("presence after a removal %q", got)
	}
	waitUntil(t, "the dead replica's entries to go", func() bool {
		return slices.Equal(peers(t, live, topic), []string{"l1=\"ada\""})
	})
	// Expiry is Redis's clock against the score: exact, but the machine
	// may be busy; a second of margin.
	if d := time.Since(added); d > ttl+time.Second {
		t.Errorf("the dead replica's entries went %v after they were added, ttl %v", d, ttl)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	if n := admin.HLen(ctx, "rpcws:p:{"+topic+"}:info").Val(); n != 1 {
		t.Errorf("%d entries left in the hash, want the live one", n)
	}
	waitUntil(t, "the dead replica's topic to go", func() bool {
		return admin.Exists(ctx, "rpcws:p:{rpcws.t.other}:info", "rpcws:p:{rpcws.t.other}:exp").Val() == 0
	})
}

// peers returns the presence of topic as sorted "peer=info".
func peers(t *testing.T, b rpcws.PresenceBroker, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Wait)
	defer cancel()
	entries, err := b.Presence(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Topic != topic {
			t.Fatalf("entry of topic %q in %q", e.Topic, topic)
		}
		out = append(out, e.Peer+"="+string(e.Info))
	}
	slices.Sort(out)
	return out
}

// With Redis stalled (SIGSTOP), every call returns by its context's
// deadline.
func TestStalledCallsBoundedByContext(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	b := started(t, srv.URL(), nopHistory{})
	if _, _, err := b.History(ctxT(t), "rpcws.t.x", 0, 1); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	defer srv.Resume()
	calls := map[string]func(context.Context) error{
		"PublishHistory": func(ctx context.Context) error {
			_, err := b.PublishHistory(ctx, "rpcws.t.x", []byte("m"), policy)
			return err
		},
		"History": func(ctx context.Context) error { _, _, err := b.History(ctx, "rpcws.t.x", 0, 1); return err },
		"SaveSession": func(ctx context.Context) error {
			return b.SaveSession(ctx, "s", []byte("r"), time.Minute)
		},
		"TouchSessions": func(ctx context.Context) error { return b.TouchSessions(ctx, []string{"s"}, time.Minute) },
		"TakeSession":   func(ctx context.Context) error { _, err := b.TakeSession(ctx, "s"); return err },
		"AddPresence": func(ctx context.Context) error {
			return b.AddPresence(ctx, time.Minute, rpcws.PresenceEntry{Topic: "rpcws.t.x", Peer: "p"})
		},
		"RemovePresence": func(ctx context.Context) error {
			return b.RemovePresence(ctx, rpcws.PresenceEntry{Topic: "rpcws.t.x", Peer: "p"})
		},
		"Presence": func(ctx context.Context) error { _, err := b.Presence(ctx, "rpcws.t.x"); return err },
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := call(ctx)
			if d := time.Since(start); err == nil || d > time.Second {
				t.Errorf("%s with Redis stalled: %v after %v, want an error within the deadline", name, err, d)
			}
		})
	}
	wg.Wait()
}

// With Redis stalled, a call whose context is canceled (with no deadline)
// returns at once.
func TestStalledCallCanceled(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	b := started(t, srv.URL(), nopHistory{})
	if _, _, err := b.History(ctxT(t), "rpcws.t.x", 0, 1); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	defer srv.Resume()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.TakeSession(ctx, "x")
	if d := time.Since(start); !errors.Is(err, context.Canceled) || d > time.Second {
		t.Fatalf("take with Redis stalled, canceled after 100 ms: %v after %v", err, d)
	}
	b.Close() // ends the call left waiting on Redis
}

// After Close, every call fails with rpcws.ErrBrokerClosed.
func TestClosedBroker(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	b := started(t, srv.URL(), nopHistory{})
	b.Close()
	ctx := ctxT(t)
	_, err1 := b.PublishHistory(ctx, "rpcws.t.x", []byte("m"), policy)
	_, _, err2 := b.History(ctx, "rpcws.t.x", 0, 1)
	err3 := b.TouchSessions(ctx, []string{"s"}, time.Minute)
	_, err4 := b.TakeSession(ctx, "s")
	err5 := b.AddPresence(ctx, time.Minute, rpcws.PresenceEntry{Topic: "rpcws.t.x", Peer: "p"})
	_, err6 := b.Presence(ctx, "rpcws.t.x")
	for i, err := range []error{err1, err2, err3, err4, err5, err6} {
		if !errors.Is(err, rpcws.ErrBrokerClosed) {
			t.Errorf("call %d after Close: %v, want rpcws.ErrBrokerClosed", i+1, err)
		}
	}
}
