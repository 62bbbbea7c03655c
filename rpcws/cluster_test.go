package rpcws_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// Garbage from the broker is logged a few lines at a time, not one line a
// message, and every message is counted.
func TestMalformedLogsLimited(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	var log testutil.SyncBuffer
	h := rpcws.NewHandler(nil, &rpcws.HandlerOptions{
		Broker: bus.NewBroker(),
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
	})
	defer h.Shutdown(context.Background())
	raw := bus.NewBroker()
	defer raw.Close()
	const n = 1000
	for range n { // the in-process bus delivers before Publish returns
		if err := raw.Publish(context.Background(), "rpcws.all", []byte("garbage")); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.BrokerStats().Malformed; got != n {
		t.Errorf("malformed count %d, want %d", got, n)
	}
	if got := strings.Count(log.String(), "dropped a message from the broker"); got < 1 || got > 5 {
		t.Errorf("%d log lines for %d malformed messages, want 1 to 5:\n%s", got, n, log.String())
	}
}

// The library refuses to publish its own reserved types, and events over
// the frame limit.
func TestPublishRefused(t *testing.T) {
	t.Parallel()
	h := rpcws.NewHandler(nil, &rpcws.HandlerOptions{ReadLimit: 100})
	defer h.Shutdown(context.Background())
	ctx := context.Background()
	if err := h.Publish(ctx, rpcws.All(), rpcws.ResyncEvent, nil); err == nil {
		t.Errorf("published an %s event", rpcws.ResyncEvent)
	}
	if err := h.Publish(ctx, rpcws.All(), "m", strings.Repeat("x", 200)); !errors.Is(err, codec.ErrTooLarge) {
		t.Errorf("published an event over the frame limit: %v", err)
	}
}

// A publish that the broker does not take fails with a BrokerError: code
// Unavailable, a message that names nothing of the engine, the engine's
// error kept for the log.
func TestPublishBrokerError(t *testing.T) {
	t.Parallel()
	engineErr := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	h := rpcws.NewHandler(nil, &rpcws.HandlerOptions{Broker: failing{rpcws.ErrBrokerClosed, engineErr}})
	defer h.Shutdown(context.Background())
	err := h.Publish(context.Background(), rpcws.Topic("r3"), "m", 1)
	var be *rpcws.BrokerError
	if !errors.As(err, &be) || !errors.Is(err, rpcws.ErrBrokerUnavailable) || !errors.Is(err, engineErr) {
		t.Fatalf("got %v, want a BrokerError wrapping the engine's error", err)
	}
	if got := codec.ErrorCode(err); got != codec.CodeUnavailable {
		t.Errorf("code %q, want Unavailable", got)
	}
	want := `[Unavailable] rpcws: publish to topic "r3": the message broker is unreachable or did not answer in time; it may still be delivered`
	if err.Error() != want {
		t.Errorf("text %q, want %q", err.Error(), want)
	}
}

// failing is a broker that starts and takes no subscription or publish.
type failing struct{ closed, err error }

func (f failing) Start(rpcws.BrokerReceiver) error              { return nil }
func (f failing) Subscribe(context.Context, string) error       { return f.err }
func (f failing) Unsubscribe(context.Context, string) error     { return nil }
func (f failing) Publish(context.Context, string, []byte) error { return f.err }
func (f failing) Close() error                                  { return nil }

// A connection in 50,000 topics that closes holds up no join: joins are
// served while it is still leaving them (it left them all under one lock,
// so that a join saw either all of them or none).
func TestDetachHoldsNoOne(t *testing.T) {
	t.Parallel()
	srv := rpc.NewServer()
	srv.Register(Joiner{})
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{MaxTopicsPerConn: -1, MaxTopics: -1})
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	big, err := rpcws.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50_000
	var ok bool
	if err := big.Call("Joiner.Join", &JoinArgs{N: n, Prefix: strings.Repeat("é", 120)}, &ok); err != nil {
		t.Fatal(err)
	}
	c, err := rpcws.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The closed connection's detach pauses after its first batch, with
	// the lock released: a join must be served then, and find most of the
	// big connection's topics still there.
	const wait = 10 * time.Second
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.PauseDetach(func() {
		once.Do(func() {
			close(paused)
			select {
			case <-resume:
			case <-time.After(wait):
			}
		})
	})
	big.Close()
	select {
	case <-paused:
	case <-time.After(wait):
		t.Fatal("the closed connection did not start leaving its topics")
	}
	before := h.LocalTopics()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.CallContext(ctx, "Joiner.Join", &JoinArgs{N: 1, Prefix: "new "}, &ok); err != nil {
		close(resume)
		t.Fatalf("a join while the closed connection leaves its topics: %v", err)
	}
	if got := h.LocalTopics(); got != before+1 || got <= n/2 {
		t.Errorf("%d topics after a join served mid-detach (%d before, of %d): want the join in and the detach paused", got, before, n)
	}
	close(resume)
	testutil.WaitFor(t, "the closed connection to leave its topics", func() bool { return h.LocalTopics() == 1 })
}
