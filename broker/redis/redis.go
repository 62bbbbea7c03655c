// Package redis is an [rpcws.Broker] on Redis pub/sub, through
// github.com/redis/go-redis/v9: replicas of an rpcws service that share one
// Redis server reach each other's connections with [rpcws.Handler.Publish].
//
//	b, err := redis.New("redis://127.0.0.1:6379")
//	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{Broker: b})
//
// Each broker publishes through go-redis's connection pool and keeps one
// subscriber connection of its own, read by one goroutine that hands every
// message to the handler at once (the handler never waits on a client).
// Channels are subscribed with SUBSCRIBE, never PSUBSCRIBE: names are
// literal.
//
// The broker speaks to that connection itself, not through go-redis's
// PubSub, because of what a reconnection asks: go-redis subscribes again to
// every channel in one SUBSCRIBE, whose confirmations, for tens of
// thousands of long channel names, exceed Redis's output limit for pub/sub
// clients (client-output-buffer-limit pubsub, 32 MB), so that Redis cuts
// the connection again, for ever. This broker subscribes again in batches
// and keeps the confirmations it has not read under 1 MiB: 100,000
// channels of 128-character names take a second or two. Once every channel
// is confirmed it reports the gap ([rpcws.BrokerReceiver.Lost]), and every
// connection receives rpcws.resync. A subscriber too slow for Redis is cut
// and handled the same way. A connection that goes silent without closing
// (a middlebox dropped it) is found by a ping after
// [Options.HealthInterval] and replaced.
//
// The subscriber connection uses go-redis's options for the address, the
// dialer and TLS, the dial timeout, and Username and Password (or a
// CredentialsProvider); the database number does not apply to pub/sub.
//
// # History, sessions and presence
//
// The broker is an [rpcws.HistoryBroker], an [rpcws.SessionBroker] and an
// [rpcws.PresenceBroker] (Redis 7 or later), for handlers with
// HandlerOptions.History or Presence. Its keys begin with
// [Options.KeyPrefix] ("rpcws:"); a topic's subject is in braces, so that
// a topic's keys share a slot of a cluster.
//
//   - A topic's history is a stream, <prefix>h:{<subject>}:ev, whose entry
//     IDs are 0-<offset>, trimmed with XADD MAXLEN ~ (it keeps Size events
//     at least, and up to about a hundred more: Redis trims whole nodes of
//     the stream), and which expires TTL after the last publish. Its
//     position, the epoch (128 random bits) and the last offset, is a hash,
//     <prefix>h:{<subject>}:pos, kept apart, for max(TTL, 24h) after the
//     last publish: a quiet topic stays recoverable when its events are
//     gone. One Lua script per publish creates the position if missing (a
//     new epoch: Redis lost it, or it expired), increments the offset, adds
//     the event and publishes it, so that offsets have no gap whatever the
//     number of replicas, and subscribers and history never disagree. The
//     published message carries the epoch and offset; subscribers deliver it
//     through [rpcws.HistoryReceiver.ReceiveAt]. History reads with
//     XREVRANGE … COUNT limit, never the whole stream.
//   - A session is a string key named by the SHA-256 of its id,
//     <prefix>s:<hex>: the database holds no id, and the broker compares
//     none (Redis finds the key). SET PX saves it, GETDEL takes it once,
//     PEXPIRE, pipelined in batches of a thousand, touches sessions.
//   - A topic's presence is a hash of peer → info and a sorted set of
//     peer → expiry (in Redis's clock), <prefix>p:{<subject>}:info and
//     :exp, written together by a script; both keys expire when no replica
//     refreshes them. Presence returns at most 10,000 entries of a topic
//     (those that expire first) and deletes up to 1,000 expired ones per
//     call.
//
// Every call is bounded by its context: the broker sets go-redis's
// ContextTimeoutEnabled on its copy of the options, so that a deadline
// bounds each command, and the calls of history, sessions and presence
// return at once, too, when their context is canceled while Redis is
// stalled.
package redis

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

	// KeyPrefix begins the name of every key the broker keeps (history,
	// sessions, presence), so that several services can share a database.
	// Empty means [DefaultKeyPrefix].
	KeyPrefix string
}

// DefaultKeyPrefix is the default of [Options.KeyPrefix].
const DefaultKeyPrefix = "rpcws:"

// Broker is an [rpcws.Broker] on one Redis server. Its methods are safe for
// concurrent use.
type Broker struct {
	client *goredis.Client // publishes
	opts   *goredis.Options
	health time.Duration
	prefix string          // of every key
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the connecting goroutine ends

	mu       sync.Mutex // guards the fields below
	subjects map[string]*interest
	conn     *subConn // nil while disconnected
	down     bool     // a connection attempt failed, and none succeeded since
	started  bool
}

// interest is the broker's interest in one channel.
type interest struct {
	confirmed bool            // Redis confirmed it on the current connection
	waiters   []chan struct{} // Subscribe calls waiting for that
}

var _ rpcws.Broker = (*Broker)(nil)

// errNotConnected is the error of a Subscribe while the subscriber
// connection is down: the interest is kept, and subscribed on reconnection.
var errNotConnected = errors.New("redis broker: not connected to Redis; subscribing once connected")

// errPlainMagic is the error of a Publish of a message that begins like
// one published with history.
var errPlainMagic = errors.New("redis broker: publish: the message begins like one published with history")

