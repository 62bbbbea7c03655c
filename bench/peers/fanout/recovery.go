package main

// The recovery cells: -conns clients of one replica, in one topic, lose
// their connections when that replica restarts, miss -missed events that
// another replica publishes meanwhile, and reconnect at once to the new
// replica, where each recovers its session and the events it missed
// (PROTOCOL.md, "Sessions and recovery"). The clients speak raw frames, so
// that the figure is the server's and the engine's, not a client library's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
)

// warmEvents are published before the restart, so that every client holds
// a position past the topic's first.
const warmEvents = 10

// recoveryResult is one recovery cell.
type recoveryResult struct {
	Broker      string
	Clients     int
	Missed      int
	P50, Last   time.Duration // from the restart until a client has every event it missed
	EngineCPU   time.Duration // the engine process's CPU meanwhile; 0 for memory
	Recovered   int           // clients whose topic was recovered
	Faults      int           // events missing, repeated or out of order, over every client
	Unavailable string
}

// runRecovery measures the recovery of every broker cfg.Reps times and
// returns the median cell of each (by the time of the last client).
func runRecovery(cfg config, progress *os.File) ([]recoveryResult, error) {
	es, err := startEngines(cfg)
	if err != nil {
		return nil, err
	}
	defer es.stop()
	var out []recoveryResult
	for _, b := range cfg.Brokers {
		if why := es.missing[b]; why != "" {
			out = append(out, recoveryResult{Broker: b, Unavailable: why})
			continue
		}
		var rs []recoveryResult
		for rep := range cfg.Reps {
			r, err := recoveryCell(cfg, b, es.servers[b])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b, err)
			}
			fmt.Fprintf(progress, "fanout: recovery rep %d %-6s: %d clients, %d missed each: last %v, p50 %v, engine CPU %v, %d recovered, %d faults\n",
				rep+1, b, r.Clients, r.Missed, r.Last, r.P50, r.EngineCPU, r.Recovered, r.Faults)
			rs = append(rs, r)
		}
		slices.SortFunc(rs, func(x, y recoveryResult) int { return int(x.Last - y.Last) })
		out = append(out, rs[len(rs)/2])
	}
	return out, nil
}

// replica is one handler serving on a listener of its own.
type replica struct {
	h   *rpcws.Handler
	srv *http.Server
}

// startReplica serves a new handler on broker kind at addr ("" for any
// port) and returns it with the address it listens on.
func startReplica(cfg config, kind, url string, bus *rpcws.MemoryBus, addr string) (*replica, string, error) {
	b, err := newBroker(kind, url, bus)
	if err != nil {
		return nil, "", err
	}
	srv := rpc.NewServer()
	if err := srv.Register(Rejoin{}); err != nil {
		return nil, "", err
	}
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{
		Broker: b, MaxConns: cfg.Conns + 16, MaxConnsPerClient: -1,
		History: &rpcws.HistoryOptions{Size: max(cfg.Missed, rpcws.DefaultHistorySize)},
	})
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		h.Shutdown(context.Background())
		return nil, "", err
	}
	r := &replica{h: h, srv: &http.Server{Handler: h}}
	go r.srv.Serve(ln)
	return r, ln.Addr().String(), nil
}

// stop shuts the replica down: its clients see their connections close.
func (r *replica) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.h.Shutdown(ctx)
	r.srv.Close()
}

// Rejoin is the service of the recovery cells' replicas: joining the
// cell's topic, a new one each cell, so that every cell starts at offset 0
// on an engine that earlier cells used.
type Rejoin struct{}

// RejoinArgs is Rejoin.Join's argument.
type RejoinArgs struct {
	Topic string `json:"topic"`
	rpcws.Caller
}

// Join makes the caller a member of the topic.
func (Rejoin) Join(a *RejoinArgs, ok *bool) error {
	*ok = true
	return a.Peer().Join(context.Background(), a.Topic)
}

