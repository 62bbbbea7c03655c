package rpcws

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLog limits lines about one kind of fault that a client or an engine
// can repeat at will: the first rateLogBurst in each rateLogEvery are
// written, then one line that counts those left out, with the first line of
// the next interval.
type rateLog struct {
	mu      sync.Mutex
	start   time.Time
	written int
	skipped int
}

const (
	rateLogBurst = 5
	rateLogEvery = time.Minute
)

// log writes msg at level unless the interval's lines are spent.
func (r *rateLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	if l == nil || !l.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.start) >= rateLogEvery {
		if r.skipped > 0 {
			l.Log(context.Background(), level, "rpcws: "+msg+" (and more left out of the log)", "left_out", r.skipped, "in", now.Sub(r.start).Round(time.Second))
		}
		r.start, r.written, r.skipped = now, 0, 0
	}
	if r.written >= rateLogBurst {
		r.skipped++
		r.mu.Unlock()
		return
	}
	r.written++
	r.mu.Unlock()
	l.Log(context.Background(), level, "rpcws: "+msg, args...)
}
