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
// optimistically: the event is published with the position after the
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
	want := limits{int64(max(p.Size, 1)), max(p.TTL, positionKeep) + ageMargin}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		st, err := b.st.historyStreamFor(ctx, want, true)
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
		if l.pos.Epoch, err = b.epochOf(ctx, subject); err != nil {
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

// epochOf returns the epoch of subject for numbering that starts now: the
// one in epochBucket, made there when absent (create if absent: every
// node gets the same). Why an epoch there can never be used again after
// the offsets it numbered were lost: it is written once, never refreshed,
// and expires positionKeep after it was made; an event that used it was
// published after it was made, and stays in the stream for positionKeep +
// ageMargin at least (the stream's MaxAge; its events leave otherwise only
// when newer ones of their subject replace them, and MaxMsgs and MaxBytes
// are unlimited). So while a topic has an event in the stream its epoch
// comes from that event, and once it has none its old epoch is gone from
// the bucket too, and a new one is made. A server that lost its store
// lost both.
func (b *Broker) epochOf(ctx context.Context, subject string) (string, error) {
	key := keyOf(subject)
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
// after. It reads the topic's last event, then walks back from it, one
// direct get by stream sequence per event (the prev header), at most
// min(limit, the topic's size) of them, stopping at the first event that
// is past its TTL, trimmed, or at or below after.
func (b *Broker) History(ctx context.Context, subject string, after uint64, limit int) (rpcws.Position, []rpcws.HistoryEvent, error) {
	hs, err := historySubject(subject)
	if err != nil {
		return rpcws.Position{}, nil, err
	}
	if b.isClosed() {
		return rpcws.Position{}, nil, rpcws.ErrBrokerClosed
	}
	for try := 0; ; try++ {
		pos, evs, err := b.readHistory(ctx, subject, hs, after, limit)
		if try == 0 && missing(err) {
			b.st.forgetStream()
			continue
		}
		if err != nil {
			return rpcws.Position{}, nil, fmt.Errorf("nats broker: history of %s: %w", subject, err)
		}
		return pos, evs, nil
	}
}

func (b *Broker) readHistory(ctx context.Context, subject, hs string, after uint64, limit int) (rpcws.Position, []rpcws.HistoryEvent, error) {
	st, err := b.st.historyStreamFor(ctx, limits{}, false)
	if errors.Is(err, errNoStream) {
		epoch, err := b.epochOf(ctx, subject)
		return rpcws.Position{Epoch: epoch}, nil, err
	}
	if err != nil {
		return rpcws.Position{}, nil, err
	}
	m, err := st.GetLastMsgForSubject(ctx, hs)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		epoch, err := b.epochOf(ctx, subject)
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
	evs, err := walkBack(ctx, st, m, pos, want, time.Now())
	return pos, evs, err
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

// expected reports whether m is the event at epoch and off, of the same
// subject, and still within its TTL at now.
func expected(m *jetstream.RawStreamMsg, epoch string, off uint64, now time.Time) bool {
	pos, err := positionOf(m.Header)
	if err != nil || pos.Epoch != epoch || pos.Offset != off {
		return false
	}
	ttl, _ := strconv.ParseInt(m.Header.Get(hdrTTL), 10, 64)
	return ttl <= 0 || now.Sub(m.Time) < time.Duration(ttl)*time.Millisecond
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

// republished returns the position of a message that the history stream
// republished, and notes it as its topic's last event; ok is false for
// any other message.
func (s *store) republished(m *gonats.Msg) (pos rpcws.Position, ok bool) {
	if len(m.Header) == 0 || m.Header.Get(jetstream.StreamHeader) != historyStream {
		return rpcws.Position{}, false
	}
	pos, err := positionOf(m.Header)
	if err != nil {
		return rpcws.Position{}, false
	}
	if seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64); err == nil {
		s.noteLast(m.Header.Get(jetstream.SubjectHeader), last{seq, pos})
	}
	return pos, true
}
