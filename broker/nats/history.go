package nats

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rpcws/rpcws/rpcws"
)

// Headers of a stored event. Epoch and offset are its position; prev is
// the stream sequence of the topic's event before it (0: none), which
// lets a read walk back from the last event; ttl and size are the policy
// it was published with, applied when reading.
const (
	hdrEpoch  = "Rpcws-Epoch"
	hdrOffset = "Rpcws-Offset"
	hdrPrev   = "Rpcws-Prev"
	hdrTTL    = "Rpcws-Ttl"
	hdrSize   = "Rpcws-Size"
)

// maxAttempts bounds the publishes of one PublishHistory that lose the
// race for the topic's next offset to another publisher.
const maxAttempts = 64

// maxLasts bounds the cache of the last event of recently published
// subjects.
const maxLasts = 4096

// ErrContention is the error of PublishHistory when other publishers took
// the topic's next offset maxAttempts times in a row.
var ErrContention = errors.New("nats broker: publish with history: too many concurrent publishers on the topic")

// last is the last stored event of a topic: its stream sequence and
// position.
type last struct {
	seq uint64
	pos rpcws.Position
}

var _ rpcws.HistoryBroker = (*Broker)(nil)

// historySubject is where the events of subject are stored. Subjects
// need two tokens at least (the handler's are rpcws.t.<name>), and may
// not start with the history prefix's token.
func historySubject(subject string) (string, error) {
	if !strings.Contains(subject, ".") || strings.HasPrefix(subject, historyPrefix) {
		return "", fmt.Errorf("nats broker: %q cannot have history: a subject of two tokens or more, not under %s, can", subject, historyPrefix)
	}
	return historyPrefix + subject, nil
}

// PublishHistory stores msg as the topic's next event and returns its
// position; the history stream republishes it to subject, where
// subscribers receive it through ReceiveAt. The offset is taken
// optimistically (one publish per topic at a time on this node, the others
// wait): the event is published with the position after the
// topic's last event and, as a condition the server checks, that event's
// stream sequence (Nats-Expected-Last-Subject-Sequence); when another
// publisher stored one first, the server refuses and PublishHistory reads
// the new last event and tries again (at most maxAttempts times).
func (b *Broker) PublishHistory(ctx context.Context, subject string, msg []byte, p rpcws.HistoryPolicy) (rpcws.Position, error) {
	hs, err := historySubject(subject)
	if err != nil {
		return rpcws.Position{}, err
	}
	if b.isClosed() {
		return rpcws.Position{}, rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	unlock, err := b.topics.lock(ctx, subject)
	if err != nil {
		return rpcws.Position{}, err
	}
	defer unlock()
	want := limits{int64(max(p.Size, 1)), max(p.TTL, positionKeep) + ageMargin}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		st, err := b.st.historyStreamFor(ctx, want)
		if err != nil {
			return rpcws.Position{}, err
		}
		pos, err := b.tryPublish(ctx, st, subject, hs, msg, p)
		switch {
		case err == nil:
			return pos, nil
		case missing(err):
			b.st.forgetStream()
		case isWrongLast(err):
			if err := backoff(ctx, attempt); err != nil {
				return rpcws.Position{}, err
			}
		default:
			return rpcws.Position{}, fmt.Errorf("nats broker: publish with history: %w", err)
		}
	}
	return rpcws.Position{}, ErrContention
}

// tryPublish publishes msg after the topic's last event as it knows it.
func (b *Broker) tryPublish(ctx context.Context, st jetstream.Stream, subject, hs string, msg []byte, p rpcws.HistoryPolicy) (rpcws.Position, error) {
	l, err := b.lastEvent(ctx, st, hs, true)
	if err != nil {
		return rpcws.Position{}, err
	}
	if l.seq == 0 {
		if l.pos.Epoch, err = b.epochOf(ctx, st, subject); err != nil {
			return rpcws.Position{}, err
		}
	}
	pos := rpcws.Position{Epoch: l.pos.Epoch, Offset: l.pos.Offset + 1}
	m := gonats.NewMsg(hs)
	m.Data = msg
	m.Header.Set(hdrEpoch, pos.Epoch)
	m.Header.Set(hdrOffset, strconv.FormatUint(pos.Offset, 10))
	m.Header.Set(hdrPrev, strconv.FormatUint(l.seq, 10))
	m.Header.Set(hdrTTL, strconv.FormatInt(p.TTL.Milliseconds(), 10))
	m.Header.Set(hdrSize, strconv.Itoa(max(p.Size, 1)))
	ack, err := b.st.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(l.seq), jetstream.WithRetryAttempts(0))
	if err != nil {
		if isWrongLast(err) {
			b.st.forgetLast(hs)
		}
		return rpcws.Position{}, err
	}
	b.st.noteLast(hs, last{ack.Sequence, pos})
	return pos, nil
}

// errRemade is the error of epochOf when the history stream was deleted
// and made again since it was looked up: the caller looks it up again.
var errRemade = errors.New("the history stream was made again")

