package rpcws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/rpc"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// bubbleClient is a raw client over an in-memory pipe, for tests in a
// synctest bubble.
type bubbleClient struct {
	t    *testing.T
	conn codec.Conn
	n    int
}

func (c *bubbleClient) read() wframe {
	c.t.Helper()
	p, err := c.conn.ReadFrame(context.Background(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	var f wframe
	json.Unmarshal(p, &f)
	f.raw = string(p)
	return f
}

// call sends a request and returns the frames before its reply, and the
// reply.
func (c *bubbleClient) call(typ string, data any) ([]wframe, wframe) {
	c.t.Helper()
	c.n++
	b, _ := json.Marshal(map[string]any{"id": c.n, "type": typ, "data": data})
	if err := c.conn.WriteFrame(context.Background(), b); err != nil {
		c.t.Fatal(err)
	}
	var before []wframe
	for {
		f := c.read()
		if string(f.ID) == fmt.Sprint(c.n) {
			return before, f
		}
		before = append(before, f)
	}
}

// The session outlives its connection by the recovery window, and lives
// as long as its connection does, however long that is: the replica
// vouches for it.
func TestRecoveryWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = time.Minute
		var h *rpcws.Handler
		srv := rpc.NewServer()
		srv.RegisterName("Chat", &HChat{h: func() *rpcws.Handler { return h }})
		h = rpcws.NewHandler(srv, &rpcws.HandlerOptions{
			Broker:  new(rpcws.MemoryBus).NewBroker(),
			History: &rpcws.HistoryOptions{RecoveryWindow: window},
			Logger:  slog.New(slog.DiscardHandler),
		})
		defer h.Shutdown(context.Background())
		dial := func() (*bubbleClient, string) {
			a, b := codec.Pipe()
			go h.ServeConn(b)
			c := &bubbleClient{t: t, conn: a}
			var s rpcws.SessionData
			json.Unmarshal(c.read().Data, &s)
			return c, s.ID
		}
		// session returns the id of a session in topic "a" whose
		// connection lived for live and closed.
		session := func(live time.Duration) string {
			c, id := dial()
			c.call("chat.join", map[string]any{"topic": "a"})
			time.Sleep(live)
			c.conn.Close()
			synctest.Wait()
			return id
		}
		recover := func(id string) ([]wframe, rpcws.RecoverReply) {
			c, _ := dial()
			defer c.conn.Close()
			before, reply := c.call(rpcws.RecoverMethod, recoverArgs(id, map[string]rpcws.Position{"a": {Epoch: "x"}}))
			var r rpcws.RecoverReply
			json.Unmarshal(reply.Data, &r)
			return before, r
		}

		longLived := session(5 * window)
		time.Sleep(window - time.Second)
		if _, r := recover(longLived); !r.Recovered || len(r.Topics) != 1 {
			t.Errorf("a session of a connection that lived 5 windows, a second before its window ended: %+v", r)
		}
		expired := session(0)
		time.Sleep(window + time.Second)
		before, r := recover(expired)
		if r.Recovered || len(r.Topics) != 0 {
			t.Errorf("recovered past the window: %+v", r)
		}
		if got := resyncTopics(before); fmt.Sprint(got) != "[[a]]" {
			t.Errorf("resyncs past the window %v", got)
		}
		synctest.Wait()
	})
}

// fullBroker is a broker with every optional interface.
type fullBroker interface {
	rpcws.HistoryBroker
	rpcws.SessionBroker
	rpcws.PresenceBroker
}

// stalledEngine keeps history, but its sessions and presence never answer:
// each call waits for its context.
type stalledEngine struct{ fullBroker }

