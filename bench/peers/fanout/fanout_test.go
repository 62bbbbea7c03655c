package main

import (
	"os"
	"testing"
	"time"
)

// A small run of every broker, so that the benchmark keeps working; the
// figures are not checked.
func TestFanout(t *testing.T) {
	cfg := config{Conns: 30, Messages: 50, Window: 8, Reps: 1, Brokers: []string{"memory", "redis", "nats"}, History: []bool{false, true}, Timeout: 30 * time.Second}
	rs, err := run(cfg, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 6 {
		t.Fatalf("%d cells, want 6: three brokers, without history and with it", len(rs))
	}
	for _, r := range rs {
		if r.Unavailable != "" {
			if os.Getenv("CI") != "" {
				t.Errorf("%s: %s, and CI needs it", r.Broker, r.Unavailable)
			}
			continue
		}
		if r.PerSecond <= 0 || r.Dropped != 0 {
			t.Errorf("%s: %+v", r.Broker, r)
		}
	}
}

// A small run of the recovery cells: every client of the restarted replica
// gets back every event it missed, once each and in order.
func TestRecoveryCells(t *testing.T) {
	cfg := config{Conns: 30, Missed: 20, Reps: 1, Brokers: []string{"memory", "redis", "nats"}, Timeout: 30 * time.Second}
	rs, err := runRecovery(cfg, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Unavailable != "" {
			if os.Getenv("CI") != "" {
				t.Errorf("%s: %s, and CI needs it", r.Broker, r.Unavailable)
			}
			continue
		}
		if r.Recovered != cfg.Conns || r.Faults != 0 || r.Last <= 0 {
			t.Errorf("%s: %+v: want every client recovered with no fault", r.Broker, r)
		}
	}
}
