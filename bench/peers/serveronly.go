package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// The server-only cells (-server-only) measure what the server alone pays:
// each peer's server runs in a child process of its own, pinned to CPU 0,
// and this process, pinned to CPU 1, loads it with raw frames (see
// rawConn). The server's CPU time comes from /proc/<pid>/stat.

// serverOnlyDuration is the measured time of a server-only cell unless
// -duration says otherwise: 200 ticks of the 10 ms clock of /proc at one
// CPU's worth of server time.
const serverOnlyDuration = 2 * time.Second

// soReport is the report of -server-only.
type soReport struct {
	Machine    machine     `json:"machine"`
	Pinning    string      `json:"pinning"`
	Duration   string      `json:"duration"`
	Warmup     string      `json:"warmup"`
	Reps       int         `json:"reps"`
	OldServer  string      `json:"old_server,omitempty"`
	MaxCalls   int         `json:"max_calls_per_cell"`
	Payload    int         `json:"payload_bytes"`
	LoadBefore float64     `json:"load1_before"`
	LoadAfter  float64     `json:"load1_after"`
	Rows       []soRow     `json:"rows"`
	Ratios     []soRatio   `json:"rpcws_ratios"`
	Errors     []cellError `json:"errors,omitempty"`
}

// soRow is one peer in one cell: the medians over the repetitions.
type soRow struct {
	soCell
	Peer       string     `json:"peer"`
	CPUPerCall float64    `json:"server_cpu_us_per_call"`
	CPUCV      float64    `json:"server_cpu_cv"` // across the repetitions
	Rate       float64    `json:"calls_per_sec"`
	P50        float64    `json:"p50_us"`
	P99        float64    `json:"p99_us"`
	Samples    []soResult `json:"samples"`
}

// soRatio is rpcws's figures (or the old server's) in one cell divided by
// a reference's.
type soRatio struct {
	Cell       string  `json:"cell"`
	Peer       string  `json:"peer"`
	Versus     string  `json:"versus"`
	CPUPerCall float64 `json:"server_cpu_per_call"`
	Rate       float64 `json:"calls_per_sec"`
	P50        float64 `json:"p50"`
	P99        float64 `json:"p99"`
}

// oldLabel is the label of the rpcws server of -old-server.
const oldLabel = "rpcws-old"

// runServerOnly runs the server-only cells and prints the report; it
// returns the exit status.
func runServerOnly(cfg config, format string, out, progress io.Writer) int {
	targets, err := soTargets(cfg)
	if err != nil {
		fmt.Fprintln(progress, "peers:", err)
		return 2
	}
	raiseFileLimit(8192)
	pin := pinSelf()
	r := &soReport{Machine: describeMachine(), Duration: cfg.Duration.String(), Warmup: cfg.Warmup.String(),
		Reps: cfg.Reps, OldServer: cfg.OldServer, MaxCalls: cfg.MaxCalls, Payload: cfg.Payload}
	r.Pinning = "server on CPU 0, load generator on CPU 1 (taskset)"
	if pin != nil {
		r.Pinning = "none (" + pin.Error() + "): server and load generator share the CPUs"
		fmt.Fprintln(progress, "peers: unpinned:", pin)
	}
	o := soOptions{Warmup: cfg.Warmup, Duration: cfg.Duration, MaxCalls: cfg.MaxCalls, Payload: cfg.Payload, Pin: pin == nil}
	r.LoadBefore = loadAverage()
	samples := soMeasure(r, targets, cfg.Reps, o, progress)
	r.LoadAfter = loadAverage()
	var names []string
	for _, t := range targets {
		names = append(names, t.Label)
	}
	r.Rows, r.Ratios = soTabulate(names, samples)
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = writeServerOnly(out, r)
	}
	if err != nil {
		fmt.Fprintln(progress, "peers:", err)
		return 1
	}
	return 0
}

// soTargets returns the servers that cfg asks for.
func soTargets(cfg config) ([]soTarget, error) {
	var targets []soTarget
	for _, n := range cfg.Peers {
		if serverOnlyPeers[n] != nil {
			targets = append(targets, soTarget{Label: n, Peer: n})
		}
	}
	if len(targets) == 0 {
		return nil, errors.New("-server-only runs rpcws, classic-xnet and ceiling-coder; -peers names none of them")
	}
	if cfg.OldServer != "" {
		if _, err := os.Stat(cfg.OldServer); err != nil {
			return nil, fmt.Errorf("-old-server: %w", err)
		}
		targets = append(targets, soTarget{Label: oldLabel, Peer: "rpcws", Exe: cfg.OldServer})
	}
	return targets, nil
}

