package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
)

// The ceiling writes, encoded by hand, the very bytes that rpcws's
// Broadcast writes; both are tickFrameLen long and read back.
func TestTickFrame(t *testing.T) {
	for _, tt := range []struct{ seq, sent int64 }{
		{1, 0}, {1, 999}, {42, 123_456_789}, {1_000_000, 3_600_000_000_000},
	} {
		tk := newTick(tt.seq, tt.sent)
		want, err := codec.EncodeEvent(tickType, tk)
		if err != nil {
			t.Fatalf("EncodeEvent: %v", err)
		}
		got := appendTick(nil, tk)
		if !bytes.Equal(got, want) {
			t.Errorf("appendTick = %s\nEncodeEvent = %s", got, want)
		}
		if len(got) != tickFrameLen {
			t.Errorf("frame of tick %d is %d bytes, want %d: %s", tt.seq, len(got), tickFrameLen, got)
		}
		if !json.Valid(got) {
			t.Errorf("frame is not JSON: %s", got)
		}
		seq, sent, err := parseTick(got)
		if err != nil || seq != tt.seq || sent != tt.sent {
			t.Errorf("parseTick(%s) = %d, %d, %v; want %d, %d", got, seq, sent, err, tt.seq, tt.sent)
		}
	}
	if _, _, err := parseTick([]byte(`{"type":"bench.tick","data":{}}`)); err == nil {
		t.Error("parseTick took a frame that is no tick")
	}
}

// The fanout workload delivers every broadcast to every connection, in
// order, and times every measured receipt.
func TestFanoutWorkload(t *testing.T) {
	cfg := tinyConfig()
	subjects, err := fanoutSubjects(allPeers())
	if err != nil || len(subjects) != 2 {
		t.Fatalf("fanoutSubjects = %d subjects, %v; want rpcws and the ceiling", len(subjects), err)
	}
	for _, p := range subjects {
		t.Run(p.name(), func(t *testing.T) {
			base := testutil.CountGoroutines()
			b := newBench(cfg)
			var res fanoutResult
			w := workload{"fanout", func(b *bench, c *cell) (map[string]float64, error) {
				var err error
				res, err = b.fanoutRun(c)
				return nil, err
			}}
			if _, err := b.runCell(w, p); err != nil {
				t.Fatalf("fanout: %v", err)
			}
			if res.broadcasts < 1 || res.published <= res.broadcasts {
				t.Errorf("%d broadcasts measured of %d published; want at least one, after a warm-up", res.broadcasts, res.published)
			}
			if res.delivered != res.broadcasts*cfg.Fanout || len(res.lat) != res.delivered {
				t.Errorf("delivered %d events with %d latencies; want %d × %d", res.delivered, len(res.lat), res.broadcasts, cfg.Fanout)
			}
			if len(res.got) != cfg.Fanout {
				t.Fatalf("%d connections reported, want %d", len(res.got), cfg.Fanout)
			}
			for i, got := range res.got {
				if got != res.published {
					t.Errorf("connection %d received %d events of %d", i, got, res.published)
				}
			}
			if len(res.lat) > 0 && (res.lat[0] < 0 || res.elapsed <= 0) {
				t.Errorf("shortest latency %v, elapsed %v; want neither negative", res.lat[0], res.elapsed)
			}
			testutil.CheckGoroutines(t, base)
		})
	}
}
