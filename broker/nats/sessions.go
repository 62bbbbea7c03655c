package nats

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

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
// a get and a conditional update (on the revision read) for each, up to
// touchParallel at once, so that a session taken or replaced meanwhile is
// left as it is.
func (b *Broker) TouchSessions(ctx context.Context, ids []string, ttl time.Duration) error {
	if b.isClosed() {
		return rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := b.st.withBucket(ctx, sessionBucket, max(ttl, time.Millisecond), func(kv jetstream.KeyValue) error {
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(touchParallel)
		for _, id := range ids {
			g.Go(func() error { return touch(ctx, kv, sessionKey(id), ttl) })
		}
		return g.Wait()
	})
	if err != nil {
		return fmt.Errorf("nats broker: touch sessions: %w", err)
	}
	return nil
}

func touch(ctx context.Context, kv jetstream.KeyValue, key string, ttl time.Duration) error {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err != nil {
		return err
	}
	rec, alive := unexpired(e.Value(), e.Created(), time.Now())
	if !alive {
		return nil
	}
	_, err = kv.Update(ctx, key, expiring(ttl, rec), e.Revision())
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // taken, saved or touched meanwhile
	}
	return err
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