func (stalledEngine) SaveSession(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

func (stalledEngine) AddPresence(ctx context.Context, _ time.Duration, _ ...rpcws.PresenceEntry) error {
	<-ctx.Done()
	return ctx.Err()
}

func (stalledEngine) RemovePresence(ctx context.Context, _ ...rpcws.PresenceEntry) error {
	<-ctx.Done()
	return ctx.Err()
}

// A stalled engine holds a join, a leave and a close for one join timeout
// at most, and the join still succeeds.
func TestStalledEngineBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const joinTimeout = 2 * time.Second
		var h *rpcws.Handler
		srv := rpc.NewServer()
		srv.RegisterName("Chat", &HChat{h: func() *rpcws.Handler { return h }})
		h = rpcws.NewHandler(srv, &rpcws.HandlerOptions{
			Broker:      stalledEngine{new(rpcws.MemoryBus).NewBroker().(fullBroker)},
			History:     &rpcws.HistoryOptions{},
			Presence:    &rpcws.PresenceOptions{},
			JoinTimeout: joinTimeout,
			Logger:      slog.New(slog.DiscardHandler),
		})
		defer h.Shutdown(context.Background())
		a, b := codec.Pipe()
		served := make(chan struct{})
		go func() {
			h.ServeConn(b)
			close(served)
		}()
		c := &bubbleClient{t: t, conn: a}
		c.read() // the session
		for _, typ := range []string{"chat.join", "chat.leave", "chat.join"} {
			start := time.Now()
			before, reply := c.call(typ, map[string]any{"topic": "a"})
			if reply.Type == "error" || len(before) != 1 {
				t.Fatalf("%s: %v %s", typ, before, reply.raw)
			}
			if d := time.Since(start); d > joinTimeout {
				t.Errorf("%s took %v, over the join timeout %v", typ, d, joinTimeout)
			}
		}
		start := time.Now()
		a.Close()
		<-served
		if d := time.Since(start); d > joinTimeout {
			t.Errorf("the close took %v, over the join timeout %v", d, joinTimeout)
		}
	})
}

// A live connection stays present however long it lives: its replica
// re-adds it before its TTL ends.
func TestPresenceRefreshed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		var h *rpcws.Handler
		srv := rpc.NewServer()
		srv.RegisterName("Chat", &HChat{h: func() *rpcws.Handler { return h }})
		h = rpcws.NewHandler(srv, &rpcws.HandlerOptions{
			Broker:   new(rpcws.MemoryBus).NewBroker(),
			Presence: &rpcws.PresenceOptions{TTL: ttl},
			Logger:   slog.New(slog.DiscardHandler),
		})
		defer h.Shutdown(context.Background())
		a, b := codec.Pipe()
		go h.ServeConn(b)
		defer a.Close()
		c := &bubbleClient{t: t, conn: a}
		if before, reply := c.call("chat.join", map[string]any{"topic": "p"}); len(before) != 0 || reply.Type == "error" {
			t.Fatalf("join without history: %v %s", before, reply.raw)
		}
		for range 10 {
			time.Sleep(ttl / 2)
			if m, err := h.Presence(context.Background(), "p"); err != nil || len(m) != 1 {
				t.Fatalf("presence after a while: %v %v", m, err)
			}
		}
	})
}

// gatedUnsubscribe is a broker whose Unsubscribe drops the subscription,
// then waits for the test's release.
type gatedUnsubscribe struct {
	rpcws.Broker
	release chan struct{}
}

func (g gatedUnsubscribe) Unsubscribe(ctx context.Context, subject string) error {
	err := g.Broker.Unsubscribe(ctx, subject)
	<-g.release
	return err
}

// A join made while its topic is being unsubscribed waits for the
// subscription to be made again: an event published once it returns
// reaches the connection.
func TestJoinDuringUnsubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h *rpcws.Handler
		srv := rpc.NewServer()
		srv.RegisterName("Chat", &HChat{h: func() *rpcws.Handler { return h }})
		release := make(chan struct{})
		h = rpcws.NewHandler(srv, &rpcws.HandlerOptions{
			Broker:      gatedUnsubscribe{new(rpcws.MemoryBus).NewBroker(), release},
			JoinTimeout: time.Hour,
			Logger:      slog.New(slog.DiscardHandler),
		})
		defer h.Shutdown(context.Background())
		var once sync.Once
		open := func() { once.Do(func() { close(release) }) }
		defer open() // before Shutdown, when the test fails
		a, b := codec.Pipe()
		go h.ServeConn(b)
		defer a.Close()
		c := &bubbleClient{t: t, conn: a}
		c.call("chat.join", map[string]any{"topic": "x"})
		c.call("chat.leave", map[string]any{"topic": "x"})
		synctest.Wait() // the worker is in Unsubscribe
		frames := make(chan wframe, 10)
		go func() {
			_, reply := c.call("chat.join", map[string]any{"topic": "x"})
			frames <- reply
		}()
		synctest.Wait()
		select {
		case f := <-frames:
			t.Fatalf("the join returned while its topic was being unsubscribed: %s", f.raw)
		default:
		}
		open()
		if f := <-frames; f.Type == "error" {
			t.Fatal(f.raw)
		}
		if err := h.Publish(context.Background(), rpcws.Topic("x"), "m", 1); err != nil {
			t.Fatal(err)
		}
		if f := c.read(); f.raw != `{"type":"m","data":1}` {
			t.Fatalf("after the join: %s", f.raw)
		}
	})
}
