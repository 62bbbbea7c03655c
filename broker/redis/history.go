package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rpcws/rpcws/rpcws"
)

// A topic's history is two keys: its position, a hash of the epoch ("e")
// and the offset of its last event ("o"), and its events, a stream whose
// entry IDs are 0-<offset> with the message in field "m". The offset is
// the entry's ID, so that XADD refuses an offset that does not grow and
// XRANGE reads from an offset with no scan. The position lives at least
// max(TTL, 24h) after the last publish; the stream TTL after it, so that a
// quiet topic keeps its position when its events are gone. One Lua script
// creates the position if missing (and then drops any stream left from an
// older epoch), increments the offset, adds the event, and publishes it,
// so that subscribers, the position and the stream never disagree.

// minPositionTTL is how long a topic's position outlives its last publish,
// at least.
const minPositionTTL = 24 * time.Hour

// historyMagic begins every message published with history: a plain
// message that begins with it is refused by Publish, so the two are never
// confused. The handler's own envelopes begin with byte 1.
const historyMagic = "\x00rpcws.h1\x00"

// maxEpoch is the longest epoch a history message may carry.
const maxEpoch = 64

// publishScript: KEYS position, stream; ARGV a new epoch, size, TTL in ms
// ("0": none), the position's TTL in ms, channel, message, magic. A stream
// that refuses the next offset (it is ahead of the position, or not a
// stream) cannot be trusted: the topic starts a new epoch.
var publishScript = goredis.NewScript(`
local p = redis.call('HMGET', KEYS[1], 'e', 'o')
local e, o = p[1], tonumber(p[2])
if not e or not o then
  e, o = ARGV[1], 0
  redis.call('DEL', KEYS[2])
end
local n = string.format('%d', o + 1)
local r = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '0-' .. n, 'm', ARGV[6])
if type(r) == 'table' and r.err then
  e, n = ARGV[1], '1'
  redis.call('DEL', KEYS[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '0-1', 'm', ARGV[6])
end
redis.call('HSET', KEYS[1], 'e', e, 'o', n)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[3] ~= '0' then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('PUBLISH', ARGV[5], ARGV[7] .. e .. '\0' .. n .. '\0' .. ARGV[6])
return {e, n}
`)

// historyScript: KEYS position, stream; ARGV a new epoch, the first ID to
// read ("": none), limit, the position's least TTL in ms. A stream that
// cannot be read holds no events.
var historyScript = goredis.NewScript(`
local p = redis.call('HMGET', KEYS[1], 'e', 'o')
local e, o = p[1], p[2]
if not e or not o then
  e, o = ARGV[1], '0'
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4], 'GT')
end
local ev = {}
if ARGV[3] ~= '0' and ARGV[2] ~= '' then
  ev = redis.pcall('XREVRANGE', KEYS[2], '0-' .. o, ARGV[2], 'COUNT', ARGV[3])
  if ev.err then
    ev = {}
  end
end
return {e, o, ev}
`)

var _ rpcws.HistoryBroker = (*Broker)(nil)

// historyKeys returns the keys of subject's position and events. The
// subject is a hash tag, so that both are in one slot of a cluster.
func (b *Broker) historyKeys(subject string) []string {
	return []string{b.prefix + "h:{" + subject + "}:pos", b.prefix + "h:{" + subject + "}:ev"}
}

