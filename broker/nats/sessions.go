package nats

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rpcws/rpcws/rpcws"
	"golang.org/x/sync/errgroup"
)

var _ rpcws.SessionBroker = (*Broker)(nil)

// touchParallel bounds the sessions TouchSessions refreshes at once.
const touchParallel = 32

// takeAttempts bounds the tries of TakeSession that lose to a concurrent
// touch of the session.
const takeAttempts = 32

// sessionKey is the key of session id in sessionBucket: a hash, so that
// the secret id never appears in a subject (which the server may log or
// list).
func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// SaveSession puts record under id in sessionBucket, to expire after ttl.
// The bucket's MaxAge is the longest ttl any caller asked (NATS 2.9 has no
// per-key TTL); each record keeps its own ttl, checked when it is taken.
func (b *Broker) SaveSession(ctx context.Context, id string, record []byte, ttl time.Duration) error {
	if b.isClosed() {
		return rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := b.st.withBucket(ctx, sessionBucket, max(ttl, time.Millisecond), func(kv jetstream.KeyValue) error {
		_, err := kv.Put(ctx, sessionKey(id), expiring(ttl, record))
		return err
	})
	if err != nil {
		return fmt.Errorf("nats broker: save session: %w", err)
	}
	return nil
}

// TouchSessions puts again, with ttl, every session of ids that is alive:
// it reads them (touchParallel at once), then puts each back on the
// condition that it is still the revision read (so that a session taken
// or replaced meanwhile is left as it is), in batches of asynchronous
// publishes whose acknowledgements it awaits.
func (b *Broker) TouchSessions(ctx context.Context, ids []string, ttl time.Duration) error {
	if b.isClosed() {
		return rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := b.st.withBucket(ctx, sessionBucket, max(ttl, time.Millisecond), func(kv jetstream.KeyValue) error {
		alive, err := readSessions(ctx, kv, ids)
		if err != nil {
			return err
		}
		for start := 0; start < len(alive); start += presenceBatch {
			if err := b.putBack(ctx, alive[start:min(start+presenceBatch, len(alive))], ttl); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nats broker: touch sessions: %w", err)
	}
	return nil
}

// readSessions returns the sessions of ids that are alive.
func readSessions(ctx context.Context, kv jetstream.KeyValue, ids []string) ([]jetstream.KeyValueEntry, error) {
	entries := make([]jetstream.KeyValueEntry, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(touchParallel)
	for i, id := range ids {
		g.Go(func() error {
			e, err := kv.Get(gctx, sessionKey(id))
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				return nil
			}
			if err != nil {
				return err
			}
			if _, ok := unexpired(e.Value(), e.Created(), time.Now()); ok {
				entries[i] = e
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	alive := entries[:0]
	for _, e := range entries {
		if e != nil {
			alive = append(alive, e)
		}
	}
	return alive, nil
}

// putBack puts entries back with ttl, each on the condition that it is
// still the revision read; those that changed meanwhile are left.
func (b *Broker) putBack(ctx context.Context, entries []jetstream.KeyValueEntry, ttl time.Duration) error {
	acks := make([]jetstream.PubAckFuture, 0, len(entries))
	for _, e := range entries {
		rec, _ := unexpired(e.Value(), e.Created(), time.Now())
		m := gonats.NewMsg("$KV." + sessionBucket + "." + e.Key())
		m.Data = expiring(ttl, rec)
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(e.Revision(), 10))
		f, err := b.st.js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		if err := awaitAcks(ctx, []jetstream.PubAckFuture{f}); err != nil && !isWrongLast(err) {
			return err // a session taken, saved or touched meanwhile is no error
		}
	}
	return nil
}

// TakeSession gets the session and purges it on the condition that it is
// still the revision read (the server checks the subject's last
// sequence): of concurrent takers, on any nodes, one succeeds; the others
// read it again and find it gone.
func (b *Broker) TakeSession(ctx context.Context, id string) ([]byte, error) {
	if b.isClosed() {
		return nil, rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	var rec []byte
	err := b.st.withBucket(ctx, sessionBucket, 0, func(kv jetstream.KeyValue) error {
		var err error
		rec, err = take(ctx, kv, sessionKey(id))
		return err
	})
	if errors.Is(err, rpcws.ErrNoSession) || errors.Is(err, errNoBucket) {
		return nil, rpcws.ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("nats broker: take session: %w", err)
	}
	return rec, nil
}

func take(ctx context.Context, kv jetstream.KeyValue, key string) ([]byte, error) {
	for range takeAttempts {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil, rpcws.ErrNoSession
		}
		if err != nil {
			return nil, err
		}
		rec, alive := unexpired(e.Value(), e.Created(), time.Now())
		err = kv.Purge(ctx, key, jetstream.LastRevision(e.Revision()))
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // touched, saved or taken meanwhile: look again
		}
		if err != nil {
			return nil, err
		}
		if !alive {
			return nil, rpcws.ErrNoSession
		}
		return rec, nil
	}
	return nil, errors.New("the session keeps changing")
}
