// Package redis is an [rpcws.Broker] on Redis pub/sub, through
// github.com/redis/go-redis/v9: replicas of an rpcws service that share one
// Redis server reach each other's connections with [rpcws.Handler.Publish].
//
//	b, err := redis.New("redis://127.0.0.1:6379")
//	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{Broker: b})
//
// Each broker keeps one subscriber connection, read by one goroutine that
// hands every message to the handler at once (the handler never waits on a
// client), and publishes through the client's connection pool. Channels are
// subscribed with SUBSCRIBE, never PSUBSCRIBE: names are literal.
//
// When the subscriber connection drops, go-redis subscribes again by itself
// once Redis is back; the broker then reports the gap
// ([rpcws.BrokerReceiver.Lost]), and every connection receives
// rpcws.resync. A subscriber too slow for Redis's
// client-output-buffer-limit is cut by Redis, and is handled the same way.
// A connection that goes silent without closing (a middlebox dropped it) is
// found by a ping after [Options.HealthInterval] and replaced.
package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/rpcws"
)

// DefaultHealthInterval is the default of [Options.HealthInterval].
const DefaultHealthInterval = 15 * time.Second

// Options configures a [Broker].
type Options struct {
	// Redis is go-redis's options: address, credentials, timeouts, TLS,
	// pool size. Nil means a server at 127.0.0.1:6379.
	Redis *goredis.Options

	// HealthInterval is how long the subscriber connection may stay silent
	// before the broker pings Redis on it; a ping unanswered for another
	// interval makes the broker replace the connection and report the gap.
	// Zero means [DefaultHealthInterval]; negative means no pings.
	HealthInterval time.Duration
}

// Broker is an [rpcws.Broker] on one Redis server. Its methods are safe for
// concurrent use.
type Broker struct {
	client *goredis.Client
	health time.Duration
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the reading goroutine ends

	mu       sync.Mutex // guards the fields below
	ps       *goredis.PubSub
	subjects map[string]struct{} // the interest, to subscribe a new connection to
	waiting  map[string][]chan struct{}
	started  bool
}

var _ rpcws.Broker = (*Broker)(nil)

// New returns a broker on the Redis server at url
// ("redis://[user:password@]host:port[/db]", see go-redis's ParseURL). It
// does not connect yet: the first use does.
func New(url string) (*Broker, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis broker: %w", err)
	}
	return NewWithOptions(Options{Redis: opt}), nil
}

// NewWithOptions returns a broker configured by opts. It does not connect
// yet: the first use does.
func NewWithOptions(opts Options) *Broker {
	if opts.Redis == nil {
		opts.Redis = &goredis.Options{Addr: "127.0.0.1:6379"}
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	b := &Broker{
		client:   goredis.NewClient(opts.Redis),
		health:   max(opts.HealthInterval, 0),
		done:     make(chan struct{}),
		subjects: make(map[string]struct{}),
		waiting:  make(map[string][]chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.ps = b.client.Subscribe(b.ctx)
	return b
}

// pubsub returns the subscriber connection in use.
func (b *Broker) pubsub() *goredis.PubSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ps
}

// replace puts a new subscriber connection, subscribed to the interest, in
// place of a silent one.
func (b *Broker) replace() {
	b.mu.Lock()
	old := b.ps
	b.ps = b.client.Subscribe(b.ctx)
	subjects := slices.Collect(maps.Keys(b.subjects))
	ps := b.ps
	b.mu.Unlock()
	old.Close()
	if len(subjects) > 0 {
		ps.Subscribe(b.ctx, subjects...) // on error go-redis retries at the next read
	}
}

// Start begins reading the subscriber connection.
func (b *Broker) Start(r rpcws.BrokerReceiver) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return errors.New("redis broker: started twice")
	}
	b.started = true
	go b.read(r)
	return nil
}

