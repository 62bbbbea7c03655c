package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// at is a message received with its position, or without (plain).
type at struct {
	subject string
	pos     rpcws.Position
	msg     string
	plain   bool
}

// historyRecorder is a HistoryReceiver that keeps what it receives.
type historyRecorder struct {
	mu   sync.Mutex
	got  []at
	kick chan struct{}
}

func newHistoryRecorder() *historyRecorder { return &historyRecorder{kick: make(chan struct{}, 1)} }

func (r *historyRecorder) add(a at) {
	r.mu.Lock()
	r.got = append(r.got, a)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *historyRecorder) Receive(subject string, msg []byte) {
	r.add(at{subject: subject, msg: string(msg), plain: true})
}

func (r *historyRecorder) ReceiveAt(subject string, pos rpcws.Position, msg []byte) {
	r.add(at{subject: subject, pos: pos, msg: string(msg)})
}

func (r *historyRecorder) Lost([]string)        {}
func (r *historyRecorder) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// wait waits until r has received n messages, or fails t.
func (r *historyRecorder) wait(t *testing.T, n int) []at {
	t.Helper()
	deadline := time.After(5 * brokertest.Wait)
	for {
		r.mu.Lock()
		got := append([]at(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.kick:
		case <-deadline:
			t.Fatalf("received %d messages, want %d", len(got), n)
		}
	}
}

// started returns a started broker on url that delivers to r, subscribed
// to subjects, closed at cleanup.
func started(t testing.TB, url string, r rpcws.BrokerReceiver, subjects ...string) *redis.Broker {
	t.Helper()
	b, err := redis.New(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Wait)
	defer cancel()
	for _, s := range subjects {
		if err := b.Subscribe(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*brokertest.Wait)
	t.Cleanup(cancel)
	return ctx
}

var policy = rpcws.HistoryPolicy{Size: 100, TTL: time.Minute}

// Three brokers publish to one topic at once: the offsets are 1…N with no
// gap, every subscriber receives every message once, in offset order,
// with the position that History reports, and plain messages stay plain.
func TestHistoryConcurrentPublishers(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	const subject, per = "rpcws.t.gapfree", 200
	var recs []*historyRecorder
	var brokers []*redis.Broker
	for range 3 {
		r := newHistoryRecorder()
		recs = append(recs, r)
		brokers = append(brokers, started(t, srv.URL(), r, subject))
	}
	ctx := ctxT(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	offsets := map[uint64]string{}
	for i, b := range brokers {
		wg.Go(func() {
			for j := range per {
				msg := fmt.Sprintf("b%d-%d", i, j)
				pos, err := b.PublishHistory(ctx, subject, []byte(msg), rpcws.HistoryPolicy{Size: 1000, TTL: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				offsets[pos.Offset] = msg
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	n := 3 * per
	for o := range uint64(n) {
		if _, ok := offsets[o+1]; !ok {
			t.Fatalf("offset %d missing of %d", o+1, n)
		}
	}
	pos, events, err := brokers[0].History(ctx, subject, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Offset != uint64(n) || len(events) != n {
		t.Fatalf("history: position %v, %d events; want offset %d and %d events", pos, len(events), n, n)
	}
	for i, e := range events {
		if e.Offset != uint64(i+1) || string(e.Msg) != offsets[e.Offset] {
			t.Fatalf("event %d: offset %d %q, want %d %q", i, e.Offset, e.Msg, i+1, offsets[uint64(i+1)])
		}
	}
	for k, r := range recs {
		got := r.wait(t, n)
		for i, a := range got {
			if a.plain || a.pos != (rpcws.Position{Epoch: pos.Epoch, Offset: uint64(i + 1)}) || a.msg != offsets[uint64(i+1)] {
				t.Fatalf("subscriber %d, message %d: %+v, want offset %d %q of epoch %s", k, i, a, i+1, offsets[uint64(i+1)], pos.Epoch)
			}
		}
	}
	if err := brokers[1].Publish(ctx, subject, []byte("plain")); err != nil {
		t.Fatal(err)
	}
	if got := recs[2].wait(t, n+1)[n]; !got.plain || got.msg != "plain" {
		t.Fatalf("plain message received as %+v", got)
	}
}

// History reads after a position, bounded by limit, oldest first; an
// unknown topic gets one stable epoch and offset 0.
func TestHistoryRead(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	a, b := started(t, srv.URL(), nopHistory{}), started(t, srv.URL(), nopHistory{})
	ctx := ctxT(t)
	p1, ev, err := a.History(ctx, "rpcws.t.new", 0, 10)
	if err != nil || p1.Epoch == "" || p1.Offset != 0 || len(ev) != 0 {
		t.Fatalf("unknown topic: %v %v %v", p1, ev, err)
	}
	p2, _, err := b.History(ctx, "rpcws.t.new", 0, 0)
	if err != nil || p2 != p1 {
		t.Fatalf("unknown topic read again on another broker: %v %v, want %v", p2, err, p1)
	}
	for i := range 10 {
		pos, err := b.PublishHistory(ctx, "rpcws.t.new", []byte(strconv.Itoa(i+1)), policy)
		if err != nil || pos != (rpcws.Position{Epoch: p1.Epoch, Offset: uint64(i + 1)}) {
			t.Fatalf("publish %d: %v %v", i+1, pos, err)
		}
	}
	for _, c := range []struct {
		after      uint64
		limit      int
		first, num int
	}{{0, 100, 1, 10}, {4, 100, 5, 6}, {4, 3, 8, 3}, {10, 5, 0, 0}, {3, 0, 0, 0}, {99, 5, 0, 0}, {^uint64(0), 5, 0, 0}} {
		pos, ev, err := a.History(ctx, "rpcws.t.new", c.after, c.limit)
		if err != nil || pos != (rpcws.Position{Epoch: p1.Epoch, Offset: 10}) || len(ev) != c.num {
			t.Fatalf("after %d limit %d: %v, %d events, %v", c.after, c.limit, pos, len(ev), err)
		}
		for i, e := range ev {
			if want := c.first + i; e.Offset != uint64(want) || string(e.Msg) != strconv.Itoa(want) {
				t.Fatalf("after %d limit %d: event %d is %d %q", c.after, c.limit, i, e.Offset, e.Msg)
			}
		}
	}
}

// A topic keeps its last Size events at least, and not many more.
func TestHistoryTrim(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	b := started(t, srv.URL(), nopHistory{})
	ctx := ctxT(t)
	const size, n = 10, 1000
	for i := range n {
		if _, err := b.PublishHistory(ctx, "rpcws.t.trim", []byte(strconv.Itoa(i+1)), rpcws.HistoryPolicy{Size: size, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	_, ev, err := b.History(ctx, "rpcws.t.trim", 0, n)
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole nodes of the stream, of 100 entries by default.
	if len(ev) < size || len(ev) > size+100 || ev[len(ev)-1].Offset != n {
		t.Fatalf("kept %d events (last %d), want %d to %d, last %d", len(ev), ev[len(ev)-1].Offset, size, size+100, n)
	}
	t.Logf("kept %d events of %d, size %d", len(ev), n, size)
}

// Events expire after the TTL; the position stays, so that a client at the
// last offset is still recoverable, and the next publish goes on from it.
func TestHistoryTTLKeepsPosition(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	b := started(t, srv.URL(), nopHistory{})
	ctx := ctxT(t)
	p := rpcws.HistoryPolicy{Size: 10, TTL: 50 * time.Millisecond}
	var last rpcws.Position
	for i := range 3 {
		var err error
		if last, err = b.PublishHistory(ctx, "rpcws.t.quiet", []byte(strconv.Itoa(i)), p); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the events to expire", func() bool {
		pos, ev, err := b.History(ctx, "rpcws.t.quiet", 0, 10)
		if err != nil || pos != last {
			t.Fatalf("position %v %v, want %v", pos, err, last)
		}
		return len(ev) == 0
	})
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	if ttl := admin.PTTL(ctx, "rpcws:h:{rpcws.t.quiet}:pos").Val(); ttl < 23*time.Hour {
		t.Errorf("the position expires in %v, want 24h", ttl)
	}
	pos, err := b.PublishHistory(ctx, "rpcws.t.quiet", []byte("next"), p)
	if err != nil || pos != (rpcws.Position{Epoch: last.Epoch, Offset: 4}) {
		t.Fatalf("publish after expiry: %v %v, want offset 4 of %s", pos, err, last.Epoch)
	}
}

// A stream that the position cannot be trusted with (ahead of it, or not a
// stream: written by hand, or left by a position lost alone) gives the
// topic a new epoch, where every publish would fail.
func TestHistoryStreamAhead(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	b := started(t, srv.URL(), nopHistory{})
	ctx := ctxT(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	const ev = "rpcws:h:{rpcws.t.ahead}:ev"
	first, err := b.PublishHistory(ctx, "rpcws.t.ahead", []byte("1"), policy)
	if err != nil {
		t.Fatal(err)
	}
	for i, spoil := range []func() error{
		func() error {
			return admin.XAdd(ctx, &goredis.XAddArgs{Stream: ev, ID: "0-1000", Values: []string{"m", "x"}}).Err()
		},
		func() error { return admin.Set(ctx, ev, "not a stream", 0).Err() },
	} {
		if err := spoil(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.History(ctx, "rpcws.t.ahead", 0, 10); err != nil {
			t.Fatalf("case %d: history: %v", i, err)
		}
		pos, err := b.PublishHistory(ctx, "rpcws.t.ahead", []byte("2"), policy)
		if err != nil || pos.Epoch == first.Epoch || pos.Offset != 1 {
			t.Fatalf("case %d: publish: %v %v, want a new epoch at offset 1 (was %v)", i, pos, err, first)
		}
		got, events, err := b.History(ctx, "rpcws.t.ahead", 0, 10)
		if err != nil || got != pos || len(events) != 1 || string(events[0].Msg) != "2" {
			t.Fatalf("case %d: history after: %v %v %v", i, got, events, err)
		}
		first = pos
	}
}

// A message that begins like one with history but is malformed is
// dropped, never delivered with a position; Publish refuses to send a
// plain message that begins like one.
func TestHistoryForged(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	r := newHistoryRecorder()
	b := started(t, srv.URL(), r, "rpcws.t.forged")
	ctx := ctxT(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	for _, p := range []string{"\x00rpcws.h1\x00", "\x00rpcws.h1\x00e\x00", "\x00rpcws.h1\x00e\x001", "\x00rpcws.h1\x00\x001\x00m",
		"\x00rpcws.h1\x00e\x000\x00m", "\x00rpcws.h1\x00e\x00x\x00m", "\x00rpcws.h1\x00e\x0099999999999999999999\x00m",
		"\x00rpcws.h1\x00" + string(make([]byte, 65)) + "\x001\x00m"} {
		if err := admin.Publish(ctx, "rpcws.t.forged", p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Publish(ctx, "rpcws.t.forged", "\x00rpcws.h1\x00ep\x007\x00m\x00").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "rpcws.t.forged", []byte("\x00rpcws.h1\x00ep\x007\x00m")); err == nil {
		t.Fatal("Publish sent a plain message that begins like one with history")
	}
	if err := b.Publish(ctx, "rpcws.t.forged", []byte("\x01end")); err != nil {
		t.Fatal(err)
	}
	got := r.wait(t, 2)
	want := []at{{subject: "rpcws.t.forged", pos: rpcws.Position{Epoch: "ep", Offset: 7}, msg: "m\x00"}, {subject: "rpcws.t.forged", msg: "\x01end", plain: true}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("received %+v, want %+v", got, want)
	}
}

type nopHistory struct{}

func (nopHistory) Receive(string, []byte)                   {}
func (nopHistory) ReceiveAt(string, rpcws.Position, []byte) {}
func (nopHistory) Lost([]string)                            {}
func (nopHistory) Logger() *slog.Logger                     { return slog.New(slog.DiscardHandler) }

// waitUntil polls cond, every 10 ms, until it holds, or fails t after
// 5 × brokertest.Wait: for state of the engine that no event announces.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * brokertest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, 5*brokertest.Wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
