package redis

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/rpcws"
)

// Pacing of subscriptions on a subscriber connection. Redis answers every
// channel of a SUBSCRIBE or UNSUBSCRIBE with a reply about as long as its
// name plus 40 bytes, and cuts a pub/sub client whose unread replies pass
// 32 MB (or 8 MB for a minute). The broker sends commands of up to
// maxBatch bytes of names, and no more while the replies it has not read
// would pass maxUnread.
const (
	maxBatch  = 64 << 10
	maxUnread = 1 << 20
	replyCost = 48 // bytes of a reply besides the channel's name
)

const (
	minRetry, maxRetry = 50 * time.Millisecond, time.Second // between connection attempts
	defaultDialTimeout = 5 * time.Second
	writeTimeout       = 10 * time.Second
)

// subConn is one subscriber connection and what it has still to send.
type subConn struct {
	nc   net.Conn
	kick chan struct{} // wakes the writer; capacity 1
	gone chan struct{} // closed by close
	once sync.Once

	// guarded by Broker.mu
	ops     []op           // to send, in order
	fresh   []string       // new subscriptions, sent before ops (see queue)
	isFresh map[string]int // replies expected for them, by channel
	unread  int            // bytes of replies expected and not yet read
	pending map[string]int // replies expected, by channel
	ping    bool           // a PING to send
	dead    bool
}

// op is one channel to subscribe to or unsubscribe from.
type op struct {
	channel   string
	subscribe bool
}

// queue adds an op; the caller holds Broker.mu. A subscription to a
// channel with no op under way jumps the queue, so that a join is not held
// up behind the resubscription of 100,000 channels: with nothing else
// pending for that channel, its order against other channels' ops does
// not matter.
func (c *subConn) queue(channel string, subscribe bool) {
	if subscribe && c.pending[channel] == 0 {
		c.fresh = append(c.fresh, channel)
		c.isFresh[channel]++
	} else {
		c.ops = append(c.ops, op{channel, subscribe})
	}
	c.pending[channel]++
	c.wake()
}

// freshReply reports whether a subscribe reply about channel answers a
// fresh subscription, and accounts for it; the caller holds Broker.mu.
func (c *subConn) freshReply(channel string) bool {
	n := c.isFresh[channel]
	if n == 0 {
		return false
	}
	if n == 1 {
		delete(c.isFresh, channel)
	} else {
		c.isFresh[channel] = n - 1
	}
	return true
}

