package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/rpcws/rpcws/rpcws"
)

// DefaultPending is the number of received messages that may wait for the
// handler before NATS messages are dropped as a slow consumer.
const DefaultPending = 8192

// flushTimeout bounds a flush whose caller set no deadline.
const flushTimeout = 10 * time.Second

// Broker is an [rpcws.Broker] on one NATS connection. Its methods are safe
// for concurrent use.
type Broker struct {
	nc     *gonats.Conn
	st     *store     // JetStream: history, sessions, presence
	topics topicLocks // one publish with history per topic at a time
	order  orderer    // republished events back in offset order
	in     chan *gonats.Msg
	quit   chan struct{}
	done   chan struct{}

	ready chan struct{} // closed once New knows whether it connected at once
	late  bool          // the first connection was not made at once: its making is a gap; set before ready

	mu      sync.Mutex // guards the fields below
	recv    rpcws.BrokerReceiver
	subs    map[string]*gonats.Subscription
	closed  bool
	started bool
}

var _ rpcws.Broker = (*Broker)(nil)

// New connects to the NATS server at url (comma-separated for a cluster).
// An unreachable server is not an error: the broker connects, and keeps
// reconnecting, in the background. opts are nats.go's options, applied
// after the broker's own (reconnect for ever, every 250 ms); they must not
// set the reconnect, connect, disconnect or error handlers, which the
// broker uses to report gaps and to log, through the handler's logger,
// the loss of NATS and its return (once each) and nats.go's asynchronous
// errors.
//
// A first connection made at once is no gap; one made late (the server was
// unreachable at start) is reported as one, since connections may have
// joined topics meanwhile.
func New(url string, opts ...gonats.Option) (*Broker, error) {
	b := &Broker{
		in:    make(chan *gonats.Msg, DefaultPending),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		ready: make(chan struct{}),
		subs:  make(map[string]*gonats.Subscription),
	}
	all := append([]gonats.Option{
		gonats.Name("rpcws"),
		gonats.MaxReconnects(-1),
		gonats.ReconnectWait(250 * time.Millisecond),
		gonats.RetryOnFailedConnect(true),
	}, opts...)
	all = append(all,
		gonats.ReconnectHandler(func(nc *gonats.Conn) {
			<-b.ready
			b.st.reset() // the server may have come back without its streams
			b.order.forget(nil)
			b.logger().Info("rpcws nats broker: connection to NATS is back; subscribed again", "server", nc.ConnectedUrlRedacted())
			b.lost(nc, nil)
		}),
		gonats.ConnectHandler(b.connected),
		gonats.DisconnectErrHandler(func(nc *gonats.Conn, err error) {
			if nc.IsClosed() {
				return // Close, not a loss
			}
			<-b.ready
			b.st.reset()
			b.order.forget(nil)
			b.logger().Warn("rpcws nats broker: lost the connection to NATS; reconnecting", "error", err)
		}),
		gonats.ErrorHandler(func(nc *gonats.Conn, sub *gonats.Subscription, err error) {
			if errors.Is(err, gonats.ErrSlowConsumer) && sub != nil {
				b.logger().Warn("rpcws nats broker: messages dropped: the handler is not keeping up (slow consumer)", "subject", sub.Subject)
				b.lost(nil, []string{sub.Subject})
				return
			}
			b.logger().Warn("rpcws nats broker: error from NATS", "error", err)
		}),
	)
	nc, err := gonats.Connect(url, all...)
	if err != nil {
		return nil, fmt.Errorf("nats broker: %w", err)
	}
	if b.st, err = newStore(nc); err != nil {
		nc.Close()
		return nil, err
	}
	b.nc = nc
	b.late = !nc.IsConnected()
	close(b.ready)
	return b, nil
}

// connected is nats.go's handler of the first connection: at once, or late
// when the server was unreachable at start; only the late one is a gap.
func (b *Broker) connected(nc *gonats.Conn) {
	<-b.ready
	if b.late {
		b.logger().Info("rpcws nats broker: connected to NATS, late", "server", nc.ConnectedUrlRedacted())
		b.lost(nc, nil)
	}
}

// logger is the handler's logger once started, or one that discards.
func (b *Broker) logger() *slog.Logger {
	b.mu.Lock()
	r := b.recv
	b.mu.Unlock()
	if r == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger()
}

