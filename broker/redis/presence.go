package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/rpcws"
)

// A topic's presence is two keys: a hash of peer → info, and a sorted set
// of peer → expiry, in milliseconds of Redis's clock (TIME), so that the
// replicas' clocks do not matter. AddPresence writes both in one script
// and extends both keys' life to the TTL, so that a topic whose replicas
// all died leaves nothing behind; Presence returns the entries whose
// expiry has not passed and deletes up to presenceSweep of those that
// have.

// Bounds of presence. Presence returns at most maxPresence entries of a
// topic (those whose expiry comes first); one call of a script adds at
// most presenceBatch entries; one Presence deletes at most presenceSweep
// expired entries.
const (
	maxPresence   = 10_000
	presenceBatch = 500
	presenceSweep = 1000
)

var addPresenceScript = goredis.NewScript(`
local t = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local exp = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000) + ttl)
for i = 1, #KEYS, 2 do
  redis.call('HSET', KEYS[i], ARGV[i + 1], ARGV[i + 2])
  redis.call('ZADD', KEYS[i + 1], exp, ARGV[i + 1])
  for j = i, i + 1 do
    if redis.call('PTTL', KEYS[j]) < ttl then
      redis.call('PEXPIRE', KEYS[j], ttl)
    end
  end
end
return 1
`)

var presenceScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, ARGV[2])
if #dead > 0 then
  redis.call('ZREM', KEYS[2], unpack(dead))
  redis.call('HDEL', KEYS[1], unpack(dead))
end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, ARGV[1])
local out = {}
for i = 1, #live, 500 do
  local peers = {unpack(live, i, math.min(i + 499, #live))}
  local info = redis.call('HMGET', KEYS[1], unpack(peers))
  for j, p in ipairs(peers) do
    if info[j] then
      out[#out + 1] = p
      out[#out + 1] = info[j]
    end
  end
end
return out
`)

var _ rpcws.PresenceBroker = (*Broker)(nil)

// presenceKeys returns the keys of subject's presence: the hash of infos
// and the sorted set of expiries, in one slot of a cluster.
func (b *Broker) presenceKeys(subject string) (info, expiry string) {
	return b.prefix + "p:{" + subject + "}:info", b.prefix + "p:{" + subject + "}:exp"
}

// AddPresence records entries, or refreshes them, to expire after ttl (at
// least a millisecond), by a script per batch of 500.
func (b *Broker) AddPresence(ctx context.Context, ttl time.Duration, entries ...rpcws.PresenceEntry) error {
	for len(entries) > 0 {
		n := min(len(entries), presenceBatch)
		keys := make([]string, 0, 2*n)
		args := make([]any, 1, 1+2*n)
		args[0] = max(ttl.Milliseconds(), 1)
		for _, e := range entries[:n] {
			info, exp := b.presenceKeys(e.Topic)
			keys = append(keys, info, exp)
			args = append(args, e.Peer, e.Info)
		}
		_, err := bounded(ctx, func() (any, error) { return addPresenceScript.Run(ctx, b.client, keys, args...).Result() })
		if err != nil {
			return b.fail("add presence", err)
		}
		entries = entries[n:]
	}
	return nil
}

// RemovePresence deletes entries, pipelined in batches of a thousand.
func (b *Broker) RemovePresence(ctx context.Context, entries ...rpcws.PresenceEntry) error {
	for len(entries) > 0 {
		n := min(len(entries), 2*presenceBatch)
		pipe := b.client.Pipeline()
		for _, e := range entries[:n] {
			info, exp := b.presenceKeys(e.Topic)
			pipe.ZRem(ctx, exp, e.Peer)
			pipe.HDel(ctx, info, e.Peer)
		}
		if _, err := bounded(ctx, func() ([]goredis.Cmder, error) { return pipe.Exec(ctx) }); err != nil {
			return b.fail("remove presence", err)
		}
		entries = entries[n:]
	}
	return nil
}

// Presence returns the entries of subject that have not expired, at most
// 10,000 (those whose expiry comes first), and deletes up to 1,000 of those
// that have.
func (b *Broker) Presence(ctx context.Context, subject string) ([]rpcws.PresenceEntry, error) {
	info, exp := b.presenceKeys(subject)
	v, err := bounded(ctx, func() ([]string, error) {
		return presenceScript.Run(ctx, b.client, []string{info, exp}, maxPresence, presenceSweep).StringSlice()
	})
	if err != nil {
		return nil, b.fail("presence", err)
	}
	if len(v)%2 != 0 {
		return nil, errors.New("redis broker: presence: unexpected reply")
	}
	out := make([]rpcws.PresenceEntry, 0, len(v)/2)
	for i := 0; i < len(v); i += 2 {
		out = append(out, rpcws.PresenceEntry{Topic: subject, Peer: v[i], Info: []byte(v[i+1])})
	}
	return out, nil
}
