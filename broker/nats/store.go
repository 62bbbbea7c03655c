package nats

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of what the broker keeps in JetStream (see the package doc).
const (
	historyStream  = "RPCWS_HISTORY"  // the events of every topic with history
	historyPrefix  = "rpcwsh."        // a topic's events are stored on historyPrefix + subject
	epochBucket    = "rpcws_epochs"   // the epoch of a topic whose numbering has not started
	sessionBucket  = "rpcws_sessions" // sessions, by a hash of their id
	presenceBucket = "rpcws_presence" // presence entries, by topic and peer
)

// positionKeep is how long a topic's position outlives its last publish
// at least (rpcws.HistoryPolicy.TTL); epochBucket keeps an epoch that
// long. The history stream keeps messages ageMargin longer, so that an
// epoch always expires from epochBucket before the last event that used
// it leaves the stream (see epochOf).
const (
	positionKeep = 24 * time.Hour
	ageMargin    = time.Hour
)

// store is the broker's JetStream state: the history stream and the
// key-value buckets, looked up or made on first use and kept until the
// connection to NATS drops (the server may come back without them).
type store struct {
	js  jetstream.JetStream
	sem chan struct{} // one lookup or creation at a time, waited for under the caller's context

	mu      sync.Mutex // guards what follows
	stream  jetstream.Stream
	limits  limits
	buckets map[string]kvState
	lasts   map[string]last // the last event of recently published subjects, at most maxLasts
}

type kvState struct {
	kv  jetstream.KeyValue
	age time.Duration
}

// limits are the history stream's: events kept per subject, and for how
// long. They only grow: replicas asking for different policies get the
// largest, and each topic's own policy is applied when reading.
type limits struct {
	size int64
	age  time.Duration
}

func (l limits) covers(o limits) bool { return l.size >= o.size && l.age >= o.age }

func newStore(nc *gonats.Conn) (*store, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(flushTimeout))
	if err != nil {
		return nil, fmt.Errorf("nats broker: %w", err)
	}
	return &store{js: js, sem: make(chan struct{}, 1), buckets: make(map[string]kvState), lasts: make(map[string]last)}, nil
}

// reset forgets what the store knew of the server: after a reconnection
// the server may have lost its streams (a restart without persistence).
func (s *store) reset() {
	s.mu.Lock()
	s.stream, s.limits = nil, limits{}
	clear(s.buckets)
	clear(s.lasts)
	s.mu.Unlock()
}

// lock takes s.sem, or fails when ctx ends first.
func (s *store) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *store) unlock() { <-s.sem }

// missing reports whether err says that a stream or bucket is not there
// (nothing answers on its subjects): the server lost it, or it was never
// made.
func missing(err error) bool {
	return errors.Is(err, errRemade) || errors.Is(err, gonats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
}

// errCodeSubjectOverlap is the code nats-server 2.9 answers a stream's
// creation with when another node's creation of the same stream is under
// way ("subjects overlap with an existing stream").
const errCodeSubjectOverlap jetstream.ErrorCode = 10065

// madeMeanwhile reports whether err says that another node made the
// stream or bucket while this one tried to: it is there to be opened.
func madeMeanwhile(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeSubjectOverlap || apiErr.ErrorCode == jetstream.JSErrCodeStreamNameInUse)
}

// historyStreamFor returns the history stream with limits covering want,
// made or raised when needed.
func (s *store) historyStreamFor(ctx context.Context, want limits) (jetstream.Stream, error) {
	s.mu.Lock()
	st, have := s.stream, s.limits
	s.mu.Unlock()
	if st != nil && have.covers(want) {
		return st, nil
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	st, err := s.js.Stream(ctx, historyStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = s.js.CreateStream(ctx, historyConfig(want))
		if madeMeanwhile(err) {
			st, err = s.js.Stream(ctx, historyStream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats broker: history stream: %w", err)
	}
	if err := awaitReady(ctx, func(ctx context.Context) error {
		_, err := st.GetLastMsgForSubject(ctx, historyPrefix+"rpcws.probe")
		return err
	}); err != nil {
		return nil, fmt.Errorf("nats broker: history stream: %w", err)
	}
	cfg := st.CachedInfo().Config
	have = limits{cfg.MaxMsgsPerSubject, cfg.MaxAge}
	if !have.covers(want) {
		cfg.MaxMsgsPerSubject, cfg.MaxAge = max(have.size, want.size), max(have.age, want.age)
		if st, err = s.js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("nats broker: history stream: raising its limits: %w", err)
		}
		have = limits{cfg.MaxMsgsPerSubject, cfg.MaxAge}
	}
	s.mu.Lock()
	s.stream, s.limits = st, have
	s.mu.Unlock()
	return st, nil
}

// historyConfig is the history stream's configuration: events stored on
// historyPrefix + subject and republished, once stored, to subject itself
// with their headers (see orderer for their order), where the topic's
// subscribers receive them; direct gets for reading.
func historyConfig(l limits) jetstream.StreamConfig {
	src := historyPrefix + "*.>"
	return jetstream.StreamConfig{
		Name:              historyStream,
		Description:       "rpcws: the recent events of each topic, and its position",
		Subjects:          []string{src},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: l.size,
		MaxAge:            l.age,
		Storage:           jetstream.FileStorage,
		Replicas:          1,
		AllowDirect:       true,
		RePublish:         &jetstream.RePublish{Source: src, Destination: "{{wildcard(1)}}.>"},
	}
}

// awaitReady waits until a stream answers probe, a direct get: NATS
// lists a stream that another node is making before it answers direct
// gets, and drops those it receives meanwhile.
func awaitReady(ctx context.Context, probe func(context.Context) error) error {
	for {
		try, cancel := context.WithTimeout(ctx, probeTimeout)
		err := probe(try)
		cancel()
		switch {
		case err == nil || errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		}
	}
}

// bounded returns ctx, with a deadline of flushTimeout from now when it
// has none: every call of the broker waits on NATS for a bounded time.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, flushTimeout)
}

// probeTimeout bounds one probe of awaitReady.
const probeTimeout = 200 * time.Millisecond

// generation names one life of the history stream, by the time it was
// made: a stream deleted and made again has a new one, and so do the
// epochs of its topics (see epochOf).
func generation(st jetstream.Stream) string {
	return strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 36)
}

