package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// report is everything a run found, ready to print.
type report struct {
	Machine machine     `json:"machine"`
	Config  config      `json:"config"`
	Noise   noise       `json:"noise"`
	Peers   []peerInfo  `json:"peers"`
	Missing []peerInfo  `json:"missing_peers,omitempty"`
	Metrics []metricRow `json:"metrics"`
	Targets []target    `json:"targets,omitempty"`
	Errors  []cellError `json:"errors,omitempty"`
	Elapsed string      `json:"elapsed"`
}

type peerInfo struct {
	Name  string `json:"name"`
	About string `json:"about"`
	Role  string `json:"role,omitempty"`
}

// noise tells how quiet the machine was during the run.
type noise struct {
	LoadBefore float64 `json:"load1_before"`
	LoadAfter  float64 `json:"load1_after"`
	// Others is the share (0..1) of the machine's CPU time that other
	// processes took during the run; -1 if unknown.
	Others float64 `json:"others_cpu_share"`
	// OthersCellMedian and OthersCellMax are the same share measured over
	// each cell: the median and the largest over all cells.
	OthersCellMedian float64 `json:"others_cpu_share_cell_median"`
	OthersCellMax    float64 `json:"others_cpu_share_cell_max"`
	// MedianCV and MaxCV summarize the coefficients of variation of all
	// cells with two samples or more.
	MedianCV float64 `json:"median_cv"`
	MaxCV    float64 `json:"max_cv"`
	MaxCVAt  string  `json:"max_cv_at,omitempty"`
}

// metricRow is one metric's figures for every peer.
type metricRow struct {
	metric
	Results []peerResult `json:"results"`
}

// peerResult is one cell of the report.
type peerResult struct {
	Peer    string    `json:"peer"`
	Samples []float64 `json:"samples"`
	summary
	// Ratios of Median to the references' medians; 0 when a reference has
	// no figure.
	VsClassic float64 `json:"vs_classic,omitempty"`
	VsCeiling float64 `json:"vs_ceiling,omitempty"`
}

// cellError is a cell that failed.
type cellError struct {
	Rep      int    `json:"rep"`
	Workload string `json:"workload"`
	Peer     string `json:"peer"`
	Err      string `json:"error"`
}

// run runs every selected cell cfg.Reps times and gathers the report,
// printing progress to progress.
func run(cfg config, progress io.Writer) *report {
	var peers []peer
	for _, p := range allPeers() {
		if slices.Contains(cfg.Peers, p.name()) {
			peers = append(peers, p)
		}
	}
	var wls []workload
	for _, w := range workloads {
		if slices.Contains(cfg.Workloads, w.key) {
			wls = append(wls, w)
		}
	}

	r := &report{Machine: describeMachine(), Config: cfg}
	subjects, extra, skipped := pickSubjects(wls, peers)
	listed := slices.Concat(peers, extra)
	for _, p := range listed {
		r.Peers = append(r.Peers, peerInfo{Name: p.name(), About: p.about(), Role: role(p.name())})
	}
	for name, why := range missingPeers {
		r.Missing = append(r.Missing, peerInfo{Name: name, About: why})
	}
	for _, s := range skipped {
		fmt.Fprintf(progress, "skip %s: %s\n", s.Name, s.About)
		r.Missing = append(r.Missing, s)
	}

	b := newBench(cfg)
	samples := map[string]map[string][]float64{} // peer → metric → one per rep
	start := time.Now()
	r.Noise.LoadBefore = loadAverage()
	clock0 := readCPUClock()
	var cellOthers []float64 // others' share of the CPU during each cell
	for rep := range cfg.Reps {
		for _, w := range wls {
			// Rotate the order of the peers at each repetition.
			for _, p := range rotate(subjects[w.key], rep) {
				c0 := readCPUClock()
				res, err := b.runCell(w, p)
				c1 := readCPUClock()
				others := othersShare(c0, c1)
				if others >= 0 {
					cellOthers = append(cellOthers, others)
				}
				fmt.Fprintf(progress, "rep %d/%d  %-7s %-20s %5.2fs  others %3.0f%%  ",
					rep+1, cfg.Reps, w.key, p.name(), c1.wall.Sub(c0.wall).Seconds(), 100*others)
				if err != nil {
					fmt.Fprintf(progress, "error: %v\n", err)
					r.Errors = append(r.Errors, cellError{Rep: rep + 1, Workload: w.key, Peer: p.name(), Err: err.Error()})
					continue
				}
				fmt.Fprintln(progress, brief(res))
				if samples[p.name()] == nil {
					samples[p.name()] = map[string][]float64{}
				}
				for k, v := range res {
					samples[p.name()][k] = append(samples[p.name()][k], v)
				}
			}
		}
	}
	r.Noise.Others = othersShare(clock0, readCPUClock())
	if len(cellOthers) > 0 {
		slices.Sort(cellOthers)
		r.Noise.OthersCellMedian = median(cellOthers)
		r.Noise.OthersCellMax = cellOthers[len(cellOthers)-1]
	}
	r.Noise.LoadAfter = loadAverage()
	r.Elapsed = time.Since(start).Round(time.Second).String()

	r.Metrics = tabulate(metricsFor(cfg), listed, samples)
	r.Noise.MedianCV, r.Noise.MaxCV, r.Noise.MaxCVAt = spread(r.Metrics)
	r.Targets = checkTargets(r.Metrics)
	return r
}