// soMeasure runs every cell against every target reps times, the targets
// in a rotated order at each repetition, and returns the results by cell
// and label; a cell that fails goes to r.Errors.
func soMeasure(r *soReport, targets []soTarget, reps int, o soOptions, progress io.Writer) map[[2]string][]soResult {
	samples := map[[2]string][]soResult{}
	for rep := range reps {
		for _, c := range serverOnlyCells {
			k := rep % len(targets)
			for _, t := range slices.Concat(targets[k:], targets[:k]) {
				res, err := measureCell(t, c, o)
				fmt.Fprintf(progress, "rep %d/%d  %-14s %-14s ", rep+1, reps, c.Key, t.Label)
				if err != nil {
					fmt.Fprintf(progress, "error: %v\n", err)
					r.Errors = append(r.Errors, cellError{Rep: rep + 1, Workload: c.Key, Peer: t.Label, Err: err.Error()})
					continue
				}
				fmt.Fprintf(progress, "%d calls  cpu %.1f µs/call  %.0f calls/s  p50 %.0f µs  p99 %.0f µs  max %.0f µs\n",
					res.Calls, res.cpuPerCall(), res.rate(), us(res.P50), us(res.P99), us(res.Max))
				key := [2]string{c.Key, t.Label}
				samples[key] = append(samples[key], res)
			}
		}
	}
	return samples
}

// pinSelf pins every thread of this process to CPU 1, for the load
// generator, and runs its goroutines on one thread at a time; it returns
// why it could not.
func pinSelf() error {
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("%d CPU", runtime.NumCPU())
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return fmt.Errorf("no taskset (util-linux)")
	}
	cmd := exec.Command("taskset", "-a", "-p", "-c", "1", strconv.Itoa(os.Getpid()))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("taskset: %v: %s", err, b)
	}
	runtime.GOMAXPROCS(1)
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// soTabulate takes the medians of the samples and rpcws's ratios.
func soTabulate(names []string, samples map[[2]string][]soResult) ([]soRow, []soRatio) {
	var rows []soRow
	byKey := map[[2]string]soRow{}
	for _, c := range serverOnlyCells {
		for _, n := range names {
			s := samples[[2]string{c.Key, n}]
			if len(s) == 0 {
				continue
			}
			stat := func(f func(soResult) float64) summary {
				v := make([]float64, len(s))
				for i, r := range s {
					v[i] = f(r)
				}
				return summarize(v)
			}
			med := func(f func(soResult) float64) float64 { return stat(f).Median }
			row := soRow{soCell: c, Peer: n, Samples: s, CPUCV: stat(soResult.cpuPerCall).CV,
				CPUPerCall: med(soResult.cpuPerCall), Rate: med(soResult.rate),
				P50: med(func(r soResult) float64 { return us(r.P50) }),
				P99: med(func(r soResult) float64 { return us(r.P99) })}
			rows = append(rows, row)
			byKey[[2]string{c.Key, n}] = row
		}
	}
	var ratios []soRatio
	for _, c := range serverOnlyCells {
		for _, q := range [][2]string{{"rpcws", classicPeer}, {"rpcws", ceilingPeer}, {oldLabel, classicPeer}, {oldLabel, ceilingPeer}, {"rpcws", oldLabel}} {
			mine, ok1 := byKey[[2]string{c.Key, q[0]}]
			o, ok2 := byKey[[2]string{c.Key, q[1]}]
			if ok1 && ok2 {
				ratios = append(ratios, soRatio{Cell: c.Key, Peer: q[0], Versus: q[1], CPUPerCall: mine.CPUPerCall / o.CPUPerCall,
					Rate: mine.Rate / o.Rate, P50: mine.P50 / o.P50, P99: mine.P99 / o.P99})
			}
		}
	}
	return rows, ratios
}

// writeServerOnly prints the report as plain tables.
func writeServerOnly(w io.Writer, r *soReport) error {
	ew := &errWriter{w: w}
	ew.printf("Server-only cells: %s\n", r.Pinning)
	ew.printf("median of %d reps of %s each (warm-up %s, at most %d calls); 1 request outstanding per connection; echo payload %d B\n",
		r.Reps, r.Duration, r.Warmup, r.MaxCalls, r.Payload)
	ew.printf("load average %.2f before, %.2f after; %s\n\n", r.LoadBefore, r.LoadAfter, orUnknown(r.Machine.CPU))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cell\tpeer\tserver CPU µs/call\tCV\tcalls/s\tp50 µs\tp99 µs\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.0f%%\t%.0f\t%.0f\t%.0f\t\n", row.Key, row.Peer, row.CPUPerCall, 100*row.CPUCV, row.Rate, row.P50, row.P99)
	}
	tw.Flush()
	if len(r.Ratios) > 0 {
		ew.printf("\nratios of medians (CPU and latency: lower is better; calls/s: higher is better)\n\n")
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "cell\tpeer\tversus\tserver CPU/call\tcalls/s\tp50\tp99\t")
		for _, q := range r.Ratios {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f×\t%.2f×\t%.2f×\t%.2f×\t\n", q.Cell, q.Peer, q.Versus, q.CPUPerCall, q.Rate, q.P50, q.P99)
		}
		tw.Flush()
	}
	for _, e := range r.Errors {
		ew.printf("error: rep %d %s %s: %s\n", e.Rep, e.Workload, e.Peer, e.Err)
	}
	return ew.err
}
