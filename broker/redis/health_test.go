package redis_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/internal/engines"
)

// A subscriber connection that goes silent without closing, as when a
// middlebox drops it, is found by the health ping and replaced: the gap is
// reported and messages flow again.
func TestSilentConnection(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	px := startProxy(t, srv.Addr)
	b := redis.NewWithOptions(redis.Options{Redis: &goredis.Options{Addr: px.addr()}, HealthInterval: 100 * time.Millisecond})
	r := &receiver{msgs: make(chan string, 16), lost: make(chan struct{}, 16)}
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub, err := redis.New(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Subscribe(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "s", []byte("1")); err != nil {
		t.Fatal(err)
	}
	r.want(t, "1")

	px.stall()
	select {
	case <-r.lost:
	case <-ctx.Done():
		t.Fatal("the silent connection was not found")
	}
	if err := pub.Publish(ctx, "s", []byte("2")); err != nil {
		t.Fatal(err)
	}
	r.want(t, "2")
}

type receiver struct {
	msgs chan string
	lost chan struct{}
}

func (r *receiver) Receive(subject string, msg []byte) { r.msgs <- string(msg) }
func (r *receiver) Lost(subjects []string)             { r.lost <- struct{}{} }
func (r *receiver) Logger() *slog.Logger               { return slog.New(slog.DiscardHandler) }

func (r *receiver) want(t *testing.T, msg string) {
	t.Helper()
	select {
	case got := <-r.msgs:
		if got != msg {
			t.Fatalf("got message %q, want %q", got, msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no message %q", msg)
	}
}

// proxy forwards TCP connections to a server; stall makes the connections
// open at that moment drop everything, without closing, as a black hole.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*pair
	wg     sync.WaitGroup
}

type pair struct {
	a, b    net.Conn
	stalled atomic.Bool
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		pr := &pair{a: a, b: b}
		p.mu.Lock()
		p.conns = append(p.conns, pr)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(pr, a, b)
		go p.copy(pr, b, a)
	}
}

func (p *proxy) copy(pr *pair, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pr.stalled.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			dst.Close()
			return
		}
	}
}

func (p *proxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.conns {
		pr.stalled.Store(true)
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, pr := range p.conns {
		pr.a.Close()
		pr.b.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
