package main

// The peer whose targets the report checks.
const subjectPeer = "rpcws"

// A target is a figure that rpcws aims for (issue 6). The report shows each
// target beside the measured figure; nothing fails when one is missed.
type target struct {
	Metric string  `json:"metric"`
	Of     string  `json:"of"` // "classic", "ceiling" or "value": what is compared
	AtMost bool    `json:"at_most"`
	Want   float64 `json:"want"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`

	decimals int // of the metric, to print Got
}

// targets are the aims of issue 6 ("Fastest net/rpc over WebSocket there is").
var targets = []target{
	{Metric: "shared.rate", Of: "classic", Want: 1.25},
	{Metric: "shared.rate", Of: "ceiling", Want: 0.8},
	{Metric: "echo.rate", Of: "classic", Want: 1.25},
	{Metric: "serial.p50", Of: "ceiling", AtMost: true, Want: 1.15},
	{Metric: "serial.allocs", Of: "value", AtMost: true, Want: 20},
	{Metric: "serial.bytes", Of: "value", AtMost: true, Want: 1500},
	{Metric: "idle.bytes", Of: "ceiling", AtMost: true, Want: 1.25},
	{Metric: "idle.goroutines", Of: "value", AtMost: true, Want: 3},
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
				if pr.Peer != subjectPeer {
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
