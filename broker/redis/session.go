package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/rpcws"
)

// A session is one string key, named by the SHA-256 of its id: whoever
// reads the keys of the database (SCAN, a dump, a log of slow commands)
// learns no id that would take a session, and no id is compared by the
// broker at all (Redis finds the key). Ids and keys are never logged.

// touchBatch is how many sessions one pipeline of TouchSessions touches.
const touchBatch = 1000

var _ rpcws.SessionBroker = (*Broker)(nil)

// sessionKey returns the key of the session id.
func (b *Broker) sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return b.prefix + "s:" + hex.EncodeToString(h[:])
}

// SaveSession stores record under id (SET PX), to expire after ttl (at
// least a millisecond).
func (b *Broker) SaveSession(ctx context.Context, id string, record []byte, ttl time.Duration) error {
	_, err := bounded(ctx, func() (string, error) {
		return b.client.Set(ctx, b.sessionKey(id), record, max(ttl, time.Millisecond)).Result()
	})
	if err != nil {
		return b.fail("save session", err)
	}
	return nil
}

// TouchSessions sets the expiry of the sessions of ids that exist to ttl
// from now, with PEXPIRE, pipelined in batches of a thousand.
func (b *Broker) TouchSessions(ctx context.Context, ids []string, ttl time.Duration) error {
	ttl = max(ttl, time.Millisecond)
	for len(ids) > 0 {
		n := min(len(ids), touchBatch)
		pipe := b.client.Pipeline()
		for _, id := range ids[:n] {
			pipe.PExpire(ctx, b.sessionKey(id), ttl)
		}
		if _, err := bounded(ctx, func() ([]goredis.Cmder, error) { return pipe.Exec(ctx) }); err != nil {
			return b.fail("touch sessions", err)
		}
		ids = ids[n:]
	}
	return nil
}

// TakeSession returns the record of id and deletes it, with GETDEL: of
// callers on any number of nodes, one gets it.
func (b *Broker) TakeSession(ctx context.Context, id string) ([]byte, error) {
	rec, err := bounded(ctx, func() ([]byte, error) { return b.client.GetDel(ctx, b.sessionKey(id)).Bytes() })
	if errors.Is(err, goredis.Nil) {
		return nil, rpcws.ErrNoSession
	}
	if err != nil {
		return nil, b.fail("take session", err)
	}
	return rec, nil
}
