// Command fanout measures publishing across replicas: one publisher, one
// topic, 1,000 WebSocket connections spread over three replicas that share
// a broker (one replica for the in-process broker), all over 127.0.0.1 in
// one process. For each broker it reports events delivered per second and
// the latency from Publish to the client's OnEvent (median and 99th
// percentile).
//
//	go run . [-conns 1000] [-messages 500] [-window 32] [-reps 3] [-brokers memory,redis,nats] [-markdown]
//
// For the rate, the publisher keeps at most -window messages in flight
// (published and not yet received by every connection), so that queues
// stay within the handler's per-connection budget and the figure is the
// sustained rate, not a burst. The latency is measured apart, one message
// at a time (a fifth of -messages), so that it is the fan-out's own and not
// time spent in a queue behind the others. Redis and NATS run as child processes (redis-server and
// nats-server on free ports); a broker whose server is not installed is
// left out, and said so. Repetitions run the brokers in a rotated order.
//
// It is a module of its own, beside bench/peers, so that the engines'
// clients enter neither the library's go.mod nor bench/peers's.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"net/rpc"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	natsbroker "github.com/rpcws/rpcws/broker/nats"
	redisbroker "github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
)

// config is the settings of a run.
type config struct {
	Conns    int
	Messages int
	Window   int
	Reps     int
	Missed   int // events missed per client in the recovery cells
	Brokers  []string
	History  []bool // the modes measured: without history, with it
	Timeout  time.Duration
}

// result is one cell: one broker, one repetition.
type result struct {
	Broker      string
	History     bool // published with history (HandlerOptions.History)
	Replicas    int
	Conns       int
	Messages    int
	PerSecond   float64 // events delivered per second
	P50, P99    time.Duration
	Dropped     uint64 // events a connection could not take
	Elapsed     time.Duration
	Unavailable string // why the broker was left out
}

func main() {
	var cfg config
	brokers := flag.String("brokers", "memory,redis,nats", "brokers to measure: memory, redis, nats")
	modes := flag.String("history", "off,on", "publish without history (off), with it (on), or both")
	recover := flag.Bool("recovery", true, "also measure recovery: -conns clients reconnecting at once after a replica restart")
	flag.IntVar(&cfg.Missed, "missed", 100, "events each client misses while its replica restarts, in the recovery cells")
	flag.IntVar(&cfg.Conns, "conns", 1000, "connections, spread over the replicas, all members of the topic")
	flag.IntVar(&cfg.Messages, "messages", 500, "messages published per cell")
	flag.IntVar(&cfg.Window, "window", 32, "most messages in flight")
	flag.IntVar(&cfg.Reps, "reps", 3, "repetitions of every cell")
	flag.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "time limit of one cell")
	markdown := flag.Bool("markdown", false, "print the report as a Markdown table")
	flag.Parse()
	cfg.Brokers = strings.Split(*brokers, ",")
	for _, m := range strings.Split(*modes, ",") {
		cfg.History = append(cfg.History, m == "on")
	}
	if cfg.Conns < 1 || cfg.Messages < 1 || cfg.Window < 1 || cfg.Reps < 1 {
		fmt.Fprintln(os.Stderr, "fanout: -conns, -messages, -window and -reps must be positive")
		os.Exit(2)
	}
	raiseFileLimit(uint64(2*cfg.Conns + 256))
	results, err := run(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
	report(os.Stdout, cfg, results, *markdown)
	if *recover {
		rs, err := runRecovery(cfg, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fanout: recovery:", err)
			os.Exit(1)
		}
		reportRecovery(os.Stdout, cfg, rs, *markdown)
	}
}

// engineSet is the engines of a run, started once: redis-server and
// nats-server as child processes, or why one is left out.
type engineSet struct {
	servers map[string]*engines.Server
	missing map[string]string
}

// startEngines starts the engines that cfg.Brokers name.
func startEngines(cfg config) (*engineSet, error) {
	es := &engineSet{servers: map[string]*engines.Server{}, missing: map[string]string{}}
	for _, b := range cfg.Brokers {
		switch b {
		case "memory":
		case engines.Redis, engines.NATS:
			s, err := engines.Start(b)
			if errors.Is(err, engines.ErrNotInstalled) {
				es.missing[b] = err.Error()
				continue
			}
			if err != nil {
				es.stop()
				return nil, err
			}
			es.servers[b] = s
		default:
			es.stop()
			return nil, fmt.Errorf("unknown broker %q", b)
		}
	}
	return es, nil
}

func (es *engineSet) stop() {
	for _, s := range es.servers {
		s.Stop()
	}
}

// url returns the address of broker b's engine, "" for memory.
func (es *engineSet) url(b string) string {
	if s := es.servers[b]; s != nil {
		return s.URL()
	}
	return ""
}