// role says which reference a peer is, if any.
func role(name string) string {
	switch name {
	case classicPeer:
		return "classic"
	case ceilingPeer, jsBarePeer:
		return "ceiling"
	}
	return ""
}

// brief formats a cell's figures for the progress lines.
func brief(res map[string]float64) string {
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%.4g ", k, res[k])
	}
	return s
}

// tabulate summarizes the samples of every metric that has any.
func tabulate(ms []metric, peers []peer, samples map[string]map[string][]float64) []metricRow {
	var rows []metricRow
	for _, m := range ms {
		row := metricRow{metric: m}
		ref := func(name string) float64 {
			if s := samples[name][m.Key]; len(s) > 0 {
				return summarize(s).Median
			}
			return 0
		}
		classic, ceiling := ref(classicPeer), ref(cmp.Or(m.Ceiling, ceilingPeer))
		// A reference that shows as zero (the ceiling allocates nothing per
		// call) makes no ratio.
		if isZero(classic, m.decimals) {
			classic = 0
		}
		if isZero(ceiling, m.decimals) {
			ceiling = 0
		}
		for _, p := range peers {
			s := samples[p.name()][m.Key]
			if len(s) == 0 {
				continue
			}
			pr := peerResult{Peer: p.name(), Samples: s, summary: summarize(s)}
			if classic != 0 {
				pr.VsClassic = pr.Median / classic
			}
			if ceiling != 0 {
				pr.VsCeiling = pr.Median / ceiling
			}
			row.Results = append(row.Results, pr)
		}
		if len(row.Results) > 0 {
			rows = append(rows, row)
		}
	}
	return rows
}

// isZero tells whether v shows as zero with the given decimals.
func isZero(v float64, decimals int) bool {
	return math.Abs(v) < 0.5*math.Pow10(-decimals)
}

// spread returns the median and the largest coefficient of variation of the
// cells with two samples or more, and where the largest is.
func spread(rows []metricRow) (medianCV, maxCV float64, at string) {
	var cvs []float64
	for _, row := range rows {
		for _, pr := range row.Results {
			if pr.N < 2 || isZero(pr.Median, row.decimals) {
				continue // no spread, or the spread of rounding errors
			}
			cvs = append(cvs, pr.CV)
			if pr.CV > maxCV {
				maxCV, at = pr.CV, pr.Peer+" / "+row.Key
			}
		}
	}
	if len(cvs) == 0 {
		return 0, 0, ""
	}
	slices.Sort(cvs)
	return median(cvs), maxCV, at
}