// forgetStream drops the history stream: the server lost it, or a read
// failed and the stream should be looked up again.
func (s *store) forgetStream() {
	s.mu.Lock()
	s.stream, s.limits = nil, limits{}
	clear(s.lasts)
	s.mu.Unlock()
}

// errNoBucket is bucket's answer for a bucket that does not exist and
// was not to be made.
var errNoBucket = errors.New("nats broker: no such bucket")

// bucket returns the key-value bucket name whose MaxAge is age or more
// (0: unlimited), made or raised when needed; with age 0 (a read), an
// absent bucket is errNoBucket.
func (s *store) bucket(ctx context.Context, name string, age time.Duration) (jetstream.KeyValue, error) {
	s.mu.Lock()
	b, ok := s.buckets[name]
	s.mu.Unlock()
	if ok && covers(b.age, age) {
		return b.kv, nil
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	kv, err := s.js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if age <= 0 {
			return nil, errNoBucket
		}
		kv, err = s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, TTL: age, Storage: jetstream.FileStorage})
		if errors.Is(err, jetstream.ErrBucketExists) || madeMeanwhile(err) {
			kv, err = s.js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats broker: bucket %s: %w", name, err)
	}
	if err := awaitReady(ctx, func(ctx context.Context) error {
		_, err := kv.Get(ctx, "probe")
		return err
	}); err != nil {
		return nil, fmt.Errorf("nats broker: bucket %s: %w", name, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("nats broker: bucket %s: %w", name, err)
	}
	have := st.TTL()
	if !covers(have, age) {
		cfg := st.Config()
		cfg.TTL = age
		if kv, err = s.js.UpdateKeyValue(ctx, cfg); err != nil {
			return nil, fmt.Errorf("nats broker: bucket %s: raising its max age: %w", name, err)
		}
		have = age
	}
	s.mu.Lock()
	s.buckets[name] = kvState{kv, have}
	s.mu.Unlock()
	return kv, nil
}

// covers reports whether a bucket's MaxAge have (0: unlimited) keeps
// values for age.
func covers(have, age time.Duration) bool { return have <= 0 || have >= age }

// forgetBucket drops bucket name, which the server no longer has.
func (s *store) forgetBucket(name string) {
	s.mu.Lock()
	delete(s.buckets, name)
	s.mu.Unlock()
}

// withBucket runs fn on bucket name, looked up again and run once more
// when the server lost it.
func (s *store) withBucket(ctx context.Context, name string, age time.Duration, fn func(jetstream.KeyValue) error) error {
	for try := 0; ; try++ {
		kv, err := s.bucket(ctx, name, age)
		if err != nil {
			return err
		}
		err = fn(kv)
		if try == 0 && missing(err) {
			s.forgetBucket(name)
			continue
		}
		return err
	}
}

// keyOf encodes s as one valid key token: base64url, no padding.
func keyOf(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// expiring is a value kept with its own ttl: buckets have one MaxAge (NATS
// 2.9 has no per-key TTL), the longest asked, and the ttl of each value is
// checked when it is read, against the time the server stored it.
func expiring(ttl time.Duration, data []byte) []byte {
	b := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint64(b, uint64(max(ttl, 0)))
	return append(b, data...)
}

// unexpired returns the data of an expiring value stored at created, and
// whether it is still alive at now.
func unexpired(v []byte, created, now time.Time) ([]byte, bool) {
	if len(v) < 8 {
		return nil, false
	}
	ttl := time.Duration(binary.BigEndian.Uint64(v))
	return v[8:], ttl <= 0 || now.Sub(created) < ttl
}
