package main

import "cmp"

// The peer whose targets the report checks.
const subjectPeer = "rpcws"

// A target is a figure that rpcws aims for (issues 6 and 10). The report
// shows each target beside the measured figure; nothing fails when one is
// missed.
type target struct {
	Metric string  `json:"metric"`
	Peer   string  `json:"peer"` // whose figure; "" means subjectPeer
	Of     string  `json:"of"`   // "classic", "ceiling" or "value": what is compared
	AtMost bool    `json:"at_most"`
	Want   float64 `json:"want"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`

	decimals int // of the metric, to print Got
}

// targets are the aims of issue 6 ("Fastest net/rpc over WebSocket there
// is") and issue 10 ("Faster than the classic way on the workloads browsers
// make"), the later where they are stricter.
var targets = []target{
	{Metric: "serial.rate", Of: "classic", Want: 1.25},
	{Metric: "serial.p50", Of: "ceiling", AtMost: true, Want: 1.15},
	{Metric: "serial.p99", Of: "ceiling", AtMost: true, Want: 1.2},
	{Metric: "conns.rate", Of: "classic", Want: 1.25},
	{Metric: "shared.rate", Of: "classic", Want: 1.25},
	{Metric: "shared.rate", Of: "ceiling", Want: 1.0},
	{Metric: "echo.rate", Of: "classic", Want: 1.6},
	{Metric: "echo.rate", Of: "ceiling", Want: 0.6},
	{Metric: "serial.allocs", Of: "value", AtMost: true, Want: 17},
	{Metric: "serial.bytes", Of: "value", AtMost: true, Want: 1000},
	{Metric: "idle.bytes", Of: "ceiling", AtMost: true, Want: 1.25},
	{Metric: "idle.goroutines", Of: "value", AtMost: true, Want: 3},
	{Metric: "fanout.rate", Of: "ceiling", Want: 0.8},
	// Within 1.3x of the hand-written loop: 1/1.3 of its rate.
	{Metric: "js.serial.rate", Peer: jsRPCWSPeer, Of: "ceiling", Want: 0.77},
	{Metric: "js.shared.rate", Peer: jsRPCWSPeer, Of: "ceiling", Want: 0.77},
}

// checkTargets compares the subject's medians with the targets. It returns
// nothing when the subject was not measured.
func checkTargets(rows []metricRow) []target {
	var out []target
	for _, t := range targets {
		for _, row := range rows {
			if row.Key != t.Metric {
				continue
			}
			for _, pr := range row.Results {
				if pr.Peer != cmp.Or(t.Peer, subjectPeer) {
					continue
				}
				switch t.Of {
				case "classic":
					t.Got = pr.VsClassic
				case "ceiling":
					t.Got = pr.VsCeiling
				default:
					t.Got = pr.Median
				}
				if t.Got == 0 && t.Of != "value" {
					continue // the reference was not measured
				}
				t.decimals = row.decimals
				t.Met = t.Got >= t.Want
				if t.AtMost {
					t.Met = t.Got <= t.Want
				}
				out = append(out, t)
			}
		}
	}
	return out
}
