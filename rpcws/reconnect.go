package rpcws

import (
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"net/rpc"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/eventq"
)

// Defaults of [ReconnectOptions].
const (
	// DefaultReconnectDelay is the longest wait before the first attempt
	// to reconnect; each failed attempt doubles it.
	DefaultReconnectDelay = 200 * time.Millisecond

	// DefaultReconnectMaxDelay caps the wait between attempts.
	DefaultReconnectMaxDelay = 20 * time.Second
)

// ReconnectOptions makes a [Client] reconnect when its connection drops
// (see [DialOptions].Reconnect). The zero value means all defaults. For
// every duration, zero means the default and a negative value means none.
//
// A client that reconnects redials after a wait that doubles with each
// failed attempt, from Delay up to MaxDelay: each wait is drawn at random
// between half and all of its bound (jitter), so that the clients of a
// replica that restarts do not all come back at once. Calls pending at the
// drop fail at once with Disconnected and are never sent again (the server
// may have run them); calls made while the client reconnects wait for the
// new connection, within their deadline or [DialOptions].Timeout. Each
// attempt (the dial and the recovery) is bounded by DialOptions.Timeout
// too, and dials as Dial did: with the same [DialOptions].WebSocket (its
// headers, cookies and HTTP client).
//
// When the server keeps history (PROTOCOL.md, "Sessions and recovery"),
// the client recovers its session as the first request of the new
// connection, before any of the application's: the connection is back in
// its topics, and the events it missed reach OnEvent in order, then the
// live ones, each once. Only what could not be recovered is told, by an
// "rpcws.resync" event naming its topics; the library's other frames
// (rpcws.session, rpcws.joined, rpcws.left) never reach OnEvent. With a
// server that keeps none, the client reconnects with no topics: watch
// OnState and join again.
type ReconnectOptions struct {
	// Delay bounds the wait before the first attempt. Zero means
	// [DefaultReconnectDelay] (200 ms); negative means the first attempt
	// is made at once, and later ones back off from the default.
	Delay time.Duration

	// MaxDelay caps the wait between attempts. Zero means
	// [DefaultReconnectMaxDelay] (20 s); negative means no cap.
	MaxDelay time.Duration

	// MaxAttempts is how many attempts follow a drop before the client
	// gives up: it then ends, as after Close, and its calls fail with
	// Disconnected. Zero or negative means no limit.
	MaxAttempts int

	// OnState, if set, is told each change of the client's state after its
	// first connection: [StateReconnecting] at a drop, [StateConnected] once a
	// new connection (and its recovery) is ready, [StateClosed] at the end.
	// It is called on the client's reconnecting goroutine, one call at a
	// time, in order: it must not block, nor call Close.
	OnState func(ConnState)
}

// ConnState is where a [Client]'s connection stands: see [Client.State].
type ConnState int32

// The states of a [Client].
const (
	// StateConnected: calls go out at once.
	StateConnected ConnState = iota + 1

	// StateReconnecting: the connection dropped and the client is dialling
	// again; calls wait for the new connection (see [ReconnectOptions]).
	StateReconnecting

	// StateClosed: Close was called, the connection ended without
	// Reconnect, or reconnecting gave up. Calls fail with Disconnected.
	StateClosed
)

func (s ConnState) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "ConnState(" + strconv.Itoa(int(s)) + ")"
}

// reconnector is a [Client] with Reconnect: a succession of connections,
// one at a time, and the goroutine (run) that replaces one that drops.
type reconnector struct {
	url      string
	opts     DialOptions // with TypeName and OnEvent left to the reconnector
	typeName func(method string) string
	timeout  time.Duration // the calls' and each attempt's; <= 0: none
	policy   backoff
	onState  func(ConnState)
	events   eventq.Queue // OnEvent's, fed by each connection in turn

	ctx      context.Context // ends at Close
	cancel   context.CancelFunc
	loopDone chan struct{} // run has returned
	done     chan struct{} // closed once the client has ended: Close, or given up
	endErr   *codec.Error  // what calls get once done; set before done and the last link's next close

	state atomic.Int32 // a ConnState
	cur   atomic.Pointer[link]

	mu      sync.Mutex  // guards retired, and cur's changes against Stats
	retired ClientStats // of the connections before cur's
}

