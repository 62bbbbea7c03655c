package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rpcws/rpcws/rpcws"
)

var _ rpcws.PresenceBroker = (*Broker)(nil)

// presenceBatch is how many entries AddPresence and RemovePresence
// publish before they wait for the server's acknowledgements.
const presenceBatch = 256

// MaxPresence bounds the entries Presence reads for one topic: past it,
// Presence fails with ErrTooManyPresent rather than hold more.
const MaxPresence = 1 << 20

// ErrTooManyPresent is the error of Presence for a topic with more than
// MaxPresence entries.
var ErrTooManyPresent = errors.New("nats broker: presence: too many entries")

// presenceKey is the key of e in presenceBucket: its topic, then its
// peer, each as one token (base64url), so that the keys of one topic are
// those that match presenceKeyOf(topic) + ".*".
func presenceKey(e rpcws.PresenceEntry) string { return keyOf(e.Topic) + "." + keyOf(e.Peer) }

// AddPresence puts entries in presenceBucket, to expire after ttl: in
// batches of presenceBatch asynchronous publishes, each batch
// acknowledged before the next. The bucket's MaxAge is the longest ttl
// any caller asked (NATS 2.9 has no per-key TTL); each entry keeps its
// own ttl, checked when it is read.
func (b *Broker) AddPresence(ctx context.Context, ttl time.Duration, entries ...rpcws.PresenceEntry) error {
	err := b.presencePublish(ctx, ttl, entries, func(e rpcws.PresenceEntry, m *gonats.Msg) {
		m.Data = expiring(ttl, e.Info)
	})
	if err != nil {
		return fmt.Errorf("nats broker: add presence: %w", err)
	}
	return nil
}

// RemovePresence purges entries from presenceBucket at once, batched as
// AddPresence.
func (b *Broker) RemovePresence(ctx context.Context, entries ...rpcws.PresenceEntry) error {
	err := b.presencePublish(ctx, 0, entries, func(_ rpcws.PresenceEntry, m *gonats.Msg) {
		m.Header.Set("KV-Operation", "PURGE")
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	})
	if err != nil {
		return fmt.Errorf("nats broker: remove presence: %w", err)
	}
	return nil
}

// presencePublish publishes one message per entry to its key in
// presenceBucket, filled by fill, in acknowledged batches.
func (b *Broker) presencePublish(ctx context.Context, ttl time.Duration, entries []rpcws.PresenceEntry, fill func(rpcws.PresenceEntry, *gonats.Msg)) error {
	if b.isClosed() {
		return rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	if len(entries) == 0 {
		return nil
	}
	return b.st.withBucket(ctx, presenceBucket, max(ttl, time.Millisecond), func(jetstream.KeyValue) error {
		for start := 0; start < len(entries); start += presenceBatch {
			batch := entries[start:min(start+presenceBatch, len(entries))]
			acks := make([]jetstream.PubAckFuture, 0, len(batch))
			for _, e := range batch {
				m := gonats.NewMsg("$KV." + presenceBucket + "." + presenceKey(e))
				fill(e, m)
				f, err := b.st.js.PublishMsgAsync(m)
				if err != nil {
					return err
				}
				acks = append(acks, f)
			}
			if err := awaitAcks(ctx, acks); err != nil {
				return err
			}
		}
		return nil
	})
}

// awaitAcks waits for every ack, or the first error, or ctx's end.
func awaitAcks(ctx context.Context, acks []jetstream.PubAckFuture) error {
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Presence lists the topic's entries that have not expired: a watch of
// the bucket's keys of the topic (an ordered consumer that delivers the
// last value of each), read up to its initial values, at most MaxPresence.
func (b *Broker) Presence(ctx context.Context, subject string) ([]rpcws.PresenceEntry, error) {
	if b.isClosed() {
		return nil, rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	var out []rpcws.PresenceEntry
	err := b.st.withBucket(ctx, presenceBucket, 0, func(kv jetstream.KeyValue) error {
		var err error
		out, err = listPresence(ctx, kv, subject)
		return err
	})
	if errors.Is(err, errNoBucket) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats broker: presence of %s: %w", subject, err)
	}
	return out, nil
}

func listPresence(ctx context.Context, kv jetstream.KeyValue, subject string) ([]rpcws.PresenceEntry, error) {
	prefix := keyOf(subject) + "."
	w, err := kv.Watch(ctx, prefix+"*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() {
		w.Stop()
		for range w.Updates() { // until closed: the watcher's callback never blocks
		}
	}()
	now := time.Now()
	var out []rpcws.PresenceEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil // the initial values are all in
			}
			if len(out) == MaxPresence {
				return nil, ErrTooManyPresent
			}
			peer, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(e.Key(), prefix))
			info, alive := unexpired(e.Value(), e.Created(), now)
			if err == nil && alive {
				out = append(out, rpcws.PresenceEntry{Topic: subject, Peer: string(peer), Info: info})
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