// run measures every broker in every mode cfg.Reps times, in rotated
// order, and returns the median cell of each.
func run(cfg config, progress *os.File) ([]result, error) {
	es, err := startEngines(cfg)
	if err != nil {
		return nil, err
	}
	defer es.stop()
	type key struct {
		broker  string
		history bool
	}
	var keys []key
	for _, b := range cfg.Brokers {
		for _, h := range cfg.History {
			keys = append(keys, key{b, h})
		}
	}
	samples := map[key][]result{}
	for rep := range cfg.Reps {
		for i := range keys {
			k := keys[(i+rep)%len(keys)]
			if es.missing[k.broker] != "" {
				continue
			}
			r, err := cell(cfg, k.broker, es.url(k.broker), k.history)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.broker, err)
			}
			fmt.Fprintf(progress, "fanout: rep %d %-6s history %-5v %d replicas: %.0f events/s, p50 %v, p99 %v\n",
				rep+1, k.broker, k.history, r.Replicas, r.PerSecond, r.P50, r.P99)
			samples[k] = append(samples[k], r)
		}
	}
	var out []result
	for _, k := range keys {
		if why := es.missing[k.broker]; why != "" {
			out = append(out, result{Broker: k.broker, History: k.history, Unavailable: why})
			continue
		}
		out = append(out, median(samples[k]))
	}
	return out, nil
}

// median returns the cell of median rate, with the median latencies.
func median(rs []result) result {
	slices.SortFunc(rs, func(x, y result) int { return cmp.Compare(x.PerSecond, y.PerSecond) })
	med := rs[len(rs)/2]
	p99s := make([]time.Duration, len(rs))
	p50s := make([]time.Duration, len(rs))
	for i, r := range rs {
		p99s[i], p50s[i] = r.P99, r.P50
	}
	slices.Sort(p99s)
	slices.Sort(p50s)
	med.P99, med.P50 = p99s[len(p99s)/2], p50s[len(p50s)/2]
	return med
}

// newBroker returns a replica's broker: on the bus for memory.
func newBroker(kind, url string, bus *rpcws.MemoryBus) (rpcws.Broker, error) {
	switch kind {
	case engines.Redis:
		return redisbroker.New(url)
	case engines.NATS:
		return natsbroker.New(url)
	}
	return bus.NewBroker(), nil
}

// Room is the service of the replicas: joining the topic.
type Room struct{}

// JoinArgs is Room.Join's argument.
type JoinArgs struct{ rpcws.Caller }

// Join makes the caller a member of the topic.
func (Room) Join(a *JoinArgs, ok *bool) error {
	*ok = true
	return a.Peer().Join(context.Background(), topic)
}

const topic = "fanout"

// stamp is the data of a published event.
type stamp struct {
	Phase int   `json:"p"`
	N     int   `json:"n"`
	Sent  int64 `json:"t"` // UnixNano of the Publish call
}

// cell runs one broker once: it starts the replicas, connects the clients,
// publishes, and tears everything down.
func cell(cfg config, kind, url string, history bool) (result, error) {
	replicas := 3
	if kind == "memory" {
		replicas = 1
	}
	handlers, servers, stop, err := startReplicas(cfg, kind, url, history, replicas)
	defer stop()
	if err != nil {
		return result{}, err
	}

	var current atomic.Pointer[phase] // the phase under way
	onEvent := counter(&current, cfg.Conns)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	var clients []*rpcws.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range cfg.Conns {
		u := "ws" + strings.TrimPrefix(servers[i%replicas].URL, "http")
		c, err := rpcws.Dial(ctx, u, &rpcws.DialOptions{OnEvent: onEvent, PingInterval: -1})
		if err != nil {
			return result{}, err
		}
		clients = append(clients, c)
		if err := c.CallContext(ctx, "Room.Join", &JoinArgs{}, new(bool)); err != nil {
			return result{}, err
		}
	}

	// Throughput: cfg.Window messages in flight. Latency: one at a time,
	// so that it is the fan-out's own and not time spent in a queue.
	rate, err := publish(ctx, handlers[0], &current, 1, cfg.Messages, cfg.Window, cfg.Conns)
	if err != nil {
		return result{}, err
	}
	lat, err := publish(ctx, handlers[0], &current, 2, max(cfg.Messages/5, 1), 1, cfg.Conns)
	if err != nil {
		return result{}, err
	}
	var dropped uint64
	for _, h := range handlers {
		dropped += h.BrokerStats().Dropped
	}
	slices.Sort(lat.latencies)
	pct := func(p float64) time.Duration { return lat.latencies[int(p*float64(len(lat.latencies)-1))] }
	return result{
		Broker: kind, History: history, Replicas: replicas, Conns: cfg.Conns, Messages: cfg.Messages,
		PerSecond: float64(len(rate.latencies)) / rate.elapsed.Seconds(),
		P50:       pct(0.50), P99: pct(0.99), Dropped: dropped, Elapsed: rate.elapsed,
	}, nil
}