// lost tells the receiver of a gap; after a reconnect, once the server has
// the subscriptions again.
func (b *Broker) lost(nc *gonats.Conn, subjects []string) {
	if nc != nil {
		nc.FlushTimeout(flushTimeout) // the subscriptions are in effect again
	}
	b.mu.Lock()
	r, closed := b.recv, b.closed
	b.mu.Unlock()
	if r != nil && !closed {
		r.Lost(subjects)
	}
}

// Start begins delivering to r.
func (b *Broker) Start(r rpcws.BrokerReceiver) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return errors.New("nats broker: started twice")
	}
	b.started, b.recv = true, r
	go b.read(r)
	return nil
}

// read hands every message to r: through ReceiveAt, with its position
// and in offset order (see orderer), those the history stream
// republished, when r takes them.
func (b *Broker) read(r rpcws.BrokerReceiver) {
	defer close(b.done)
	hr, _ := r.(rpcws.HistoryReceiver)
	wait := time.NewTimer(reorderWait)
	wait.Stop()
	waiting := false
	for {
		select {
		case m := <-b.in:
			p, ok := parsePositioned(m)
			if !ok || hr == nil {
				r.Receive(m.Subject, m.Data)
				continue
			}
			b.st.noteLast(historyPrefix+p.subject, last{p.seq, p.pos})
			if b.ordered(hr, p) && !waiting {
				wait.Reset(reorderWait)
				waiting = true
			}
		case <-wait.C:
			waiting = false
			next := b.order.expire(time.Now(), func(subject string, out []positioned) {
				b.lost(nil, []string{subject})
				deliverAt(hr, out)
			})
			if !next.IsZero() {
				wait.Reset(time.Until(next))
				waiting = true
			}
		case <-b.quit:
			wait.Stop()
			return
		}
	}
}

// ordered delivers p, and the events it lets follow, in offset order
// when this broker is subscribed to its subject (the handler discards
// the others); it reports whether events wait.
func (b *Broker) ordered(hr rpcws.HistoryReceiver, p positioned) (waiting bool) {
	b.mu.Lock()
	_, subscribed := b.subs[p.subject]
	b.mu.Unlock()
	if !subscribed {
		hr.ReceiveAt(p.subject, p.pos, p.data)
		return false
	}
	out, lost, waiting := b.order.add(p, time.Now())
	if lost {
		b.lost(nil, []string{p.subject})
	}
	deliverAt(hr, out)
	return waiting
}

func deliverAt(hr rpcws.HistoryReceiver, out []positioned) {
	for _, e := range out {
		hr.ReceiveAt(e.subject, e.pos, e.data)
	}
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Subscribe subscribes to subject and waits for the server to have it
// (a flush), so that a message published afterwards is delivered. When the
// flush fails the subscription stays: nats.go sends it again on reconnect.
func (b *Broker) Subscribe(ctx context.Context, subject string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return rpcws.ErrBrokerClosed
	}
	if _, ok := b.subs[subject]; !ok {
		sub, err := b.nc.ChanSubscribe(subject, b.in)
		if err != nil {
			b.mu.Unlock()
			return fmt.Errorf("nats broker: subscribe: %w", err)
		}
		b.subs[subject] = sub
	}
	b.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok { // nats.go's flush needs one
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats broker: subscribe: %w", err)
	}
	return nil
}

// Unsubscribe drops the subscription to subject.
func (b *Broker) Unsubscribe(ctx context.Context, subject string) error {
	b.mu.Lock()
	sub := b.subs[subject]
	delete(b.subs, subject)
	b.mu.Unlock()
	b.order.forget(&subject)
	if sub == nil {
		return nil
	}
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, gonats.ErrConnectionClosed) {
		return fmt.Errorf("nats broker: unsubscribe: %w", err)
	}
	return nil
}

// Publish queues msg to subject on the connection; nats.go writes in
// order, and buffers while reconnecting.
func (b *Broker) Publish(ctx context.Context, subject string, msg []byte) error {
	if err := b.nc.Publish(subject, msg); err != nil {
		return fmt.Errorf("nats broker: publish: %w", err)
	}
	return nil
}

// Close closes the NATS connection and ends the reading goroutine.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.started
	b.mu.Unlock()
	b.nc.Close()
	close(b.quit)
	if started {
		<-b.done
	}
	return nil
}