// read hands what the subscriber connection receives to r, until Close.
// After an error it waits a little and reads again, which makes go-redis
// connect and subscribe again; the first reply after that tells r the gap.
// A connection silent for the health interval is pinged; silent for another,
// it is replaced.
func (b *Broker) read(r rpcws.BrokerReceiver) {
	defer close(b.done)
	const minWait, maxWait = 50 * time.Millisecond, time.Second
	wait := minWait
	lost, pinged := false, false
	for {
		ps := b.pubsub()
		m, err := ps.ReceiveTimeout(b.ctx, b.health)
		if b.ctx.Err() != nil {
			return
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			if !pinged {
				pinged = true
				if ps.Ping(b.ctx) == nil {
					continue
				}
			}
			pinged = false
			lost = true
			b.replace()
			continue
		}
		pinged = false
		if err != nil {
			lost = true
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, maxWait)
			continue
		}
		wait = minWait
		switch m := m.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				b.confirmed(m.Channel)
			}
		case *goredis.Message:
			r.Receive(m.Channel, []byte(m.Payload))
		}
		if lost {
			lost = false
			r.Lost(nil)
		}
	}
}

// confirmed wakes the oldest Subscribe waiting for channel.
func (b *Broker) confirmed(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.waiting[channel]; len(w) > 0 {
		close(w[0])
		if len(w) == 1 {
			delete(b.waiting, channel)
		} else {
			b.waiting[channel] = w[1:]
		}
	}
}

// Subscribe subscribes to subject and waits for Redis to confirm it, so
// that a message published afterwards is delivered. The interest is kept
// when it fails: go-redis subscribes again when it reconnects.
func (b *Broker) Subscribe(ctx context.Context, subject string) error {
	ch := make(chan struct{})
	b.mu.Lock()
	b.subjects[subject] = struct{}{}
	b.waiting[subject] = append(b.waiting[subject], ch)
	ps := b.ps
	b.mu.Unlock()
	if err := ps.Subscribe(ctx, subject); err != nil {
		b.forget(subject, ch)
		return fmt.Errorf("redis broker: subscribe: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		b.forget(subject, ch)
		return ctx.Err()
	case <-b.done:
		return rpcws.ErrBrokerClosed
	}
}

func (b *Broker) forget(subject string, ch chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.waiting[subject]
	for i, c := range w {
		if c == ch {
			w = append(w[:i:i], w[i+1:]...)
			break
		}
	}
	if len(w) == 0 {
		delete(b.waiting, subject)
	} else {
		b.waiting[subject] = w
	}
}

// Unsubscribe unsubscribes from subject.
func (b *Broker) Unsubscribe(ctx context.Context, subject string) error {
	b.mu.Lock()
	delete(b.subjects, subject)
	ps := b.ps
	b.mu.Unlock()
	if err := ps.Unsubscribe(ctx, subject); err != nil {
		return fmt.Errorf("redis broker: unsubscribe: %w", err)
	}
	return nil
}

// Publish publishes msg to subject and waits for Redis to take it, so that
// one caller's messages keep their order.
func (b *Broker) Publish(ctx context.Context, subject string, msg []byte) error {
	if err := b.client.Publish(ctx, subject, msg).Err(); err != nil {
		return fmt.Errorf("redis broker: publish: %w", err)
	}
	return nil
}

// Close closes the connections to Redis and ends the reading goroutine.
func (b *Broker) Close() error {
	b.cancel()
	err := b.pubsub().Close() // ends a read under way
	b.mu.Lock()
	started := b.started
	b.started = true // a Start after Close starts nothing
	b.mu.Unlock()
	if started {
		<-b.done
	}
	// The reading goroutine may have replaced the connection meanwhile.
	return errors.Join(ignoreClosed(err), ignoreClosed(b.pubsub().Close()), ignoreClosed(b.client.Close()))
}

func ignoreClosed(err error) error {
	if err != nil && err.Error() == "redis: client is closed" {
		return nil
	}
	return err
}