// link is one connection of a reconnector.
type link struct {
	cc   *codec.ClientCodec
	tr   *tracker      // its session and topic positions
	next chan struct{} // closed once the client has moved past it: to a new connection, or to its end
}

// dialReconnecting dials the first connection of a client with Reconnect
// and starts the goroutine that replaces it when it drops.
func dialReconnecting(ctx context.Context, url string, o *DialOptions) (*reconnector, error) {
	ro := *o.Reconnect
	r := &reconnector{
		url:      url,
		opts:     *o,
		typeName: libraryTypes(o.TypeName),
		timeout:  orDefault(o.Timeout, DefaultCallTimeout),
		policy:   backoff{delay: ro.Delay, maxDelay: orDefault(ro.MaxDelay, DefaultReconnectMaxDelay), attempts: ro.MaxAttempts},
		onState:  ro.OnState,
		loopDone: make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.events.Init(o.OnEvent, o.MaxQueuedEventBytes, r.logf)
	tr := newTracker(snapshot{}, &r.events, r.logf)
	cc, err := r.dial(ctx, tr)
	if err != nil {
		return nil, err
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	l := &link{cc: cc, tr: tr, next: make(chan struct{})}
	r.cur.Store(l)
	r.state.Store(int32(StateConnected))
	go r.run(l)
	return r, nil
}

// dial makes one connection whose events go through tr.
func (r *reconnector) dial(ctx context.Context, tr *tracker) (*codec.ClientCodec, error) {
	return dialCodec(ctx, r.url, &r.opts, &codec.ClientOptions{
		TypeName:     r.typeName,
		Timeout:      r.opts.Timeout,
		OnEventFrame: tr.onEvent,
		Logger:       r.opts.Logger,
	})
}

// libraryTypes wraps a TypeName so that the library's own methods
// (rpcws.recover) keep their names whatever the application's mapping.
func libraryTypes(fn func(string) string) func(string) string {
	if fn == nil {
		fn = codec.TypeName
	}
	return func(method string) string {
		if strings.HasPrefix(method, "rpcws.") {
			return method
		}
		return fn(method)
	}
}

// run replaces the current connection when it drops, until Close or until
// reconnecting gives up.
func (r *reconnector) run(l *link) {
	defer close(r.loopDone)
	for {
		select {
		case <-l.cc.Done():
		case <-r.ctx.Done():
		}
		if r.ctx.Err() != nil { // Close, which closes the connection after
			r.end(l, closedError())
			return
		}
		r.setState(StateReconnecting)
		next, err := r.redial(l.tr.snapshot())
		if next == nil {
			r.end(l, err)
			return
		}
		r.state.Store(int32(StateConnected)) // before any call can see the new connection
		r.mu.Lock()
		r.retired = addStats(r.retired, l.cc.Stats())
		r.cur.Store(next)
		r.mu.Unlock()
		close(l.next)
		r.tell(StateConnected)
		l = next
	}
}

// end ends the client after its last connection, l: calls waiting for a
// new connection, and later ones, get err.
func (r *reconnector) end(l *link, err *codec.Error) {
	l.cc.Close()
	r.endErr = err
	r.setState(StateClosed)
	close(r.done)
	close(l.next)
}

// setState records the client's state and tells OnState.
func (r *reconnector) setState(s ConnState) {
	r.state.Store(int32(s))
	r.tell(s)
}

func (r *reconnector) tell(s ConnState) {
	if r.onState != nil {
		r.onState(s)
	}
}

// redial makes attempts after the policy's waits until one gives a
// connection, with its session recovered from snap. It returns nil and the
// error for calls when the client is closed meanwhile, or when the
// attempts run out.
func (r *reconnector) redial(snap snapshot) (*link, *codec.Error) {
	var err error
	n := 0
	for ; r.policy.attempts <= 0 || n < r.policy.attempts; n++ {
		wait := time.NewTimer(r.policy.wait(n, rand.Float64))
		select {
		case <-wait.C:
		case <-r.ctx.Done():
			wait.Stop()
			return nil, closedError()
		}
		var l *link
		if l, snap, err = r.attempt(snap); l != nil {
			return l, nil
		}
		if r.ctx.Err() != nil {
			return nil, closedError()
		}
		r.logf("reconnecting failed", "attempt", n+1, "error", r.redacted(err))
	}
	return nil, &codec.Error{Code: codec.CodeDisconnected,
		Message: "connection closed; reconnecting gave up after " + strconv.Itoa(n) + " attempts: " + err.Error(), Err: err}
}

// attempt dials once and recovers snap's session on the new connection,
// bounded by the client's timeout. It returns the connection, or nil, the
// error and what to recover next time: snap, with the positions of the
// events that this attempt received before it failed.
func (r *reconnector) attempt(snap snapshot) (*link, snapshot, error) {
	ctx, cancel := r.ctx, context.CancelFunc(func() {})
	if r.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
	}
	defer cancel()
	tr := newTracker(snap, &r.events, r.logf)
	cc, err := r.dial(ctx, tr)
	if err != nil {
		return nil, snap, err
	}
	if snap.session != "" {
		if err := r.recoverSession(ctx, cc, tr, snap); err != nil {
			cc.Close()
			r.mu.Lock()
			r.retired = addStats(r.retired, cc.Stats())
			r.mu.Unlock()
			return nil, tr.snapshotAs(snap.session), err
		}
	}
	return &link{cc: cc, tr: tr, next: make(chan struct{})}, snapshot{}, nil
}

// recoverSession sends rpcws.recover as the first request of the
// connection cc and takes in its reply. An error means the connection failed (it went,
// or did not answer in time): the attempt failed. A server that refuses the
// request has lost the session's topics: the application is told with an
// rpcws.resync naming them, as a server would.
func (r *reconnector) recoverSession(ctx context.Context, cc *codec.ClientCodec, tr *tracker, snap snapshot) error {
	var reply RecoverReply
	args := RecoverArgs{Session: snap.session, Topics: snap.topics}
	if args.Topics == nil {
		args.Topics = map[string]Position{} // {}, not null
	}
	err := cc.Call(ctx, RecoverMethod, &args, &reply)
	switch codec.ErrorCode(err) {
	case "":
		tr.recovered(&reply)
		return nil
	case codec.CodeDisconnected, codec.CodeTimeout, codec.CodeCanceled:
		return err
	}
	r.logf("the server did not recover the session", "error", err)
	tr.notRecovered()
	r.resync(snap)
	return nil
}

// resync tells the application that the events of snap's topics may have
// been lost.
func (r *reconnector) resync(snap snapshot) {
	if len(snap.topics) == 0 {
		return
	}
	data, _ := json.Marshal(struct {
		Topics []string `json:"topics"`
	}{slices.Sorted(maps.Keys(snap.topics))})
	r.events.Add(ResyncEvent, data)
}

// live returns the current connection, or nil while there is none.
func (r *reconnector) live() *codec.ClientCodec {
	if cc := r.cur.Load().cc; !isDone(cc.Done()) {
		return cc
	}
	return nil
}

// connection waits for a live connection for a call of method, within
// ctx's deadline or, without one, the client's timeout: the context it
// returns is the call's, and cancel its to release.
func (r *reconnector) connection(ctx context.Context, method string) (*codec.ClientCodec, context.Context, context.CancelFunc, error) {
	l := r.cur.Load()
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok && r.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
	}
	for isDone(l.cc.Done()) {
		select {
		case <-l.next:
			if isDone(r.done) {
				cancel()
				return nil, nil, nil, r.endErr
			}
			l = r.cur.Load()
		case <-ctx.Done():
			cancel()
			return nil, nil, nil, waitError(ctx, r.typeName(method))
		}
	}
	return l.cc, ctx, cancel, nil
}

