package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The names of the two binaries of -against in its report.
const (
	againstOld = "old"
	againstNew = "new"
)

// compareRow is one metric of a -against run: the medians, over the
// rounds, of each binary's ratios to classic and to the ceiling, and of
// the new binary's figure divided by the old one's in the same round.
type compareRow struct {
	Metric     string  `json:"metric"`
	Unit       string  `json:"unit"`
	Higher     bool    `json:"higher_is_better"`
	Old        float64 `json:"old"`
	New        float64 `json:"new"`
	OldClassic float64 `json:"old_vs_classic,omitempty"`
	NewClassic float64 `json:"new_vs_classic,omitempty"`
	OldCeiling float64 `json:"old_vs_ceiling,omitempty"`
	NewCeiling float64 `json:"new_vs_ceiling,omitempty"`
	// The medians of each round's new ÷ old: of the figures, and of their
	// ratios to classic and to the ceiling, which the machine's drift
	// between the two runs of a round touches less.
	NewOld        float64 `json:"new_vs_old"`
	NewOldClassic float64 `json:"new_vs_old_classic,omitempty"`
	NewOldCeiling float64 `json:"new_vs_old_ceiling,omitempty"`
	Rounds        int     `json:"rounds"`
}

// compare runs the selected cells with this binary and with cfg.Against
// (a binary of this command built from other rpcws code), alternately, cfg.Reps
// rounds of one repetition each, every run in a child process of its own,
// and reports the rpcws figures of both side by side. Alternating spreads
// the machine's changing load over both binaries alike.
func compare(cfg config, format string, out, progress io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(progress, "peers:", err)
		return 1
	}
	args := childArgs(cfg)
	runs := map[string][]*report{}
	for round := 1; round <= cfg.Reps; round++ {
		order := []string{againstOld, againstNew}
		if round%2 == 0 {
			order[0], order[1] = order[1], order[0]
		}
		for _, which := range order {
			bin := self
			if which == againstOld {
				bin = cfg.Against
			}
			fmt.Fprintf(progress, "round %d/%d: %s\n", round, cfg.Reps, which)
			r, err := runChildReport(bin, args, progress)
			if err != nil {
				fmt.Fprintf(progress, "peers: %s: %v\n", which, err)
				return 1
			}
			runs[which] = append(runs[which], r)
		}
	}
	rows := compareRows(runs[againstOld], runs[againstNew])
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return 1
		}
		return 0
	}
	writeCompare(out, rows, cfg)
	return 0
}

// childArgs returns the flags that make a child run cfg's cells once, as
// JSON: only flags that every binary of this command knows.
func childArgs(cfg config) []string {
	return []string{
		"-json", "-reps", "1",
		"-duration", cfg.Duration.String(), "-warmup", cfg.Warmup.String(),
		"-callers", strconv.Itoa(cfg.Callers), "-payload", strconv.Itoa(cfg.Payload),
		"-idle", strconv.Itoa(cfg.Idle), "-fanout", strconv.Itoa(cfg.Fanout),
		"-max-calls", strconv.Itoa(cfg.MaxCalls),
		"-peers", strings.Join(cfg.Peers, ","), "-workloads", strings.Join(cfg.Workloads, ","),
	}
}

// runChildReport runs bin with args and decodes the report it prints.
func runChildReport(bin string, args []string, progress io.Writer) (*report, error) {
	var stdout bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, progress
	if err := cmd.Run(); err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("its report: %w", err)
	}
	return &r, nil
}

// compareRows pairs the rounds of old and new, metric by metric.
func compareRows(old, new []*report) []compareRow {
	var rows []compareRow
	if len(new) == 0 {
		return nil
	}
	for _, m := range new[0].Metrics {
		row := compareRow{Metric: m.Title, Unit: m.Unit, Higher: m.Higher}
		var o, n, oc, nc, oe, ne, ratio, ratioC, ratioE []float64
		for i := range min(len(old), len(new)) {
			or, ok1 := rpcwsResult(old[i], m.Key)
			nr, ok2 := rpcwsResult(new[i], m.Key)
			if !ok1 || !ok2 {
				continue
			}
			o, n = append(o, or.Median), append(n, nr.Median)
			oc, nc = append(oc, or.VsClassic), append(nc, nr.VsClassic)
			oe, ne = append(oe, or.VsCeiling), append(ne, nr.VsCeiling)
			ratio = appendRatio(ratio, nr.Median, or.Median)
			ratioC = appendRatio(ratioC, nr.VsClassic, or.VsClassic)
			ratioE = appendRatio(ratioE, nr.VsCeiling, or.VsCeiling)
		}
		if len(n) == 0 {
			continue
		}
		row.Rounds = len(n)
		row.Old, row.New = medianOf(o), medianOf(n)
		row.OldClassic, row.NewClassic = medianOf(oc), medianOf(nc)
		row.OldCeiling, row.NewCeiling = medianOf(oe), medianOf(ne)
		row.NewOld, row.NewOldClassic, row.NewOldCeiling = medianOf(ratio), medianOf(ratioC), medianOf(ratioE)
		rows = append(rows, row)
	}
	return rows
}

// rpcwsResult returns rpcws's result for the metric key in r.
func rpcwsResult(r *report, key string) (peerResult, bool) {
	for _, m := range r.Metrics {
		if m.Key != key {
			continue
		}
		for _, res := range m.Results {
			if res.Peer == "rpcws" && res.N > 0 {
				return res, true
			}
		}
	}
	return peerResult{}, false
}

// appendRatio appends a ÷ b to v, unless either is missing (zero).
func appendRatio(v []float64, a, b float64) []float64 {
	if a == 0 || b == 0 {
		return v
	}
	return append(v, a/b)
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return median(s)
}

// writeCompare prints rows as a table.
func writeCompare(w io.Writer, rows []compareRow, cfg config) {
	fmt.Fprintf(w, "new (this binary) against old (%s): %d rounds, alternated, each run in a child process; medians over the rounds\n", cfg.Against, cfg.Reps)
	fmt.Fprintln(w, "new ÷ old: the median of each round's ratio, of the figures and of their ratios to classic and to the ceiling; above 1 is better where higher is, below 1 where lower is")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tunit\told\tnew\told ×classic\tnew ×classic\told ×ceiling\tnew ×ceiling\tnew ÷ old\t×classic\t×ceiling\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Metric, r.Unit,
			formatValue(r.Old, 1), formatValue(r.New, 1), formatRatio(r.OldClassic), formatRatio(r.NewClassic),
			formatRatio(r.OldCeiling), formatRatio(r.NewCeiling),
			formatRatio(r.NewOld), formatRatio(r.NewOldClassic), formatRatio(r.NewOldCeiling))
	}
	tw.Flush()
}