// recoveryCell runs one broker's recovery once.
func recoveryCell(cfg config, kind string, engine *engines.Server) (recoveryResult, error) {
	room := "recovery-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	url := ""
	if engine != nil {
		url = engine.URL()
	}
	var bus rpcws.MemoryBus
	a, addr, err := startReplica(cfg, kind, url, &bus, "")
	if err != nil {
		return recoveryResult{}, err
	}
	stopA := sync.OnceFunc(a.stop)
	defer func() { stopA() }()
	b, _, err := startReplica(cfg, kind, url, &bus, "")
	if err != nil {
		return recoveryResult{}, err
	}
	defer b.stop()

	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	p := &progress{n: int64(cfg.Conns), all: make(chan struct{}, 1)}
	p.arm(0) // joined: every client at offset 0
	clients, wait := startClients(ctx, cfg.Conns, "ws://"+addr+"/", room, p)
	defer wait()
	defer cancel()
	if err := p.wait(ctx, "joined the topic"); err != nil {
		return recoveryResult{}, err
	}
	if err := publishN(ctx, b.h, p, room, warmEvents, warmEvents); err != nil {
		return recoveryResult{}, err
	}

	stopA()
	for _, c := range clients {
		c.waitDropped(ctx)
	}
	target := uint64(warmEvents + cfg.Missed)
	p.arm(target)
	for n := range cfg.Missed {
		if err := b.h.Publish(ctx, rpcws.Topic(room), "m", stamp{N: warmEvents + n}); err != nil {
			return recoveryResult{}, err
		}
	}
	cpu0 := engineCPU(engine)
	start := time.Now()
	p.start.Store(start.UnixNano())
	a2, _, err := startReplica(cfg, kind, url, &bus, addr)
	if err != nil {
		return recoveryResult{}, err
	}
	defer a2.stop()
	if err := p.wait(ctx, "recovered every missed event"); err != nil {
		return recoveryResult{}, err
	}
	r := tally(clients)
	r.Broker, r.Clients, r.Missed, r.EngineCPU = kind, cfg.Conns, cfg.Missed, engineCPU(engine)-cpu0
	return r, nil
}

// startClients starts n clients of url in topic; wait waits for their
// goroutines, which end with ctx.
func startClients(ctx context.Context, n int, url, topic string, p *progress) (clients []*rclient, wait func()) {
	var wg sync.WaitGroup
	clients = make([]*rclient, n)
	for i := range clients {
		clients[i] = &rclient{url: url, topic: topic, p: p}
		wg.Add(1)
		go func() { defer wg.Done(); clients[i].run(ctx) }()
	}
	return clients, wg.Wait
}

// tally sums up what the clients recovered, and how long it took them.
func tally(clients []*rclient) recoveryResult {
	var r recoveryResult
	var took []time.Duration
	for _, c := range clients {
		c.mu.Lock()
		took = append(took, c.took)
		r.Faults += c.faults
		if c.recovered {
			r.Recovered++
		}
		c.mu.Unlock()
	}
	slices.Sort(took)
	r.P50, r.Last = took[len(took)/2], took[len(took)-1]
	return r
}

// publishN publishes events numbered from 0 and waits until every client
// is at offset target.
func publishN(ctx context.Context, h *rpcws.Handler, p *progress, room string, n int, target uint64) error {
	p.arm(target)
	for i := range n {
		if err := h.Publish(ctx, rpcws.Topic(room), "m", stamp{N: i}); err != nil {
			return err
		}
	}
	return p.wait(ctx, "received the events before the restart")
}

// progress counts the clients that reached the offset target of the
// phase under way.
type progress struct {
	n       int64
	phase   atomic.Int32
	target  atomic.Uint64
	reached atomic.Int64
	start   atomic.Int64 // UnixNano of the restart; 0 before it
	all     chan struct{}
}

// arm starts a phase with a new target.
func (p *progress) arm(target uint64) {
	p.reached.Store(0)
	p.target.Store(target)
	p.phase.Add(1)
}

func (p *progress) wait(ctx context.Context, what string) error {
	select {
	case <-p.all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d of %d clients %s in time", p.reached.Load(), p.n, what)
	}
}

// rclient is a client that keeps its session and position and recovers
// them when it reconnects.
type rclient struct {
	url   string
	topic string
	p     *progress

	mu         sync.Mutex // guards what follows
	session    string
	pos        rpcws.Position
	faults     int // events missing, repeated or out of order
	recovered  bool
	recovering bool  // a recover request is unanswered
	phase      int32 // the last phase whose target the client reached
	took       time.Duration
	drops      int
	dropped    chan struct{} // closed at each drop; made at each connection
}

