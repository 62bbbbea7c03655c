package main

// The fanout workload: one event pushed to many connections, over and over,
// by rpcws's Handler.Broadcast and, as its ceiling, by a loop that writes
// the same bytes to coder/websocket connections by hand.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/rpcws"
)

const (
	// tickType is the type of the fanout workload's event.
	tickType = "bench.tick"
	// tickFrameLen is the length of its frame on the wire: the whole
	// {"type":...,"data":...} object.
	tickFrameLen = 100
	// fanoutWindow is how many broadcasts may be on their way at once: the
	// next is published as soon as one of them has reached every connection,
	// so that no connection's queue holds more than this many events.
	fanoutWindow = 4
	// fanoutDialers dial the connections of a fanout cell in parallel.
	fanoutDialers = 4
)

// tick is the event of the fanout workload. Pad fills its frame up to
// tickFrameLen bytes.
type tick struct {
	Seq  int64  `json:"seq"`  // 1, 2, 3... in the order of publication
	Sent int64  `json:"sent"` // when it was published: nanoseconds since the cell began
	Pad  string `json:"pad"`
}

// The fixed parts of a tick's frame, around its two numbers and its pad.
const (
	tickPrefix = `{"type":"` + tickType + `","data":{"seq":`
	tickSent   = `,"sent":`
	tickPad    = `,"pad":"`
	tickSuffix = `"}}`
)

// newTick returns the tick numbered seq, published at sent.
func newTick(seq, sent int64) tick {
	n := len(tickPrefix) + decimalLen(seq) + len(tickSent) + decimalLen(sent) + len(tickPad) + len(tickSuffix)
	pad := "................................................................................................"
	return tick{Seq: seq, Sent: sent, Pad: pad[:min(max(tickFrameLen-n, 0), len(pad))]}
}

// decimalLen returns the number of characters of v in decimal.
func decimalLen(v int64) int {
	var b [20]byte
	return len(strconv.AppendInt(b[:0], v, 10))
}

// appendTick appends the frame of t: the bytes that rpcws's Broadcast
// writes for it, encoded by hand.
func appendTick(b []byte, t tick) []byte {
	b = append(b, tickPrefix...)
	b = strconv.AppendInt(b, t.Seq, 10)
	b = append(b, tickSent...)
	b = strconv.AppendInt(b, t.Sent, 10)
	b = append(b, tickPad...)
	b = append(b, t.Pad...)
	return append(b, tickSuffix...)
}

var errBadTick = errors.New("fanout: not a tick frame")

// parseTick returns the sequence number and publication time of a tick's
// frame.
func parseTick(frame []byte) (seq, sent int64, err error) {
	if len(frame) != tickFrameLen {
		return 0, 0, fmt.Errorf("%w: %d bytes, want %d", errBadTick, len(frame), tickFrameLen)
	}
	rest, ok := bytes.CutPrefix(frame, []byte(tickPrefix))
	if !ok {
		return 0, 0, fmt.Errorf("%w: %q", errBadTick, frame)
	}
	seq, rest, err = cutInt(rest)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: seq: %w", errBadTick, err)
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(tickSent)); !ok {
		return 0, 0, fmt.Errorf("%w: %q", errBadTick, frame)
	}
	sent, _, err = cutInt(rest)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: sent: %w", errBadTick, err)
	}
	return seq, sent, nil
}

// cutInt reads the decimal digits at the start of b.
func cutInt(b []byte) (int64, []byte, error) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	v, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return v, b[i:], err
}

// A fanoutSubject is a peer of the fanout workload: a server that pushes
// events to every connection it holds. Its dial returns a *fanoutClient.
type fanoutSubject interface {
	peer
	// ready returns how many connections the server at addr will push to.
	ready(addr string) int
	// publish sends t to every connection of the server at addr and
	// returns once it is on its way to all of them. One goroutine at a
	// time publishes.
	publish(ctx context.Context, addr string, t tick) error
}

// fanoutSubjects returns the fanout subjects of the selected peers: rpcws
// and the ceiling.
func fanoutSubjects(selected []peer) ([]peer, error) {
	var ps []peer
	for _, p := range selected {
		switch p.name() {
		case subjectPeer:
			ps = append(ps, &rpcwsFanout{servers: map[string]*rpcws.Handler{}})
		case ceilingPeer:
			ps = append(ps, &ceilingFanout{hubs: map[string]*fanoutHub{}})
		}
	}
	return ps, nil
}

// rpcwsFanout is rpcws: a Handler, and its Broadcast. It knows its running
// servers by address.
type rpcwsFanout struct {
	mu      sync.Mutex // guards servers
	servers map[string]*rpcws.Handler
}

