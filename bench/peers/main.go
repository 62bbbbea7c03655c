// Command peers measures rpcws against other ways of doing RPC between Go
// programs, over 127.0.0.1.
//
// Every peer serves the same methods (Arith.Multiply and Echo.Echo) and runs
// the same workloads; repetitions run the peers in a rotated order, so that
// drift in the machine's speed falls on all of them alike. The report gives
// each figure's median across repetitions, how much the repetitions
// disagreed (coefficient of variation), and its ratio to two references:
// "the classic way" (net/rpc/jsonrpc over golang.org/x/net/websocket) and
// "the ceiling" (a bare frame echo on coder/websocket, no RPC at all).
//
// Usage:
//
//	go run . [-duration 1s] [-reps 3] [-idle 1000] [-peers a,b] [-json | -markdown]
//	go run . -server-only [-duration 2s] [-reps 3] [-old-server PATH] [-json]
//	go run . -against OLD [-reps 5] [-peers a,b] [-workloads a,b] [-json]
//
// Run with -h for every flag.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// The references of the ratios.
const (
	classicPeer = "classic-xnet"
	ceilingPeer = "ceiling-coder"
)

// allPeers returns every peer, in the order of the report.
func allPeers() []peer {
	return []peer{
		gobTCP{},
		jsonTCP{},
		classicWS{},
		newSourcegraphWS(),
		gethWS{},
		ceilingWS{},
		rpcwsPeer{},
	}
}

// missingPeers names the peers that this build leaves out, and why. A peer
// whose module cannot be fetched is removed from allPeers and go.mod and
// named here, so that every report says what it lacks.
var missingPeers = map[string]string{}

// config is the settings of a run.
type config struct {
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
	Reps     int           `json:"reps"`
	Callers  int           `json:"callers"`
	Payload  int           `json:"payload_bytes"`
	Idle     int           `json:"idle_conns"`
	// IdleLimited says why Idle is less than asked for, if it is.
	IdleLimited string   `json:"idle_limited,omitempty"`
	MaxCalls    int      `json:"max_calls_per_cell"`
	Peers       []string `json:"peers"`
	Workloads   []string `json:"workloads"`

	// Fanout is the connections that the fanout workload broadcasts to.
	Fanout int `json:"fanout_conns"`

	// CPUProfile, if set, is where the run's CPU profile goes.
	CPUProfile string `json:"-"`

	// ServerOnly runs the server-only cells instead of the workloads.
	ServerOnly bool `json:"-"`
	// OldServer is a binary of this command built against other rpcws
	// code, whose rpcws server the server-only cells measure too.
	OldServer string `json:"-"`

	// Against is a binary of this command built against other rpcws
	// code, run alternately with this one (see compare).
	Against string `json:"-"`
}