// frame is what the client reads of a frame.
type frame struct {
	ID     string          `json:"id"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	Topic  string          `json:"topic"`
	Epoch  string          `json:"epoch"`
	Offset uint64          `json:"offset"`
}

// run connects, and connects again after each drop, until ctx ends.
func (c *rclient) run(ctx context.Context) {
	for ctx.Err() == nil {
		conn := c.dial(ctx)
		if conn == nil {
			return
		}
		c.serve(ctx, conn)
	}
}

// dial connects, retrying with a jittered backoff, and sends the first
// request: recover when the client has a session, join otherwise.
func (c *rclient) dial(ctx context.Context) *websocket.Conn {
	wait := 50 * time.Millisecond
	for {
		conn, _, err := websocket.Dial(ctx, c.url, nil)
		if err == nil {
			conn.SetReadLimit(-1)
			c.mu.Lock()
			c.dropped = make(chan struct{})
			first, _ := c.firstRequest()
			c.recovering = c.session != ""
			c.mu.Unlock()
			if conn.Write(ctx, websocket.MessageText, first) == nil {
				return conn
			}
			conn.CloseNow()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait/2 + rand.N(wait)):
		}
		wait = min(2*wait, time.Second)
	}
}

// firstRequest returns the first frame of a connection; c.mu held.
func (c *rclient) firstRequest() ([]byte, error) {
	if c.session == "" {
		return json.Marshal(map[string]any{"id": "join", "type": "rejoin.join", "data": map[string]string{"topic": c.topic}})
	}
	return json.Marshal(map[string]any{"id": "recover", "type": rpcws.RecoverMethod,
		"data": rpcws.RecoverArgs{Session: c.session, Topics: map[string]rpcws.Position{c.topic: c.pos}}})
}

// serve reads the connection until it drops.
func (c *rclient) serve(ctx context.Context, conn *websocket.Conn) {
	defer func() {
		conn.CloseNow()
		c.mu.Lock()
		c.drops++
		close(c.dropped)
		c.mu.Unlock()
	}()
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var f frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		c.handle(f)
	}
}

// handle takes one frame.
func (c *rclient) handle(f frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f.Type {
	case rpcws.SessionEvent:
		var s rpcws.SessionData
		json.Unmarshal(f.Data, &s)
		c.session = s.ID
	case rpcws.JoinedEvent:
		var j rpcws.JoinedData
		json.Unmarshal(f.Data, &j)
		c.pos = rpcws.Position{Epoch: j.Epoch, Offset: j.Offset}
	case "rejoin.join.response":
		c.check()
	case rpcws.RecoverMethod + ".response":
		var r rpcws.RecoverReply
		json.Unmarshal(f.Data, &r)
		c.recovered = r.Recovered && r.Topics[c.topic].Recovered
		c.recovering = false
		c.check()
	case "m":
		if f.Topic != c.topic {
			return
		}
		if f.Epoch != c.pos.Epoch || f.Offset != c.pos.Offset+1 {
			c.faults++
		}
		if f.Offset > c.pos.Offset || f.Epoch != c.pos.Epoch {
			c.pos = rpcws.Position{Epoch: f.Epoch, Offset: f.Offset}
		}
		c.check()
	}
}

// check counts the client in the phase under way once it is at the
// phase's target with no recovery unanswered; c.mu held.
func (c *rclient) check() {
	ph := c.p.phase.Load()
	if c.phase == ph || c.recovering || c.pos.Offset < c.p.target.Load() {
		return
	}
	c.phase = ph
	if start := c.p.start.Load(); start != 0 {
		c.took = time.Since(time.Unix(0, start))
	}
	if c.p.reached.Add(1) == c.p.n {
		c.p.all <- struct{}{}
	}
}

// waitDropped waits until the client's current connection has dropped.
func (c *rclient) waitDropped(ctx context.Context) {
	c.mu.Lock()
	ch := c.dropped
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// engineCPU returns the CPU time an engine process has used, user and
// system, from /proc; 0 for no engine or where /proc is not there.
func engineCPU(s *engines.Server) time.Duration {
	if s == nil {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.PID()) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: utime is the 12th,
	// stime the 13th, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if errors.Join(err1, err2) != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// reportRecovery prints the recovery cells.
func reportRecovery(w *os.File, cfg config, rs []recoveryResult, markdown bool) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }
	cpu := func(r recoveryResult) string {
		if r.Broker == "memory" {
			return "–"
		}
		return ms(r.EngineCPU)
	}
	if markdown {
		fmt.Fprintf(w, "\n| broker | clients | missed each | last client ms | median ms | engine CPU ms | recovered | faults |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range rs {
			if r.Unavailable != "" {
				fmt.Fprintf(w, "| %s | – | – | not measured: %s | | | | |\n", r.Broker, r.Unavailable)
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %d | %d |\n", r.Broker, r.Clients, r.Missed, ms(r.Last), ms(r.P50), cpu(r), r.Recovered, r.Faults)
		}
		fmt.Fprintf(w, "\nRecovery: the time from the replica's restart until a client has every event it missed; medians of %d repetitions by the last client.\n", cfg.Reps)
		return
	}
	fmt.Fprintf(w, "\n%-8s %8s %8s %15s %10s %14s %10s %7s\n", "broker", "clients", "missed", "last client ms", "median ms", "engine CPU ms", "recovered", "faults")
	for _, r := range rs {
		if r.Unavailable != "" {
			fmt.Fprintf(w, "%-8s not measured: %s\n", r.Broker, r.Unavailable)
			continue
		}
		fmt.Fprintf(w, "%-8s %8d %8d %15s %10s %14s %10d %7d\n", r.Broker, r.Clients, r.Missed, ms(r.Last), ms(r.P50), cpu(r), r.Recovered, r.Faults)
	}
}