func (*rpcwsFanout) name() string  { return rpcwsPeer{}.name() }
func (*rpcwsFanout) about() string { return rpcwsPeer{}.about() }

func (f *rpcwsFanout) start() (string, func(), error) {
	h := rpcws.NewHandler(newRPCServer(), &rpcws.HandlerOptions{MaxConns: -1})
	addr, stop, err := serveHTTP(h)
	if err != nil {
		return "", nil, err
	}
	f.mu.Lock()
	f.servers[addr] = h
	f.mu.Unlock()
	return addr, func() {
		f.mu.Lock()
		delete(f.servers, addr)
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		h.Shutdown(ctx)
		stop()
	}, nil
}

func (f *rpcwsFanout) handler(addr string) *rpcws.Handler {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.servers[addr]
}

func (f *rpcwsFanout) dial(ctx context.Context, addr string) (caller, error) {
	return dialFanout(ctx, addr)
}

func (f *rpcwsFanout) ready(addr string) int { return len(f.handler(addr).Peers()) }

func (f *rpcwsFanout) publish(ctx context.Context, addr string, t tick) error {
	return f.handler(addr).Broadcast(ctx, tickType, t)
}

// ceilingFanout is the ceiling of the fanout workload: a server that encodes
// each event by hand, once, and hands it to every connection's goroutine,
// which writes it on coder/websocket. That is rpcws's design without rpcws,
// so that the ratio is what rpcws's encoding, queues and bookkeeping cost.
// (A loop that writes to every connection in turn from the publishing
// goroutine is the other way to do it by hand; with the receivers in the
// same process, that one goroutine competes with a thousand for 2 cores.)
type ceilingFanout struct {
	mu   sync.Mutex // guards hubs
	hubs map[string]*fanoutHub
}

// fanoutHub is the connections of one ceilingFanout server, each with the
// queue that its writing goroutine empties.
type fanoutHub struct {
	mu     sync.Mutex // guards queues and closed
	queues []chan []byte
	closed bool
	wg     sync.WaitGroup // the writing goroutines
}

// add takes a connection in: a goroutine writes what its queue holds.
func (hub *fanoutHub) add(c *websocket.Conn) {
	q := make(chan []byte, fanoutWindow)
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if hub.closed {
		c.CloseNow()
		return
	}
	hub.queues = append(hub.queues, q)
	hub.wg.Go(func() {
		defer c.CloseNow()
		ctx := context.Background()
		var err error
		for frame := range q {
			if err == nil {
				// After an error, the client misses the events from here on,
				// which fails the cell; the queue is still emptied, so that
				// publish never waits for it.
				err = c.Write(ctx, websocket.MessageText, frame)
			}
		}
	})
}

// close ends every writing goroutine.
func (hub *fanoutHub) close() {
	hub.mu.Lock()
	hub.closed = true
	for _, q := range hub.queues {
		close(q)
	}
	hub.queues = nil
	hub.mu.Unlock()
	hub.wg.Wait()
}

func (*ceilingFanout) name() string { return ceilingPeer }
func (*ceilingFanout) about() string {
	return ceilingWS{}.about()
}

func (f *ceilingFanout) start() (string, func(), error) {
	hub := &fanoutHub{}
	addr, stop, err := serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		// Clients send nothing; CloseRead answers pings and the close
		// handshake.
		c.CloseRead(context.Background())
		hub.add(c)
	}))
	if err != nil {
		return "", nil, err
	}
	f.mu.Lock()
	f.hubs[addr] = hub
	f.mu.Unlock()
	return addr, func() {
		f.mu.Lock()
		delete(f.hubs, addr)
		f.mu.Unlock()
		stop()
		hub.close()
	}, nil
}

func (f *ceilingFanout) hub(addr string) *fanoutHub {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hubs[addr]
}

func (f *ceilingFanout) dial(ctx context.Context, addr string) (caller, error) {
	return dialFanout(ctx, addr)
}

func (f *ceilingFanout) ready(addr string) int {
	hub := f.hub(addr)
	hub.mu.Lock()
	defer hub.mu.Unlock()
	return len(hub.queues)
}