func (r *reconnector) call(ctx context.Context, method string, args, reply any) error {
	if cc := r.live(); cc != nil {
		return cc.Call(ctx, method, args, reply)
	}
	cc, ctx, cancel, err := r.connection(ctx, method)
	if err != nil {
		return err
	}
	defer cancel()
	return cc.Call(ctx, method, args, reply)
}

func (r *reconnector) goCall(method string, args, reply any, done chan *rpc.Call) *rpc.Call {
	if done == nil {
		done = make(chan *rpc.Call, 10)
	} else if cap(done) == 0 {
		panic("rpcws: done channel is unbuffered")
	}
	if cc := r.live(); cc != nil {
		return cc.Go(method, args, reply, done)
	}
	rc := &rpc.Call{ServiceMethod: method, Args: args, Reply: reply, Done: done}
	go func() { // bounded by the client's timeout, and by Close
		rc.Error = r.call(context.Background(), method, args, reply)
		select {
		case done <- rc:
		default:
			r.logf("dropped the outcome of a call: its done channel is full", "method", method)
		}
	}()
	return rc
}

func (r *reconnector) notify(ctx context.Context, method string, args any) error {
	if cc := r.live(); cc != nil {
		return cc.Notify(ctx, method, args)
	}
	cc, ctx, cancel, err := r.connection(ctx, method)
	if err != nil {
		return err
	}
	defer cancel()
	return cc.Notify(ctx, method, args)
}