// isWrongLast reports whether err is the server's refusal of a publish
// whose expected last sequence of its subject was not the last.
func isWrongLast(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// backoff waits a little, more after more lost races, so that publishers
// racing for one topic spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return ctx.Err()
	}
	t := time.NewTimer(time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(100*time.Microsecond))))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lastEvent returns the last stored event of the history subject hs (seq
// 0 when there is none): from the cache when cached is true (a publish
// checks it anyway), from the server otherwise.
func (b *Broker) lastEvent(ctx context.Context, st jetstream.Stream, hs string, cached bool) (last, error) {
	if cached {
		if l, ok := b.st.cachedLast(hs); ok {
			return l, nil
		}
	}
	m, err := st.GetLastMsgForSubject(ctx, hs)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return last{}, nil
	}
	if err != nil {
		return last{}, err
	}
	pos, err := positionOf(m.Header)
	if err != nil {
		return last{}, fmt.Errorf("nats broker: the last event of %s: %w", hs, err)
	}
	l := last{m.Sequence, pos}
	b.st.noteLast(hs, l)
	return l, nil
}

// positionOf reads an event's position from its headers.
func positionOf(h gonats.Header) (rpcws.Position, error) {
	epoch := h.Get(hdrEpoch)
	off, err := strconv.ParseUint(h.Get(hdrOffset), 10, 64)
	if epoch == "" || err != nil || off == 0 {
		return rpcws.Position{}, errors.New("no position in its headers")
	}
	return rpcws.Position{Epoch: epoch, Offset: off}, nil
}

// epochOf returns the epoch of subject for numbering that starts now in
// the history stream st: the one in epochBucket under st's generation and
// subject, made there when absent (create if absent: every node gets the
// same). Why an epoch there can never be used again after the offsets it
// numbered were lost: it is written once, never refreshed, and expires
// positionKeep after it was made; an event that used it was published
// after it was made, and stays in the stream for positionKeep + ageMargin
// at least (the stream's MaxAge; its events leave otherwise only when
// newer ones of their subject replace them, and MaxMsgs and MaxBytes are
// unlimited). So while a topic has an event in the stream its epoch comes
// from that event, and once it has none its old epoch is gone from the
// bucket too, and a new one is made. A stream deleted and made again has
// a new generation, so new epochs; a server that lost its store lost the
// bucket too. (Purging a topic's events by hand, short of deleting the
// stream, is the one way to lose them that this cannot see.)
func (b *Broker) epochOf(ctx context.Context, st jetstream.Stream, subject string) (string, error) {
	gen := generation(st)
	if _, err := st.Info(ctx); err != nil { // the generation now, not when it was looked up
		return "", fmt.Errorf("nats broker: epoch of %s: %w", subject, err)
	}
	if generation(st) != gen {
		b.st.forgetStream()
		return "", fmt.Errorf("nats broker: epoch of %s: %w", subject, errRemade)
	}
	key := gen + "." + keyOf(subject)
	var epoch string
	err := b.st.withBucket(ctx, epochBucket, positionKeep, func(kv jetstream.KeyValue) error {
		for range 3 {
			e, err := kv.Get(ctx, key)
			if err == nil {
				epoch = string(e.Value())
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
				return err
			}
			fresh := newEpoch()
			if _, err = kv.Create(ctx, key, []byte(fresh)); err == nil {
				epoch = fresh
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return err
			}
		}
		return errors.New("the epoch bucket keeps changing")
	})
	if err != nil {
		return "", fmt.Errorf("nats broker: epoch of %s: %w", subject, err)
	}
	return epoch, nil
}

