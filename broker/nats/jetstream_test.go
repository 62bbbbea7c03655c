package nats_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rpcws/rpcws/broker/nats"
	"golang.org/x/sync/errgroup"

	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

func TestHistory(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.RunHistory(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

// A restart that loses JetStream's store gives topics new epochs.
func TestHistoryRestart(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.HistoryRestart(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, srv.RestartEmptyT)
}

func TestSessions(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.RunSessions(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func TestPresence(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.RunPresence(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

// startHistory starts n brokers on url with a recording receiver each,
// closed at cleanup.
func startHistory(t testing.TB, url string, n int) ([]*nats.Broker, []*recorder) {
	t.Helper()
	bs := make([]*nats.Broker, n)
	rs := make([]*recorder, n)
	for i := range bs {
		b, err := nats.New(url)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = &recorder{change: make(chan struct{}, 1)}
		if err := b.Start(rs[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		bs[i] = b
	}
	return bs, rs
}

// recorder is a HistoryReceiver that keeps what arrives through ReceiveAt.
type recorder struct {
	mu     sync.Mutex
	at     []rpcws.Position
	msgs   []string
	change chan struct{}
}

func (r *recorder) ReceiveAt(subject string, pos rpcws.Position, msg []byte) {
	r.mu.Lock()
	r.at = append(r.at, pos)
	r.msgs = append(r.msgs, string(msg))
	r.mu.Unlock()
	select {
	case r.change <- struct{}{}:
	default:
	}
}

func (r *recorder) Receive(string, []byte) { panic("a history message through Receive") }
func (r *recorder) Lost([]string)          {}
func (r *recorder) Logger() *slog.Logger   { return slog.New(slog.DiscardHandler) }

// await waits until n messages arrived and returns their positions.
func (r *recorder) await(t *testing.T, n int) []rpcws.Position {
	t.Helper()
	deadline := time.NewTimer(brokertest.Wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got := slices.Clone(r.at)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.change:
		case <-deadline.C:
			t.Fatalf("%d of %d messages after %v", len(got), n, brokertest.Wait)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Wait)
	t.Cleanup(cancel)
	return ctx
}

// Four publishers on each of three brokers, racing for one topic's
// offsets: every publish gets its own offset, 1 to 240 with no gap, and
// every broker receives them all in offset order.
func TestHistoryContention(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	bs, rs := startHistory(t, srv.URL(), 3)
	const subject, perPublisher, publishers = "rpcws.t.contended", 20, 4
	for _, b := range bs {
		if err := b.Subscribe(ctxT(t), subject); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := make(map[uint64]bool)
	g, ctx := errgroup.WithContext(ctxT(t))
	for _, b := range bs {
		for p := range publishers {
			g.Go(func() error {
				for k := range perPublisher {
					pos, err := b.PublishHistory(ctx, subject, fmt.Appendf(nil, "%d-%d", p, k), rpcws.HistoryPolicy{Size: 1000, TTL: time.Minute})
					if err != nil {
						return err
					}
					mu.Lock()
					dup := seen[pos.Offset]
					seen[pos.Offset] = true
					mu.Unlock()
					if dup {
						return fmt.Errorf("offset %d given twice", pos.Offset)
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	const total = 3 * publishers * perPublisher
	for i, r := range rs {
		got := r.await(t, total)
		for k, pos := range got {
			if pos.Offset != uint64(k+1) || pos.Epoch != got[0].Epoch {
				t.Fatalf("broker %d: message %d at %+v", i, k, pos)
			}
		}
	}
	pos, evs, err := bs[0].History(ctxT(t), subject, 0, 1000)
	if err != nil || pos.Offset != total || len(evs) != total || evs[0].Offset != 1 {
		t.Fatalf("history: %+v, %d events, %v", pos, len(evs), err)
	}
}

// A restart that keeps JetStream's store keeps the topics' epochs,
// offsets and events.
func TestHistoryRestartKeeps(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	bs, _ := startHistory(t, srv.URL(), 1)
	const subject = "rpcws.t.kept"
	p := rpcws.HistoryPolicy{Size: 10, TTL: time.Minute}
	var before rpcws.Position
	for range 3 {
		var err error
		if before, err = bs[0].PublishHistory(ctxT(t), subject, []byte("x"), p); err != nil {
			t.Fatal(err)
		}
	}
	srv.RestartT(t)
	var after rpcws.Position
	var evs []rpcws.HistoryEvent
	deadline := time.Now().Add(brokertest.Wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var err error
		after, evs, err = bs[0].History(ctx, subject, 0, 10)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history after the restart: %v", err)
		}
	}
	if after != before || len(evs) != 3 {
		t.Fatalf("after a restart with the store: %+v and %d events, want %+v and 3", after, len(evs), before)
	}
	if next, err := bs[0].PublishHistory(ctxT(t), subject, []byte("x"), p); err != nil || next.Epoch != before.Epoch || next.Offset != 4 {
		t.Fatalf("publish after the restart: %+v, %v", next, err)
	}
}

// With NATS stopped (SIGSTOP), every call of history, sessions and
// presence returns with an error soon after its context ends, whether the
// broker had its stream and buckets already or not.
func TestJetStreamStall(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	bs, _ := startHistory(t, srv.URL(), 2)
	warm, cold := bs[0], bs[1]
	const subject = "rpcws.t.stall"
	p := rpcws.HistoryPolicy{Size: 10, TTL: time.Minute}
	entry := rpcws.PresenceEntry{Topic: subject, Peer: "n.1"}
	if _, err := warm.PublishHistory(ctxT(t), subject, []byte("x"), p); err != nil {
		t.Fatal(err)
	}
	if err := warm.SaveSession(ctxT(t), "id", []byte("r"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := warm.AddPresence(ctxT(t), time.Minute, entry); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	const timeout = 300 * time.Millisecond
	for _, b := range []*nats.Broker{warm, cold} {
		calls := map[string]func(ctx context.Context) error{
			"PublishHistory": func(ctx context.Context) error { _, err := b.PublishHistory(ctx, subject, []byte("y"), p); return err },
			"History":        func(ctx context.Context) error { _, _, err := b.History(ctx, subject, 0, 10); return err },
			"SaveSession":    func(ctx context.Context) error { return b.SaveSession(ctx, "id2", []byte("r"), time.Minute) },
			"TouchSessions":  func(ctx context.Context) error { return b.TouchSessions(ctx, []string{"id"}, time.Minute) },
			"TakeSession":    func(ctx context.Context) error { _, err := b.TakeSession(ctx, "id"); return err },
			"AddPresence":    func(ctx context.Context) error { return b.AddPresence(ctx, time.Minute, entry) },
			"RemovePresence": func(ctx context.Context) error { return b.RemovePresence(ctx, entry) },
			"Presence":       func(ctx context.Context) error { _, err := b.Presence(ctx, subject); return err },
		}
		for name, call := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			start := time.Now()
			err := call(ctx)
			took := time.Since(start)
			cancel()
			if err == nil || took > timeout+time.Second {
				t.Errorf("%s with NATS stopped: %v after %v (context of %v)", name, err, took.Round(time.Millisecond), timeout)
			}
		}
	}
}

// A history stream deleted by hand, its epochs' bucket kept, is made
// again with new epochs: the old offsets are gone.
func TestHistoryStreamDeleted(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	bs, _ := startHistory(t, srv.URL(), 1)
	const subject = "rpcws.t.deleted"
	p := rpcws.HistoryPolicy{Size: 10, TTL: time.Minute}
	before, err := bs[0].PublishHistory(ctxT(t), subject, []byte("x"), p)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := gonats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctxT(t), "RPCWS_HISTORY"); err != nil {
		t.Fatal(err)
	}
	after, err := bs[0].PublishHistory(ctxT(t), subject, []byte("y"), p)
	if err != nil || after.Offset != 1 || after.Epoch == before.Epoch {
		t.Fatalf("publish after the stream was deleted: %+v, %v; want offset 1 in an epoch other than %q", after, err, before.Epoch)
	}
	if pos, _, err := bs[0].History(ctxT(t), subject, 0, 10); err != nil || pos != after {
		t.Fatalf("history: %+v, %v; want %+v", pos, err, after)
	}
}

// Sessions and recovery end to end, with three replicas on NATS.
func TestRecovery(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.RunRecovery(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

// Takers on three brokers race for sessions that another broker keeps
// touching: each session is taken exactly once, and touching never brings
// a taken one back.
func TestTakeWhileTouched(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	bs, _ := startHistory(t, srv.URL(), 4)
	takers, toucher := bs[:3], bs[3]
	for round := range 10 {
		id := fmt.Sprintf("touched-%d", round)
		if err := toucher.SaveSession(ctxT(t), id, []byte(id), time.Minute); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		touched := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					touched <- nil
					return
				default:
				}
				if err := toucher.TouchSessions(ctxT(t), []string{id}, time.Minute); err != nil {
					touched <- err
					return
				}
			}
		}()
		var wins, wg = make(chan string, 12), sync.WaitGroup{}
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec, err := takers[i%3].TakeSession(ctxT(t), id)
				switch {
				case err == nil:
					wins <- string(rec)
				case !errors.Is(err, rpcws.ErrNoSession):
					wins <- "error: " + err.Error()
				}
			}()
		}
		wg.Wait()
		close(stop)
		if err := <-touched; err != nil {
			t.Fatal(err)
		}
		close(wins)
		var got []string
		for w := range wins {
			got = append(got, w)
		}
		if len(got) != 1 || got[0] != id {
			t.Fatalf("round %d: 12 takers got %q, want %q once", round, got, id)
		}
		if rec, err := takers[0].TakeSession(ctxT(t), id); !errors.Is(err, rpcws.ErrNoSession) {
			t.Fatalf("round %d: a taken session, touched, taken again: %q, %v", round, rec, err)
		}
	}
}

// Reads of more than a few events (through a consumer): the topic's own
// size applies, a smaller size of the last publish too, and events past
// their own TTL are left out while younger ones stay.
func TestHistoryReadForward(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	bs, _ := startHistory(t, srv.URL(), 1)
	b := bs[0]
	publish := func(subject string, n, size int, ttl time.Duration) {
		t.Helper()
		for range n {
			if _, err := b.PublishHistory(ctxT(t), subject, []byte("x"), rpcws.HistoryPolicy{Size: size, TTL: ttl}); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(subject string, after uint64, limit int) []uint64 {
		t.Helper()
		_, evs, err := b.History(ctxT(t), subject, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var offs []uint64
		for _, e := range evs {
			offs = append(offs, e.Offset)
		}
		return offs
	}
	span := func(from, to uint64) []uint64 {
		var s []uint64
		for o := from; o <= to; o++ {
			s = append(s, o)
		}
		return s
	}
	publish("rpcws.t.sized", 30, 20, time.Minute)
	if got := read("rpcws.t.sized", 0, 100); !slices.Equal(got, span(11, 30)) {
		t.Fatalf("size 20 after 30 publishes: %v", got)
	}
	if got := read("rpcws.t.sized", 15, 12); !slices.Equal(got, span(19, 30)) {
		t.Fatalf("after 15, limit 12: %v", got)
	}
	publish("rpcws.t.shrunk", 30, 50, time.Minute)
	publish("rpcws.t.shrunk", 5, 10, time.Minute)
	if got := read("rpcws.t.shrunk", 0, 100); !slices.Equal(got, span(26, 35)) {
		t.Fatalf("size 10 after size 50: %v", got)
	}
	publish("rpcws.t.aged", 10, 100, 500*time.Millisecond)
	publish("rpcws.t.aged", 10, 100, time.Minute)
	deadline := time.Now().Add(brokertest.Wait)
	for got := read("rpcws.t.aged", 0, 100); !slices.Equal(got, span(11, 20)); got = read("rpcws.t.aged", 0, 100) {
		if time.Now().After(deadline) || len(got) < 10 || got[len(got)-1] != 20 {
			t.Fatalf("events with a TTL of 500ms, then of a minute: %v", got)
		}
		time.Sleep(50 * time.Millisecond) // the first ten expire by the clock
	}
}

// Replicas that start together on an empty engine all make, or open, the
// history stream and the buckets: whichever loses the race to create one
// opens the winner's (nats-server 2.9 answers some losers "subjects
// overlap with an existing stream").
func TestFirstUseRace(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	for round := range 4 {
		if round > 0 {
			srv.RestartEmptyT(t)
		}
		bs, _ := startHistory(t, srv.URL(), 6)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var g errgroup.Group
		for i, b := range bs {
			g.Go(func() error {
				if _, _, err := b.History(ctx, "rpcws.t.race", 0, 0); err != nil {
					return fmt.Errorf("replica %d, history: %w", i, err)
				}
				if err := b.SaveSession(ctx, fmt.Sprint("race-", round, "-", i), []byte("r"), time.Minute); err != nil {
					return fmt.Errorf("replica %d, session: %w", i, err)
				}
				return b.AddPresence(ctx, time.Minute, rpcws.PresenceEntry{Topic: "rpcws.t.race", Peer: fmt.Sprint(i), Info: []byte("p")})
			})
		}
		err := g.Wait()
		cancel()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