func main() {
	if name, ok := childPeer(os.Args[1:]); ok {
		os.Exit(serveChild(name))
	}
	cfg, format, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(2)
	}
	if cfg.ServerOnly {
		os.Exit(runServerOnly(cfg, format, os.Stdout, os.Stderr))
	}
	if cfg.Against != "" {
		os.Exit(compare(cfg, format, os.Stdout, os.Stderr))
	}
	if slices.Contains(cfg.Workloads, "idle") {
		// Both ends of every idle connection are in this process.
		const spare = 256 // listeners, the other workloads, the runtime
		need := uint64(2*cfg.Idle + spare)
		if got, _ := raiseFileLimit(need); got < need && got > spare+2 {
			cfg.IdleLimited = fmt.Sprintf("-idle %d asked for %d connections; the open-file limit of %d allows %d", cfg.Idle, cfg.Idle, got, (got-spare)/2)
			cfg.Idle = int(got-spare) / 2
			fmt.Fprintln(os.Stderr, "peers:", cfg.IdleLimited)
		}
	}
	if slices.Contains(cfg.Workloads, "fanout") {
		makeRoomForFanout(&cfg, os.Stderr)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	r := run(cfg, os.Stderr)
	if err := write(os.Stdout, r, format); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// parseFlags reads the command line.
func parseFlags(args []string) (config, string, error) {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	var cfg config
	fs.DurationVar(&cfg.Duration, "duration", time.Second, "measured time of each cell (one workload against one peer; 2s with -server-only)")
	fs.DurationVar(&cfg.Warmup, "warmup", 100*time.Millisecond, "unmeasured calls before each cell")
	fs.IntVar(&cfg.Reps, "reps", 3, "repetitions of every cell; each runs the peers in a rotated order")
	fs.IntVar(&cfg.Callers, "callers", 64, "concurrent callers of the shared, echo and conns workloads")
	fs.IntVar(&cfg.Payload, "payload", 1024, "bytes of the Echo.Echo payload")
	fs.IntVar(&cfg.Idle, "idle", 1000, "connections held open by the idle workload (up to 10000 and more)")
	fs.IntVar(&cfg.Fanout, "fanout", 1000, "connections that each event of the fanout workload goes to")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.IntVar(&cfg.MaxCalls, "max-calls", 2_000_000, "most calls in one cell, whatever the duration")
	peers := fs.String("peers", "", "comma-separated peers to run (default all): "+strings.Join(peerNames(allPeers()), ","))
	wls := fs.String("workloads", "", "comma-separated workloads to run (default all): "+strings.Join(workloadKeys(), ","))
	fs.BoolVar(&cfg.ServerOnly, "server-only", false, "measure the servers of rpcws, classic-xnet and ceiling-coder alone, each in a child process, loaded with raw frames from this one (see README)")
	fs.StringVar(&cfg.OldServer, "old-server", "", "with -server-only, also measure the rpcws server of this binary of the command, built against other rpcws code, as "+oldLabel)
	fs.StringVar(&cfg.Against, "against", "", "run the cells with this binary and with the one at this path (built against other rpcws code), alternately, -reps rounds, and compare their rpcws figures")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	asMarkdown := fs.Bool("markdown", false, "print the report as Markdown")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.ServerOnly && !isSet(fs, "duration") {
		cfg.Duration = serverOnlyDuration
	}
	format := "text"
	switch {
	case *asJSON && *asMarkdown:
		return cfg, "", errors.New("-json and -markdown exclude each other")
	case *asJSON:
		format = "json"
	case *asMarkdown:
		format = "markdown"
	}
	if cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.Reps < 1 || cfg.Callers < 1 || cfg.Payload < 0 || cfg.Idle < 1 || cfg.MaxCalls < 1 || cfg.Fanout < 1 {
		return cfg, "", errors.New("-duration, -reps, -callers, -idle, -fanout and -max-calls must be positive")
	}
	var err error
	if cfg.Peers, err = pick(*peers, peerNames(allPeers())); err != nil {
		return cfg, "", fmt.Errorf("-peers: %w", err)
	}
	if cfg.Workloads, err = pick(*wls, workloadKeys()); err != nil {
		return cfg, "", fmt.Errorf("-workloads: %w", err)
	}
	return cfg, format, nil
}

// pick returns the names listed in list (all of known if list is empty),
// in the order of known.
func pick(list string, known []string) ([]string, error) {
	if list == "" {
		return known, nil
	}
	want := strings.Split(list, ",")
	for _, w := range want {
		if !slices.Contains(known, w) {
			return nil, fmt.Errorf("unknown name %q (known: %s)", w, strings.Join(known, ", "))
		}
	}
	var picked []string
	for _, k := range known {
		if slices.Contains(want, k) {
			picked = append(picked, k)
		}
	}
	return picked, nil
}

// isSet tells whether the command line set the flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func peerNames(ps []peer) []string {
	var names []string
	for _, p := range ps {
		names = append(names, p.name())
	}
	return names
}

func workloadKeys() []string {
	var keys []string
	for _, w := range workloads {
		keys = append(keys, w.key)
	}
	return keys
}
