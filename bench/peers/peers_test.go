package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// tinyConfig runs every cell for a few milliseconds: enough to catch a broken
// adapter, far too little to measure anything.
func tinyConfig() config {
	return config{
		Duration:  20 * time.Millisecond,
		Warmup:    5 * time.Millisecond,
		Reps:      1,
		Callers:   4,
		Payload:   1024,
		Idle:      5,
		Fanout:    8,
		MaxCalls:  500,
		Peers:     peerNames(allPeers()),
		Workloads: workloadKeys(),
	}
}

// TestPeers calls each method of each peer once, over one connection.
func TestPeers(t *testing.T) {
	msg := payload(1024)
	for _, p := range allPeers() {
		t.Run(p.name(), func(t *testing.T) {
			addr, stop, err := p.start()
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer stop()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := p.dial(ctx, addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.close()
			if err := checkMultiply(c, 7, 6); err != nil {
				t.Errorf("multiply: %v", err)
			}
			if err := checkEcho(c, msg); err != nil {
				t.Errorf("echo: %v", err)
			}
		})
	}
}

// TestRun runs every workload against every peer for a tiny count and
// prints the report in each format.
func TestRun(t *testing.T) {
	cfg := tinyConfig()
	r := run(cfg, io.Discard)
	for _, e := range r.Errors {
		t.Errorf("rep %d, %s, %s: %s", e.Rep, e.Workload, e.Peer, e.Err)
	}
	// A metric's key starts with its workload's; some workloads run
	// against some peers only, or peers of their own, or not at all here.
	subjects, _, _ := pickSubjects(workloads, allPeers())
	ofWorkload := func(key string) []peer {
		w, _, _ := strings.Cut(key, ".")
		return subjects[w]
	}
	want := 0
	for _, m := range metricsFor(cfg) {
		if len(ofWorkload(m.Key)) > 0 {
			want++
		}
	}
	if got := len(r.Metrics); got != want {
		t.Errorf("got %d metrics, want %d", got, want)
	}
	for _, row := range r.Metrics {
		if got, want := len(row.Results), len(ofWorkload(row.Key)); got != want {
			t.Errorf("%s: got results for %d peers, want %d", row.Key, got, want)
		}
	}
	for _, format := range []string{"text", "markdown", "json"} {
		var buf bytes.Buffer
		if err := write(&buf, r, format); err != nil {
			t.Fatalf("write %s: %v", format, err)
		}
		if !strings.Contains(buf.String(), ceilingPeer) {
			t.Errorf("%s report does not name %s:\n%s", format, ceilingPeer, buf.String())
		}
		if format == "json" && !json.Valid(buf.Bytes()) {
			t.Errorf("json report is not valid JSON:\n%s", buf.String())
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		in   []float64
		want summary
	}{
		{nil, summary{}},
		{[]float64{5}, summary{N: 1, Median: 5, Min: 5, Max: 5}},
		{[]float64{3, 1, 2}, summary{N: 3, Median: 2, Min: 1, Max: 3, CV: 0.5}},
		{[]float64{4, 1, 3, 2}, summary{N: 4, Median: 2.5, Min: 1, Max: 4, CV: 0.5163977794943222}},
	}
	for _, tt := range tests {
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i + 1)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0.1, 1}}
	for _, tt := range tests {
		if got := percentile(lat, tt.p); got != tt.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v        float64
		decimals int
		want     string
	}{
		{0, 0, "0"},
		{999, 0, "999"},
		{1000, 0, "1,000"},
		{1234567.89, 1, "1,234,567.9"},
		{-12345, 0, "-12,345"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.v, tt.decimals); got != tt.want {
			t.Errorf("formatValue(%v, %d) = %q, want %q", tt.v, tt.decimals, got, tt.want)
		}
	}
}