// counter returns the clients' OnEvent: it counts each event of the phase
// under way, and notes its latency.
func counter(current *atomic.Pointer[phase], conns int) func(string, json.RawMessage) {
	return func(typ string, data json.RawMessage) {
		now := time.Now()
		var s stamp
		ph := current.Load()
		if typ != "m" || ph == nil || json.Unmarshal(data, &s) != nil || s.Phase != ph.id || s.N < 0 || s.N >= len(ph.received) {
			return
		}
		ph.mu.Lock()
		ph.latencies = append(ph.latencies, now.Sub(time.Unix(0, s.Sent)))
		ph.mu.Unlock()
		if int(ph.received[s.N].Add(1)) == conns {
			ph.complete <- s.N
		}
	}
}

// startReplicas starts n replicas of the Room service on broker kind;
// stop shuts down those started, whatever the error.
func startReplicas(cfg config, kind, url string, history bool, n int) (handlers []*rpcws.Handler, servers []*httptest.Server, stop func(), err error) {
	var bus rpcws.MemoryBus
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i, h := range handlers {
			h.Shutdown(ctx)
			servers[i].Close()
		}
	}
	for range n {
		b, err := newBroker(kind, url, &bus)
		if err != nil {
			return handlers, servers, stop, err
		}
		srv := rpc.NewServer()
		if err := srv.Register(Room{}); err != nil {
			return handlers, servers, stop, err
		}
		opts := &rpcws.HandlerOptions{Broker: b, MaxConns: cfg.Conns + 16, MaxConnsPerClient: -1}
		if history {
			opts.History = &rpcws.HistoryOptions{}
		}
		h := rpcws.NewHandler(srv, opts)
		handlers = append(handlers, h)
		servers = append(servers, httptest.NewServer(h))
	}
	return handlers, servers, stop, nil
}

// phase is one round of publishing and what the clients received of it.
type phase struct {
	id        int
	received  []atomic.Int32 // connections that have message n
	complete  chan int       // n, once every connection has it
	mu        sync.Mutex     // guards latencies
	latencies []time.Duration
	elapsed   time.Duration
}

// publish publishes messages to the topic with at most window in flight,
// and returns once every connection has every one.
func publish(ctx context.Context, h *rpcws.Handler, current *atomic.Pointer[phase], id, messages, window, conns int) (*phase, error) {
	ph := &phase{id: id, received: make([]atomic.Int32, messages), complete: make(chan int, messages),
		latencies: make([]time.Duration, 0, messages*conns)}
	current.Store(ph)
	start := time.Now()
	inFlight, done := 0, 0
	for n := 0; done < messages; {
		for inFlight < window && n < messages {
			if err := h.Publish(ctx, rpcws.Topic(topic), "m", stamp{Phase: id, N: n, Sent: time.Now().UnixNano()}); err != nil {
				return nil, err
			}
			n++
			inFlight++
		}
		select {
		case <-ph.complete:
			inFlight--
			done++
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d messages reached every connection in time", done, messages)
		}
	}
	ph.elapsed = time.Since(start)
	ph.mu.Lock()
	defer ph.mu.Unlock()
	return ph, nil
}

func report(w *os.File, cfg config, rs []result, markdown bool) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	mode := func(r result) string {
		if r.History {
			return "with history"
		}
		return "without"
	}
	if markdown {
		fmt.Fprintf(w, "| broker | history | replicas | connections | events delivered/s | p50 ms | p99 ms |\n|---|---|--:|--:|--:|--:|--:|\n")
		for _, r := range rs {
			if r.Unavailable != "" {
				fmt.Fprintf(w, "| %s | %s | – | – | not measured: %s | | |\n", r.Broker, mode(r), r.Unavailable)
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %s | %s |\n", r.Broker, mode(r), r.Replicas, r.Conns, r.PerSecond, ms(r.P50), ms(r.P99))
		}
		fmt.Fprintf(w, "\nMedians of %d repetitions; rate: %d messages, at most %d in flight; latency: %d messages, one at a time.\n", cfg.Reps, cfg.Messages, cfg.Window, max(cfg.Messages/5, 1))
		return
	}
	fmt.Fprintf(w, "%-8s %-12s %8s %11s %18s %8s %8s %8s\n", "broker", "history", "replicas", "connections", "events/s", "p50 ms", "p99 ms", "dropped")
	for _, r := range rs {
		if r.Unavailable != "" {
			fmt.Fprintf(w, "%-8s %-12s not measured: %s\n", r.Broker, mode(r), r.Unavailable)
			continue
		}
		fmt.Fprintf(w, "%-8s %-12s %8d %11d %18.0f %8s %8s %8d\n", r.Broker, mode(r), r.Replicas, r.Conns, r.PerSecond, ms(r.P50), ms(r.P99), r.Dropped)
	}
}

// raiseFileLimit lifts the open-file limit towards n: both ends of every
// connection are in this process.
func raiseFileLimit(n uint64) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil || lim.Cur >= n {
		return
	}
	lim.Cur = min(n, lim.Max)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
