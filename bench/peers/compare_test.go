package main

import (
	"math"
	"testing"
)

// compareRows pairs the rounds of the two binaries: each figure is the
// median over the rounds, and new ÷ old the median of each round's ratio.
func TestCompareRows(t *testing.T) {
	round := func(rate, vsClassic float64) *report {
		return &report{Metrics: []metricRow{{
			metric: metric{Key: "shared.rate", Title: "shared", Unit: "calls/s", Higher: true},
			Results: []peerResult{
				{Peer: "classic-xnet", summary: summary{N: 1, Median: rate / vsClassic}},
				{Peer: "rpcws", summary: summary{N: 1, Median: rate}, VsClassic: vsClassic, VsCeiling: vsClassic / 2},
			},
		}}}
	}
	old := []*report{round(100, 1.0), round(90, 1.2), round(200, 1.1)}
	new := []*report{round(110, 1.1), round(99, 1.3), round(180, 1.0)}
	rows := compareRows(old, new)
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("old", r.Old, 100)
	near("new", r.New, 110)
	near("old ×classic", r.OldClassic, 1.1)
	near("new ×classic", r.NewClassic, 1.1)
	near("new ×ceiling", r.NewCeiling, 0.55)
	near("new ÷ old", r.NewOld, 1.1)                     // rounds: 1.1, 1.1, 0.9
	near("new ÷ old ×classic", r.NewOldClassic, 1.3/1.2) // rounds: 1.1, 1.083, 0.909
	if r.Rounds != 3 {
		t.Errorf("rounds = %d, want 3", r.Rounds)
	}
}