// close ends the client at once, whatever it is doing: a pending call
// fails, a wait between attempts or an attempt ends. It returns the error
// of closing a live connection.
func (r *reconnector) close() error {
	r.cancel()
	r.events.Stop()
	cc := r.cur.Load().cc
	wasLive := !isDone(cc.Done())
	err := cc.Close()
	<-r.loopDone
	if !wasLive {
		return nil
	}
	return err
}

func (r *reconnector) stats() ClientStats {
	r.mu.Lock()
	s := addStats(r.retired, r.cur.Load().cc.Stats())
	r.mu.Unlock()
	s.DroppedEvents += r.events.Dropped()
	return s
}

// redacted is err's text for the log, without the URL's query, which may
// carry a token.
func (r *reconnector) redacted(err error) string {
	msg := err.Error()
	if _, query, ok := strings.Cut(r.url, "?"); ok && query != "" {
		msg = strings.ReplaceAll(msg, query, "…")
	}
	return msg
}

func (r *reconnector) logf(msg string, args ...any) {
	if r.opts.Logger != nil {
		r.opts.Logger.Warn("rpcws: "+msg, args...)
	}
}

func addStats(a, b ClientStats) ClientStats {
	return ClientStats{
		LateReplies:   a.LateReplies + b.LateReplies,
		DroppedEvents: a.DroppedEvents + b.DroppedEvents,
		BadFrames:     a.BadFrames + b.BadFrames,
		BadReplies:    a.BadReplies + b.BadReplies,
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// closedError is what calls get after Close: the codec's own words.
func closedError() *codec.Error {
	return &codec.Error{Code: codec.CodeDisconnected, Message: "the client was closed", Err: rpc.ErrShutdown}
}

// waitError is the error of a call of type typ whose context ended while
// it waited for a connection: the codec's Timeout or Canceled.
func waitError(ctx context.Context, typ string) *codec.Error {
	if ctx.Err() == context.DeadlineExceeded {
		return &codec.Error{Code: codec.CodeTimeout, Message: "timeout: " + typ, Err: context.Cause(ctx)}
	}
	return &codec.Error{Code: codec.CodeCanceled, Message: "call " + typ + ": " + ctx.Err().Error(), Err: context.Cause(ctx)}
}

// backoff is the waiting policy of a reconnector.
type backoff struct {
	delay    time.Duration // bound of the first wait; < 0: none, then DefaultReconnectDelay's doubling
	maxDelay time.Duration // < 0: no cap
	attempts int           // <= 0: no limit
}

// wait is the wait before attempt n (0 for the first): random, from rnd,
// between half and all of a bound that doubles with each attempt.
func (b backoff) wait(n int, rnd func() float64) time.Duration {
	bound := b.delay
	switch {
	case bound < 0 && n == 0:
		return 0
	case bound < 0:
		bound, n = DefaultReconnectDelay, n-1
	case bound == 0:
		bound = DefaultReconnectDelay
	}
	limit := b.maxDelay
	if limit < 0 {
		limit = 1 << 62
	}
	for ; n > 0 && bound < limit; n-- {
		bound *= 2
	}
	bound = min(bound, limit)
	return bound/2 + time.Duration(rnd()*float64(bound/2))
}