// newEpoch returns a random epoch: 16 bytes in base64url.
func newEpoch() string {
	b := make([]byte, 16)
	crand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// History returns the topic's position and its last limit events above
// after, at most the topic's size, that are within their TTL. It reads
// the topic's last event, then up to walkMax events walking back from it,
// one direct get by stream sequence each (the prev header), or more
// through a consumer (readForward).
func (b *Broker) History(ctx context.Context, subject string, after uint64, limit int) (rpcws.Position, []rpcws.HistoryEvent, error) {
	hs, err := historySubject(subject)
	if err != nil {
		return rpcws.Position{}, nil, err
	}
	if b.isClosed() {
		return rpcws.Position{}, nil, rpcws.ErrBrokerClosed
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	for try := 0; ; try++ {
		pos, evs, err := b.readHistory(ctx, subject, hs, after, limit)
		if err != nil {
			// Look the stream up again next time: a direct get from a
			// stream that is gone is not refused but never answered.
			b.st.forgetStream()
		}
		if try == 0 && missing(err) {
			continue
		}
		if err != nil {
			return rpcws.Position{}, nil, fmt.Errorf("nats broker: history of %s: %w", subject, err)
		}
		return pos, evs, nil
	}
}

func (b *Broker) readHistory(ctx context.Context, subject, hs string, after uint64, limit int) (rpcws.Position, []rpcws.HistoryEvent, error) {
	st, err := b.st.historyStreamFor(ctx, limits{1, positionKeep + ageMargin})
	if err != nil {
		return rpcws.Position{}, nil, err
	}
	m, err := st.GetLastMsgForSubject(ctx, hs)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		epoch, err := b.epochOf(ctx, st, subject)
		return rpcws.Position{Epoch: epoch}, nil, err
	}
	if err != nil {
		return rpcws.Position{}, nil, err
	}
	pos, err := positionOf(m.Header)
	if err != nil {
		return rpcws.Position{}, nil, fmt.Errorf("its last event: %w", err)
	}
	if limit <= 0 || pos.Offset <= after {
		return pos, nil, nil
	}
	size, _ := strconv.Atoi(m.Header.Get(hdrSize))
	want := int(min(uint64(min(limit, max(size, 1))), pos.Offset-after))
	if want > walkMax {
		evs, err := readForward(ctx, st, m, pos, want, time.Now())
		return pos, evs, err
	}
	evs, err := walkBack(ctx, st, m, pos, want, time.Now())
	return pos, evs, err
}

// walkMax is the most events a read gets one by one (walkBack); more are
// read at once through a consumer (readForward), which costs about three
// round trips.
const walkMax = 8

// readForward returns, oldest first, up to want events ending with last
// (at pos): through an ephemeral consumer of the topic's history subject,
// which delivers every event of it the stream keeps (at most the largest
// size any node asked) in one batch, deleted once read.
func readForward(ctx context.Context, st jetstream.Stream, last *jetstream.RawStreamMsg, pos rpcws.Position, want int, now time.Time) ([]rpcws.HistoryEvent, error) {
	c, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     last.Subject,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: flushTimeout,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil, err
	}
	defer st.DeleteConsumer(ctx, c.CachedInfo().Name) // or the server does, once inactive
	n := int(min(c.CachedInfo().NumPending, maxRead))
	if n == 0 {
		return nil, nil
	}
	batch, err := c.FetchNoWait(n)
	if err != nil {
		return nil, err
	}
	var evs []rpcws.HistoryEvent
	for {
		select {
		case m, ok := <-batch.Messages():
			if !ok {
				return contiguous(evs, pos, want), batch.Error()
			}
			meta, err := m.Metadata()
			if err != nil || meta.Sequence.Stream > last.Sequence {
				continue // newer than the position read
			}
			if off := atOf(m.Headers(), meta.Timestamp, pos.Epoch, now); off > 0 {
				evs = append(evs, rpcws.HistoryEvent{Offset: off, Msg: m.Data()})
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// maxRead bounds the events readForward reads of one topic.
const maxRead = 1 << 16

// contiguous returns the last want events of evs (ascending offsets) that
// run without a gap up to pos.
func contiguous(evs []rpcws.HistoryEvent, pos rpcws.Position, want int) []rpcws.HistoryEvent {
	i := len(evs)
	for i > 0 && len(evs)-i < want && evs[i-1].Offset == pos.Offset-uint64(len(evs)-i) {
		i--
	}
	return evs[i:]
}

// walkBack returns, oldest first, up to want events ending with m (the
// last, at pos), following their prev headers.
func walkBack(ctx context.Context, st jetstream.Stream, m *jetstream.RawStreamMsg, pos rpcws.Position, want int, now time.Time) ([]rpcws.HistoryEvent, error) {
	evs := make([]rpcws.HistoryEvent, 0, want)
	for off := pos.Offset; len(evs) < want && expected(m, pos.Epoch, off, now); off-- {
		evs = append(evs, rpcws.HistoryEvent{Offset: off, Msg: m.Data})
		prev, err := strconv.ParseUint(m.Header.Get(hdrPrev), 10, 64)
		if err != nil || prev == 0 || len(evs) == want {
			break
		}
		m, err = st.GetMsg(ctx, prev)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // trimmed or expired
		}
		if err != nil {
			return nil, err
		}
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs, nil
}

// expected reports whether m is the event at epoch and off, still within
// its TTL at now.
func expected(m *jetstream.RawStreamMsg, epoch string, off uint64, now time.Time) bool {
	return atOf(m.Header, m.Time, epoch, now) == off
}

// atOf returns the offset of an event with headers h, stored at stored,
// when it is of epoch and still within its TTL at now; 0 otherwise.
func atOf(h gonats.Header, stored time.Time, epoch string, now time.Time) uint64 {
	pos, err := positionOf(h)
	if err != nil || pos.Epoch != epoch {
		return 0
	}
	ttl, _ := strconv.ParseInt(h.Get(hdrTTL), 10, 64)
	if ttl > 0 && now.Sub(stored) >= time.Duration(ttl)*time.Millisecond {
		return 0
	}
	return pos.Offset
}

// noteLast records l as the last event of hs unless a later one is known.
func (s *store) noteLast(hs string, l last) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.lasts[hs]; ok && old.seq >= l.seq {
		return
	}
	if len(s.lasts) >= maxLasts {
		for k := range s.lasts { // drop one at random
			delete(s.lasts, k)
			break
		}
	}
	s.lasts[hs] = l
}

func (s *store) cachedLast(hs string) (last, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lasts[hs]
	return l, ok
}

func (s *store) forgetLast(hs string) {
	s.mu.Lock()
	delete(s.lasts, hs)
	s.mu.Unlock()
}