func (c *subConn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// close ends the connection; the caller may hold Broker.mu.
func (c *subConn) close() {
	c.once.Do(func() {
		c.nc.Close()
		close(c.gone)
	})
}

// run connects the subscriber connection and serves it, again and again,
// until Close. It logs the loss of Redis once and its return once.
func (b *Broker) run(r rpcws.BrokerReceiver) {
	defer close(b.done)
	log := r.Logger()
	var downSince time.Time // zero while connected, or before the first attempt
	lost := false           // interest went unserved: report a gap once subscribed
	wait := minRetry
	for b.ctx.Err() == nil {
		nc, err := b.dial()
		if err == nil {
			wait = minRetry
			since := downSince
			downSince = time.Time{}
			err = b.serve(nc, r, log, lost, since)
		}
		if b.ctx.Err() != nil {
			return
		}
		lost = true
		b.mu.Lock()
		b.down = true
		b.mu.Unlock()
		if downSince.IsZero() {
			downSince = time.Now()
			level := slog.LevelWarn
			if errors.Is(err, errAuth) {
				level = slog.LevelError // no retry mends credentials: an operator must
			}
			log.Log(b.ctx, level, "rpcws redis broker: no subscriber connection to Redis; reconnecting", "addr", b.opts.Addr, "error", err)
		} else {
			log.Debug("rpcws redis broker: reconnection failed", "addr", b.opts.Addr, "error", err)
		}
		select {
		case <-b.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRetry)
	}
}

// dial opens a subscriber connection and authenticates it.
func (b *Broker) dial() (net.Conn, error) {
	o := *b.opts
	o.DialTimeout = cmp.Or(o.DialTimeout, defaultDialTimeout)
	dial := o.Dialer
	if dial == nil {
		dial = goredis.NewDialer(&o)
	}
	ctx, cancel := context.WithTimeout(b.ctx, o.DialTimeout)
	defer cancel()
	nc, err := dial(ctx, cmp.Or(o.Network, "tcp"), o.Addr)
	if err != nil {
		return nil, err
	}
	user, pass := o.Username, o.Password
	if o.CredentialsProvider != nil {
		user, pass = o.CredentialsProvider()
	}
	if pass == "" {
		return nc, nil
	}
	args := []string{pass}
	if user != "" {
		args = []string{user, pass}
	}
	nc.SetDeadline(time.Now().Add(o.DialTimeout))
	_, err = nc.Write(appendCommand(nil, "AUTH", args...))
	var line []byte
	if err == nil {
		line, err = (&reader{br: bufio.NewReaderSize(nc, 512)}).line()
	}
	if err == nil && line[0] != '+' {
		err = fmt.Errorf("%w: %s", errAuth, line)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// serve subscribes nc to every channel of the interest, in paced batches,
// and reads it until it fails. Once Redis has confirmed the channels it
// subscribed at the start, it reports a gap when lost says one happened.
func (b *Broker) serve(nc net.Conn, r rpcws.BrokerReceiver, log *slog.Logger, lost bool, downSince time.Time) error {
	c := &subConn{nc: nc, kick: make(chan struct{}, 1), pending: make(map[string]int), isFresh: make(map[string]int)}
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		nc.Close()
		return nil
	}
	c.gone = make(chan struct{})
	c.ops = make([]op, 0, len(b.subjects))
	for ch, in := range b.subjects {
		in.confirmed = false
		c.ops = append(c.ops, op{ch, true})
		c.pending[ch]++
	}
	resub := len(c.ops)
	b.conn, b.down = c, false
	b.mu.Unlock()
	back := func() {
		if lost {
			log.Info("rpcws redis broker: subscriber connection to Redis is back; subscribed again",
				"addr", b.opts.Addr, "channels", resub, "down", time.Since(downSince).Round(time.Millisecond))
			r.Lost(nil)
		}
	}
	readErr := make(chan error, 1)
	go func() { readErr <- b.read(c, r, resub, back) }()
	werr := b.write(c)
	c.close()
	err := <-readErr
	b.mu.Lock()
	c.dead = true
	b.conn = nil
	b.mu.Unlock()
	return cmp.Or(err, werr)
}

// write sends c's ops, paced, and its pings, until c fails.
func (b *Broker) write(c *subConn) error {
	for {
		b.mu.Lock()
		cmd := b.nextCommand(c)
		b.mu.Unlock()
		if cmd == nil {
			select {
			case <-c.kick:
				continue
			case <-c.gone:
				return nil
			}
		}
		c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.nc.Write(cmd); err != nil {
			return err
		}
	}
}

// nextCommand returns the next command to send on c, or nil for none now;
// the caller holds b.mu.
func (b *Broker) nextCommand(c *subConn) []byte {
	if c.dead {
		return nil
	}
	if c.ping {
		c.ping = false
		return appendCommand(nil, "PING")
	}
	if c.unread >= maxUnread {
		return nil
	}
	if len(c.fresh) > 0 {
		var args []string
		for size := 0; len(c.fresh) > 0 && size < maxBatch && c.unread < maxUnread; {
			ch := c.fresh[0]
			c.fresh = c.fresh[1:]
			args = append(args, ch)
			size += len(ch)
			c.unread += len(ch) + replyCost
		}
		return appendCommand(nil, "SUBSCRIBE", args...)
	}
	if len(c.ops) == 0 {
		return nil
	}
	subscribe := c.ops[0].subscribe
	var args []string
	size := 0
	for len(c.ops) > 0 && c.ops[0].subscribe == subscribe && size < maxBatch && c.unread < maxUnread {
		ch := c.ops[0].channel
		c.ops = c.ops[1:]
		args = append(args, ch)
		size += len(ch)
		c.unread += len(ch) + replyCost
	}
	if len(c.ops) == 0 {
		c.ops = nil
	}
	if subscribe {
		return appendCommand(nil, "SUBSCRIBE", args...)
	}
	return appendCommand(nil, "UNSUBSCRIBE", args...)
}

// replied accounts for a reply about channel, letting the writer send more.
// It reports whether no other reply about channel is expected, and whether
// the reply answers a fresh subscription.
func (b *Broker) replied(c *subConn, channel string, subscribe bool) (last, fresh bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fresh = subscribe && c.freshReply(channel)
	c.unread -= len(channel) + replyCost
	c.wake()
	n := c.pending[channel] - 1
	if n > 0 {
		c.pending[channel] = n
		return false, fresh
	}
	delete(c.pending, channel)
	return true, fresh
}

// read hands what c receives to r until c fails. Once the first resub
// subscriptions are confirmed it calls back. A connection silent for the
// health interval is pinged; silent for another, it is given up.
func (b *Broker) read(c *subConn, r rpcws.BrokerReceiver, resub int, back func()) error {
	defer c.close()
	if resub == 0 {
		back()
	}
	rd := &reader{br: bufio.NewReaderSize(c.nc, 64<<10)}
	hr, _ := r.(rpcws.HistoryReceiver)
	var dropped int          // malformed history messages not yet logged
	var droppedLog time.Time // when they were last logged
	pinged := false
	for {
		if b.health > 0 {
			c.nc.SetReadDeadline(time.Now().Add(b.health))
		}
		p, err := rd.readPush()
		switch {
		case errors.Is(err, errIdle) && !pinged:
			pinged = true
			b.mu.Lock()
			c.ping = true
			c.wake()
			b.mu.Unlock()
			continue
		case errors.Is(err, errIdle):
			return errors.New("no answer to a ping")
		case errors.Is(err, errTooLarge):
			r.Logger().Warn("rpcws redis broker: skipped a message larger than 32 MiB", "channel", p.channel)
			continue
		case err != nil:
			return err
		}
		pinged = false
		switch p.kind {
		case "message":
			if !deliver(r, hr, p.channel, p.payload) {
				if dropped++; time.Since(droppedLog) >= time.Minute {
					r.Logger().Warn("rpcws redis broker: dropped malformed history messages", "channel", p.channel, "count", dropped)
					dropped, droppedLog = 0, time.Now()
				}
			}
		case "subscribe", "unsubscribe":
			last, fresh := b.replied(c, p.channel, p.kind == "subscribe")
			if last && p.kind == "subscribe" {
				b.confirmed(p.channel)
			}
			if p.kind == "subscribe" && !fresh && resub > 0 {
				if resub--; resub == 0 {
					back()
				}
			}
		}
	}
}

// deliver hands a message to r: one published with history to hr, with
// its position, when r takes positions (to Receive otherwise); a plain one
// to Receive. It drops a message that begins like one with history but is
// malformed, and reports false (the caller logs that, at most once a
// minute, without the content).
func deliver(r rpcws.BrokerReceiver, hr rpcws.HistoryReceiver, channel string, payload []byte) bool {
	pos, msg, ok, forged := parseHistoryMessage(payload)
	switch {
	case forged:
		return false
	case ok && hr != nil:
		hr.ReceiveAt(channel, pos, msg)
	case ok:
		r.Receive(channel, msg)
	default:
		r.Receive(channel, payload)
	}
	return true
}

// errAuth is the error of a subscriber connection whose AUTH Redis refused.
var errAuth = errors.New("redis broker: AUTH refused")

// errIdle is the error of a read that timed out with no reply begun.
var errIdle = errors.New("redis broker: subscriber connection silent")

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