// newEpoch returns a random epoch: 128 bits, in hex.
func newEpoch() string {
	var r [16]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// PublishHistory appends msg to subject's history and publishes it, in one
// script, and returns its position. The topic keeps its last p.Size events
// (at least one) at least (MAXLEN ~ may keep up to a hundred more), each
// for p.TTL (zero: until the position expires).
func (b *Broker) PublishHistory(ctx context.Context, subject string, msg []byte, p rpcws.HistoryPolicy) (rpcws.Position, error) {
	ttl := ms(p.TTL)
	if p.TTL <= 0 {
		ttl = "0"
	}
	v, err := bounded(ctx, func() ([]any, error) {
		return publishScript.Run(ctx, b.client, b.historyKeys(subject),
			newEpoch(), max(p.Size, 1), ttl, ms(max(p.TTL, minPositionTTL)), subject, msg, historyMagic).Slice()
	})
	if err != nil {
		return rpcws.Position{}, b.fail("publish with history", err)
	}
	if len(v) != 2 {
		return rpcws.Position{}, errors.New("redis broker: publish with history: unexpected reply")
	}
	e, _ := v[0].(string)
	n, _ := v[1].(string)
	o, err := strconv.ParseUint(n, 10, 64)
	if e == "" || err != nil || o < 1 {
		return rpcws.Position{}, errors.New("redis broker: publish with history: unexpected reply")
	}
	return rpcws.Position{Epoch: e, Offset: o}, nil
}

// History returns subject's position and its last limit events after
// after that are still kept, oldest first, in one script that reads
// XREVRANGE with COUNT limit. It gives a topic with no position one, and
// extends a position's life to 24h from now when it had less.
func (b *Broker) History(ctx context.Context, subject string, after uint64, limit int) (rpcws.Position, []rpcws.HistoryEvent, error) {
	from := ""
	if after < math.MaxUint64 {
		from = "0-" + strconv.FormatUint(after+1, 10)
	}
	v, err := bounded(ctx, func() ([]any, error) {
		return historyScript.Run(ctx, b.client, b.historyKeys(subject),
			newEpoch(), from, max(limit, 0), ms(minPositionTTL)).Slice()
	})
	if err != nil {
		return rpcws.Position{}, nil, b.fail("history", err)
	}
	return parseHistory(v)
}

// parseHistory reads the reply of historyScript: epoch, offset, and the
// entries of XREVRANGE, newest first.
func parseHistory(v []any) (rpcws.Position, []rpcws.HistoryEvent, error) {
	bad := errors.New("redis broker: history: unexpected reply")
	if len(v) != 3 {
		return rpcws.Position{}, nil, bad
	}
	e, _ := v[0].(string)
	on, _ := v[1].(string)
	o, err := strconv.ParseUint(on, 10, 64)
	entries, ok := v[2].([]any)
	if e == "" || err != nil || !ok {
		return rpcws.Position{}, nil, bad
	}
	pos := rpcws.Position{Epoch: e, Offset: o}
	events := make([]rpcws.HistoryEvent, len(entries))
	for i, x := range entries {
		ev, ok := parseEntry(x)
		if !ok || ev.Offset > o {
			return rpcws.Position{}, nil, bad
		}
		events[len(entries)-1-i] = ev
	}
	return pos, events, nil
}

// parseEntry reads one stream entry: ID 0-<offset>, fields m <msg>.
func parseEntry(x any) (rpcws.HistoryEvent, bool) {
	kv, _ := x.([]any)
	if len(kv) != 2 {
		return rpcws.HistoryEvent{}, false
	}
	id, _ := kv[0].(string)
	fields, _ := kv[1].([]any)
	n, ok := strings.CutPrefix(id, "0-")
	o, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil || len(fields) != 2 || fields[0] != "m" {
		return rpcws.HistoryEvent{}, false
	}
	m, _ := fields[1].(string)
	return rpcws.HistoryEvent{Offset: o, Msg: []byte(m)}, true
}

// ms returns d in whole milliseconds, at least 1, as PEXPIRE takes it.
func ms(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// parseHistoryMessage reads a message published by publishScript: magic,
// epoch, NUL, offset in decimal, NUL, msg. A message that does not begin
// with the magic is plain (ok false, forged false); one that does but is
// malformed is forged.
func parseHistoryMessage(payload []byte) (pos rpcws.Position, msg []byte, ok, forged bool) {
	rest, isHistory := bytes.CutPrefix(payload, []byte(historyMagic))
	if !isHistory {
		return pos, nil, false, false
	}
	epoch, rest, ok1 := bytes.Cut(rest, []byte{0})
	offset, msg, ok2 := bytes.Cut(rest, []byte{0})
	if !ok1 || !ok2 || len(epoch) == 0 || len(epoch) > maxEpoch || len(offset) == 0 || offset[0] == '0' {
		return pos, nil, false, true
	}
	o, err := strconv.ParseUint(string(offset), 10, 64)
	if err != nil {
		return pos, nil, false, true
	}
	return rpcws.Position{Epoch: string(epoch), Offset: o}, msg, true, false
}
