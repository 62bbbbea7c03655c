package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// write prints r to w as "text", "markdown" or "json".
func write(w io.Writer, r *report, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "markdown":
		return writeMarkdown(w, r)
	default:
		return writeText(w, r)
	}
}

// header returns the lines that say how, where and how quietly r was taken.
func header(r *report) []string {
	c := r.Config
	m := r.Machine
	lines := []string{
		fmt.Sprintf("%d repetitions × %v per cell (warm-up %v), peers in rotated order; %d callers; %d-byte echo; %d idle connections; took %s",
			c.Reps, c.Duration, c.Warmup, c.Callers, c.Payload, c.Idle, r.Elapsed),
		fmt.Sprintf("machine: %s/%s, %s, %d CPUs, GOMAXPROCS=%d, %s; client and server in one process, over 127.0.0.1",
			m.OS, m.Arch, orUnknown(m.CPU), m.NumCPU, m.GOMAXPROCS, m.Go),
	}
	if c.IdleLimited != "" {
		lines = append(lines, "idle: "+c.IdleLimited)
	}
	n := r.Noise
	noiseLine := fmt.Sprintf("noise: load average %.2f before, %.2f after", n.LoadBefore, n.LoadAfter)
	if n.Others >= 0 {
		noiseLine += fmt.Sprintf("; other processes took %.1f%% of the CPU time (per cell: median %.0f%%, largest %.0f%%)",
			100*n.Others, 100*n.OthersCellMedian, 100*n.OthersCellMax)
	}
	if n.MaxCVAt != "" {
		noiseLine += fmt.Sprintf("; spread across repetitions (CV): median %.1f%%, largest %.1f%% (%s)", 100*n.MedianCV, 100*n.MaxCV, n.MaxCVAt)
	}
	lines = append(lines, noiseLine,
		"ratios: this peer's median ÷ the median of classic ("+classicPeer+") or of the ceiling ("+ceilingPeer+"); CV: standard deviation ÷ mean of the repetitions")
	return lines
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

// direction says which way is better.
func direction(m metric) string {
	if m.Higher {
		return "higher is better"
	}
	return "lower is better"
}

// cells returns the columns of one row of a metric table.
func cells(m metric, pr peerResult) []string {
	rng := ""
	if pr.N > 1 {
		rng = formatValue(pr.Min, m.decimals) + "–" + formatValue(pr.Max, m.decimals)
	}
	cv := ""
	if pr.N > 1 && !isZero(pr.Median, m.decimals) {
		cv = fmt.Sprintf("%.1f%%", 100*pr.CV)
	}
	return []string{
		peerLabel(pr.Peer),
		formatValue(pr.Median, m.decimals),
		cv,
		rng,
		formatRatio(pr.VsClassic),
		formatRatio(pr.VsCeiling),
	}
}

var columns = []string{"peer", "median", "CV", "min–max", "×classic", "×ceiling"}

// peerLabel marks the references.
func peerLabel(name string) string {
	if r := role(name); r != "" {
		return name + " (" + r + ")"
	}
	return name
}

func formatRatio(v float64) string {
	if v == 0 {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// formatValue prints v with the given decimals, and thousands separators.
func formatValue(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "?"
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// targetLine returns a target's description, wanted and measured figures.
func targetLine(t target) (what, want, got, verdict string) {
	op := "≥"
	if t.AtMost {
		op = "≤"
	}
	what = t.Metric
	if t.Peer != "" {
		what = t.Peer + " " + what
	}
	if t.Of == "value" {
		want = op + " " + formatValue(t.Want, 0)
		got = formatValue(t.Got, t.decimals)
	} else {
		what += " ×" + t.Of
		want = op + " " + strconv.FormatFloat(t.Want, 'f', 2, 64)
		got = strconv.FormatFloat(t.Got, 'f', 2, 64)
	}
	verdict = "missed"
	if t.Met {
		verdict = "met"
	}
	return what, want, got, verdict
}

func writeText(w io.Writer, r *report) error {
	ew := &errWriter{w: w}
	for _, l := range header(r) {
		ew.printf("%s\n", l)
	}
	ew.printf("\npeers:\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for _, p := range r.Peers {
		fmt.Fprintf(tw, "  %s\t%s\n", peerLabel(p.Name), p.About)
	}
	for _, p := range r.Missing {
		fmt.Fprintf(tw, "  %s\tnot run: %s\n", p.Name, p.About)
	}
	tw.Flush()
	// Peers are aligned left, figures right.
	width := len(columns[0])
	for _, p := range r.Peers {
		width = max(width, len(peerLabel(p.Name)))
	}
	row := func(tw io.Writer, cols []string) {
		fmt.Fprintf(tw, "%-*s\t%s\t\n", width, cols[0], strings.Join(cols[1:], "\t"))
	}
	for _, m := range r.Metrics {
		ew.printf("\n%s (%s, %s)\n", m.Title, m.Unit, direction(m.metric))
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		row(tw, columns)
		for _, pr := range m.Results {
			row(tw, cells(m.metric, pr))
		}
		tw.Flush()
	}
	if len(r.Targets) > 0 {
		ew.printf("\n%s against the targets of issues 6 and 10 (medians)\n", subjectPeer)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  target\twant\tgot\t\n")
		for _, t := range r.Targets {
			what, want, got, verdict := targetLine(t)
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", what, want, got, verdict)
		}
		tw.Flush()
	}
	if len(r.Errors) > 0 {
		ew.printf("\nfailed cells:\n")
		for _, e := range r.Errors {
			ew.printf("  rep %d, %s, %s: %s\n", e.Rep, e.Workload, e.Peer, e.Err)
		}
	}
	return ew.err
}

func writeMarkdown(w io.Writer, r *report) error {
	ew := &errWriter{w: w}
	for _, l := range header(r) {
		ew.printf("- %s\n", l)
	}
	ew.printf("\n| peer | what it is |\n|---|---|\n")
	for _, p := range r.Peers {
		ew.printf("| %s | %s |\n", peerLabel(p.Name), p.About)
	}
	for _, p := range r.Missing {
		ew.printf("| %s | not run: %s |\n", p.Name, p.About)
	}
	for _, row := range r.Metrics {
		ew.printf("\n#### %s (%s, %s)\n\n", row.Title, row.Unit, direction(row.metric))
		ew.printf("| %s |\n|---|---:|---:|---:|---:|---:|\n", strings.Join(columns, " | "))
		for _, pr := range row.Results {
			ew.printf("| %s |\n", strings.Join(cells(row.metric, pr), " | "))
		}
	}
	if len(r.Targets) > 0 {
		ew.printf("\n#### %s against the targets of issues 6 and 10 (medians)\n\n| target | want | got | |\n|---|---:|---:|---|\n", subjectPeer)
		for _, t := range r.Targets {
			what, want, got, verdict := targetLine(t)
			ew.printf("| %s | %s | %s | %s |\n", what, want, got, verdict)
		}
	}
	if len(r.Errors) > 0 {
		ew.printf("\nFailed cells:\n\n")
		for _, e := range r.Errors {
			ew.printf("- rep %d, %s, %s: %s\n", e.Rep, e.Workload, e.Peer, e.Err)
		}
	}
	return ew.err
}

// errWriter remembers the first write error, so that printing code need not
// check each call.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