func (f *ceilingFanout) publish(ctx context.Context, addr string, t tick) error {
	hub := f.hub(addr)
	frame := appendTick(make([]byte, 0, tickFrameLen), t) // shared by the queues, never changed
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for _, q := range hub.queues {
		select {
		case q <- frame:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// fanoutClient is one receiving connection of the fanout workload, the same
// for every subject: a coder/websocket connection that reads each frame,
// takes the time, and notes how long the event took from its publication.
// It is a caller only so that its cell can close it.
type fanoutClient struct {
	c       *websocket.Conn
	done    chan struct{} // closed when receive ends
	started atomic.Bool   // receive was started

	mu   sync.Mutex // guards the fields below
	lat  []time.Duration
	got  int   // events received
	last int64 // seq of the last event
}

var errNotCaller = errors.New("fanout: a receiving connection makes no calls")

// dialFanout opens a receiving connection; it reads nothing before start.
func dialFanout(ctx context.Context, addr string) (*fanoutClient, error) {
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	return &fanoutClient{c: c, done: make(chan struct{})}, nil
}

func (*fanoutClient) multiply(int, int) (int, error) { return 0, errNotCaller }
func (*fanoutClient) echo(string) (string, error)    { return "", errNotCaller }

func (fc *fanoutClient) close() error {
	err := fc.c.CloseNow()
	if fc.started.Load() {
		<-fc.done
	}
	return err
}

// start starts receiving events for r.
func (fc *fanoutClient) start(r *fanoutRound) {
	fc.started.Store(true)
	go fc.receive(r)
}

// receive reads events until the connection ends. Each event must be the one
// after the last: none lost, none twice, none out of order.
func (fc *fanoutClient) receive(r *fanoutRound) {
	defer close(fc.done)
	ctx := context.Background()
	buf := make([]byte, 0, 2*tickFrameLen)
	for {
		_, rd, err := fc.c.Reader(ctx)
		if err == nil {
			buf, err = readInto(buf[:0], rd)
		}
		now := time.Since(r.epoch)
		if err != nil {
			r.fail(fmt.Errorf("fanout: receiving connection: %w", err))
			return
		}
		seq, sent, err := parseTick(buf)
		if err != nil {
			r.fail(err)
			return
		}
		fc.mu.Lock()
		if seq != fc.last+1 {
			fc.mu.Unlock()
			r.fail(fmt.Errorf("fanout: event %d came after event %d", seq, fc.last))
			return
		}
		fc.last = seq
		fc.got++
		if seq >= r.measureFrom.Load() {
			fc.lat = append(fc.lat, now-time.Duration(sent))
		}
		fc.mu.Unlock()
		r.received(seq)
	}
}

// fanoutRound is what the receiving connections of a cell share: the clock
// of the publications, and the count of the broadcasts on their way.
type fanoutRound struct {
	epoch       time.Time
	conns       int64
	measureFrom atomic.Int64 // events numbered from here on are measured

	// pending counts the receipts of broadcast seq in pending[seq %
	// fanoutWindow]; the receipt that completes it gives its slot back.
	pending [fanoutWindow]atomic.Int64
	slots   chan struct{} // a broadcast may be published for each

	failed   chan struct{} // closed at the first failure
	failOnce sync.Once
	failErr  error
	closing  atomic.Bool // failures are the cell ending, not errors
}

func newFanoutRound(conns int) *fanoutRound {
	r := &fanoutRound{
		epoch:  time.Now(),
		conns:  int64(conns),
		slots:  make(chan struct{}, fanoutWindow),
		failed: make(chan struct{}),
	}
	r.measureFrom.Store(1 << 62)
	for range fanoutWindow {
		r.slots <- struct{}{}
	}
	return r
}

// received counts one receipt of broadcast seq.
func (r *fanoutRound) received(seq int64) {
	p := &r.pending[seq%fanoutWindow]
	if p.Add(1) == r.conns {
		p.Store(0) // broadcast seq+fanoutWindow cannot be published before the slot is back
		r.slots <- struct{}{}
	}
}

func (r *fanoutRound) fail(err error) {
	if r.closing.Load() {
		return
	}
	r.failOnce.Do(func() {
		r.failErr = err
		close(r.failed)
	})
}

// takeSlot waits until a broadcast may be published.
func (r *fanoutRound) takeSlot() error {
	select {
	case <-r.slots:
		return nil
	case <-r.failed:
		return r.failErr
	}
}

// fanoutResult is what a fanout cell saw.
type fanoutResult struct {
	broadcasts int             // measured broadcasts
	delivered  int             // measured events received, all connections together
	elapsed    time.Duration   // from the first measured publication to the last receipt
	lat        []time.Duration // of every measured receipt, sorted
	got        []int           // events received by each connection, warm-up included
	published  int             // broadcasts published, warm-up included
}

// fanout measures the fanout workload: cfg.Fanout connections, one event
// to all of them at a time, fanoutWindow broadcasts on their way at most.
func (b *bench) fanout(c *cell) (map[string]float64, error) {
	res, err := b.fanoutRun(c)
	if err != nil {
		return nil, err
	}
	return map[string]float64{
		"fanout.rate": rate(res.delivered, res.elapsed),
		"fanout.p50":  float64(percentile(res.lat, 50)) / float64(time.Microsecond),
		"fanout.p99":  float64(percentile(res.lat, 99)) / float64(time.Microsecond),
	}, nil
}

func (b *bench) fanoutRun(c *cell) (fanoutResult, error) {
	var res fanoutResult
	fs, ok := c.p.(fanoutSubject)
	if !ok {
		return res, fmt.Errorf("%s is no fanout subject", c.p.name())
	}
	n := b.cfg.Fanout
	if n < 1 {
		return res, fmt.Errorf("fanout: %d connections", n)
	}
	clients, err := dialAll(c, n)
	if err != nil {
		return res, err
	}
	// The server may take the last connections in after their dial returned.
	for t0 := time.Now(); fs.ready(c.addr) < n; time.Sleep(time.Millisecond) {
		if time.Since(t0) > 10*time.Second {
			return res, fmt.Errorf("fanout: the server holds %d connections of %d after 10 s", fs.ready(c.addr), n)
		}
	}
	r := newFanoutRound(n)
	defer r.closing.Store(true) // before the cell closes the connections
	for _, cl := range clients {
		cl.start(r)
	}

	ctx := context.Background()
	maxBroadcasts := max(b.cfg.MaxCalls/n, 1)
	var seq int64
	// phase publishes for d (at least once), and waits until every
	// broadcast has reached every connection.
	phase := func(d time.Duration) (int, time.Duration, error) {
		start := time.Now()
		deadline := start.Add(d)
		count := 0
		for count == 0 || (count < maxBroadcasts && time.Now().Before(deadline)) {
			if err := r.takeSlot(); err != nil {
				return 0, 0, err
			}
			seq++
			if err := fs.publish(ctx, c.addr, newTick(seq, int64(time.Since(r.epoch)))); err != nil {
				return 0, 0, fmt.Errorf("fanout: publish: %w", err)
			}
			count++
		}
		for range fanoutWindow {
			if err := r.takeSlot(); err != nil {
				return 0, 0, err
			}
		}
		elapsed := time.Since(start)
		for range fanoutWindow {
			r.slots <- struct{}{}
		}
		return count, elapsed, nil
	}
	if _, _, err := phase(b.cfg.Warmup); err != nil {
		return res, fmt.Errorf("warm-up: %w", err)
	}
	r.measureFrom.Store(seq + 1)
	if res.broadcasts, res.elapsed, err = phase(b.cfg.Duration); err != nil {
		return res, err
	}
	res.published = int(seq)
	res.delivered = res.broadcasts * n
	res.lat = make([]time.Duration, 0, res.delivered)
	for _, cl := range clients {
		cl.mu.Lock()
		res.lat = append(res.lat, cl.lat...)
		res.got = append(res.got, cl.got)
		cl.mu.Unlock()
	}
	slices.Sort(res.lat)
	return res, nil
}

// dialAll opens n receiving connections for c, a few at a time.
func dialAll(c *cell, n int) ([]*fanoutClient, error) {
	clients := make([]*fanoutClient, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(fanoutDialers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				cl, err := c.dial()
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(n)) // the others stop too
					return
				}
				clients[i] = cl.(*fanoutClient)
			}
		})
	}
	wg.Wait()
	return clients, firstErr
}

// makeRoomForFanout raises the open-file limit for the fanout workload,
// both ends of whose connections are in this process, or lowers
// cfg.Fanout to what the limit allows, saying so on w.
func makeRoomForFanout(cfg *config, w io.Writer) {
	const spare = 256 // listeners, the other workloads, the runtime
	need := uint64(2*cfg.Fanout + spare)
	if got, _ := raiseFileLimit(need); got < need && got > spare+2 {
		fmt.Fprintf(w, "peers: -fanout %d needs %d open files; the limit of %d allows %d connections\n", cfg.Fanout, need, got, (got-spare)/2)
		cfg.Fanout = int(got-spare) / 2
	}
}

// fanoutMetrics returns the metrics of the fanout workload.
func fanoutMetrics(cfg config) []metric {
	what := fmt.Sprintf("Broadcast of a %d-byte event to %d connections", tickFrameLen, cfg.Fanout)
	return []metric{
		{Key: "fanout.rate", Title: what + ": events delivered", Unit: "events/s", Higher: true},
		{Key: "fanout.p50", Title: what + ": median delivery latency (publication to receipt)", Unit: "µs"},
		{Key: "fanout.p99", Title: what + ": 99th percentile delivery latency", Unit: "µs"},
	}
}
