package nats_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rpcws/rpcws/broker/nats"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
)

// BenchmarkPublish compares publishing with history to a plain publish
// (core NATS, no acknowledgement) on one topic: one publisher, and four
// publishers on four brokers, racing for one topic or each on its own.
// msgs/op counts what the publishers sent to NATS per publish (a
// publish's round trips: its JetStream publishes and direct gets).
func BenchmarkPublish(b *testing.B) {
	srv := engines.StartT(b, engines.NATS)
	p := rpcws.HistoryPolicy{Size: 100, TTL: time.Minute}
	bs, _ := startHistory(b, srv.URL(), 4)
	ctx := context.Background()
	run := func(b *testing.B, n int, topic func(i int) string, publish func(*nats.Broker, string) error) {
		before := uint64(0)
		for _, x := range bs[:n] {
			before += x.OutMsgs()
		}
		b.ResetTimer()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i, x := range bs[:n] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range b.N / n {
					if err := publish(x, topic(i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		after := uint64(0)
		for _, x := range bs[:n] {
			after += x.OutMsgs()
		}
		b.ReportMetric(float64(after-before)/float64(b.N/n*n), "msgs/op")
	}
	runOne := func(b *testing.B, x *nats.Broker, n int, topic func(i int) string, publish func(*nats.Broker, string) error) {
		before := x.OutMsgs()
		b.ResetTimer()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range b.N / n {
					if err := publish(x, topic(i)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(x.OutMsgs()-before)/float64(b.N/n*n), "msgs/op")
	}
	plain := func(x *nats.Broker, s string) error { return x.Publish(ctx, s, []byte("event")) }
	history := func(x *nats.Broker, s string) error {
		_, err := x.PublishHistory(ctx, s, []byte("event"), p)
		return err
	}
	same := func(int) string { return "rpcws.t.bench" }
	own := func(i int) string { return fmt.Sprintf("rpcws.t.bench%d", i) }
	b.Run("plain/1", func(b *testing.B) { run(b, 1, same, plain) })
	b.Run("history/1", func(b *testing.B) { run(b, 1, same, history) }) // makes the stream
	b.Run("jetstream/1", func(b *testing.B) { benchJetStream(b, srv.URL(), 1) })
	b.Run("jetstream/4", func(b *testing.B) { benchJetStream(b, srv.URL(), 4) })
	b.Run("history/4-one-topic", func(b *testing.B) { run(b, 4, same, history) })
	b.Run("history/4-own-topics", func(b *testing.B) { run(b, 4, own, history) })
	b.Run("history/4-one-broker", func(b *testing.B) { runOne(b, bs[0], 4, same, history) })
}

// benchJetStream publishes to the history stream with n connections, as
// JetStream does with no condition and no position: the cost of storing
// and republishing alone.
func benchJetStream(b *testing.B, url string, n int) {
	js := make([]jetstream.JetStream, n)
	for i := range js {
		nc, err := gonats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		if js[i], err = jetstream.New(nc); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, j := range js {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N / n {
				if _, err := j.Publish(context.Background(), "rpcwsh.rpcws.t.raw", []byte("event")); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkHistory reads a topic's position alone, and with its last 1,
// 8 (one direct get each) and 9, 100 events (through a consumer).
func BenchmarkHistory(b *testing.B) {
	srv := engines.StartT(b, engines.NATS)
	bs, _ := startHistory(b, srv.URL(), 1)
	ctx := context.Background()
	const subject = "rpcws.t.read"
	for range 100 {
		if _, err := bs[0].PublishHistory(ctx, subject, []byte("event"), rpcws.HistoryPolicy{Size: 100, TTL: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []int{0, 1, 8, 9, 100} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			for range b.N {
				if _, evs, err := bs[0].History(ctx, subject, 100-uint64(n), n); err != nil || len(evs) != n {
					b.Fatalf("%d events, %v", len(evs), err)
				}
			}
		})
	}
}

// BenchmarkSessionsPresence: a replica vouching for 1,000 sessions and
// 1,000 presence entries, and listing a topic of 1,000 entries.
func BenchmarkSessionsPresence(b *testing.B) {
	srv := engines.StartT(b, engines.NATS)
	bs, _ := startHistory(b, srv.URL(), 1)
	x, ctx := bs[0], context.Background()
	ids := make([]string, 1000)
	entries := make([]rpcws.PresenceEntry, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("session-%d", i)
		if err := x.SaveSession(ctx, ids[i], []byte(`{"topics":["a"]}`), time.Minute); err != nil {
			b.Fatal(err)
		}
		entries[i] = rpcws.PresenceEntry{Topic: "rpcws.t.room", Peer: fmt.Sprintf("node.%d", i), Info: []byte(`{"user":"u"}`)}
	}
	b.Run("TouchSessions-1000", func(b *testing.B) {
		for range b.N {
			if err := x.TouchSessions(ctx, ids, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AddPresence-1000", func(b *testing.B) {
		for range b.N {
			if err := x.AddPresence(ctx, time.Minute, entries...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Presence-1000", func(b *testing.B) {
		for range b.N {
			if got, err := x.Presence(ctx, "rpcws.t.room"); err != nil || len(got) != 1000 {
				b.Fatalf("%d entries, %v", len(got), err)
			}
		}
	})
}