// New returns a broker on the Redis server at url
// ("redis://[user:password@]host:port[/db]", see go-redis's ParseURL). It
// does not connect yet: Start does, in the background.
func New(url string) (*Broker, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis broker: %w", err)
	}
	return NewWithOptions(Options{Redis: opt}), nil
}

// NewWithOptions returns a broker configured by opts. It does not connect
// yet: Start does, in the background.
func NewWithOptions(opts Options) *Broker {
	o := &goredis.Options{Addr: "127.0.0.1:6379"}
	if opts.Redis != nil {
		c := *opts.Redis
		o = &c
	}
	// Every call is bounded by its caller's context, not only by the
	// client's timeouts: a stalled Redis holds no caller past its deadline.
	o.ContextTimeoutEnabled = true
	if opts.HealthInterval == 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	b := &Broker{
		client:   goredis.NewClient(o),
		opts:     o,
		health:   max(opts.HealthInterval, 0),
		prefix:   cmp.Or(opts.KeyPrefix, DefaultKeyPrefix),
		done:     make(chan struct{}),
		subjects: make(map[string]*interest),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// Start begins connecting the subscriber connection, in the background.
func (b *Broker) Start(r rpcws.BrokerReceiver) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return errors.New("redis broker: started twice")
	}
	b.started = true
	go b.run(r)
	return nil
}

// Subscribe subscribes to subject and waits for Redis to confirm it, so
// that a message published afterwards is delivered. The interest is kept
// when it fails: while disconnected it fails at once, and the subject is
// subscribed on reconnection.
func (b *Broker) Subscribe(ctx context.Context, subject string) error {
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		return rpcws.ErrBrokerClosed
	}
	in := b.subjects[subject]
	if in == nil {
		in = new(interest)
		b.subjects[subject] = in
		if b.conn != nil {
			b.conn.queue(subject, true)
		}
	}
	if in.confirmed {
		b.mu.Unlock()
		return nil
	}
	if b.conn == nil && b.down {
		b.mu.Unlock()
		return errNotConnected
	}
	ch := make(chan struct{})
	in.waiters = append(in.waiters, ch)
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		b.forget(subject, ch)
		return fmt.Errorf("redis broker: subscribe: no confirmation: %w", ctx.Err())
	case <-b.ctx.Done():
		return rpcws.ErrBrokerClosed
	}
}

// forget drops a waiter that stopped waiting.
func (b *Broker) forget(subject string, ch chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if in := b.subjects[subject]; in != nil {
		for i, c := range in.waiters {
			if c == ch {
				in.waiters = append(in.waiters[:i:i], in.waiters[i+1:]...)
				break
			}
		}
	}
}

// confirmed marks subject subscribed and wakes its waiters.
func (b *Broker) confirmed(subject string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if in := b.subjects[subject]; in != nil {
		in.confirmed = true
		for _, ch := range in.waiters {
			close(ch)
		}
		in.waiters = nil
	}
}

// Unsubscribe unsubscribes from subject. It does not wait for Redis.
func (b *Broker) Unsubscribe(ctx context.Context, subject string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subjects[subject]; !ok {
		return nil
	}
	delete(b.subjects, subject)
	if b.conn != nil {
		b.conn.queue(subject, false)
	}
	return nil
}

// Publish publishes msg to subject and waits for Redis to take it, so that
// one caller's messages keep their order.
// A message that begins like one published with history is refused, so
// that subscribers never take one for the other.
func (b *Broker) Publish(ctx context.Context, subject string, msg []byte) error {
	if bytes.HasPrefix(msg, []byte(historyMagic)) {
		return errPlainMagic
	}
	if err := b.client.Publish(ctx, subject, msg).Err(); err != nil {
		return fmt.Errorf("redis broker: publish: %w", err)
	}
	return nil
}

// Close closes the connections to Redis and ends the broker's goroutines.
func (b *Broker) Close() error {
	b.cancel()
	b.mu.Lock()
	started := b.started
	b.started = true // a Start after Close starts nothing
	if b.conn != nil {
		b.conn.close()
	}
	b.mu.Unlock()
	if started {
		<-b.done
	}
	if err := b.client.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return err
	}
	return nil
}

// SetLogger routes go-redis's own log lines, which it writes to stderr by
// default, to logger, at level Warn. go-redis keeps its logger in a
// package variable, so the setting is process-wide and outlives brokers:
// call it once, from main. The broker's own lines go to the handler's
// logger without it.
func SetLogger(logger *slog.Logger) {
	goredis.SetLogger(printfLogger{logger})
}

type printfLogger struct{ l *slog.Logger }

func (p printfLogger) Printf(ctx context.Context, format string, v ...any) {
	p.l.Log(ctx, slog.LevelWarn, "go-redis: "+fmt.Sprintf(format, v...))
}

// bounded returns what f returns, or ctx's error as soon as ctx ends. The
// broker has go-redis bound each command by its context's deadline
// (ContextTimeoutEnabled), but go-redis notices a cancellation only at its
// read or write timeout; with bounded, a caller whose context is canceled
// while Redis is stalled returns at once, and f ends by that timeout, or
// when Close closes the connections.
func bounded[T any](ctx context.Context, f func() (T, error)) (T, error) {
	if ctx.Done() == nil {
		return f()
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// fail returns the error of the operation op: [rpcws.ErrBrokerClosed]
// once the broker is closed, err with op otherwise.
func (b *Broker) fail(op string, err error) error {
	if b.ctx.Err() != nil || errors.Is(err, goredis.ErrClosed) {
		return rpcws.ErrBrokerClosed
	}
	return fmt.Errorf("redis broker: %s: %w", op, err)
}
