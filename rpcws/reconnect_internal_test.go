package rpcws

import (
	"math"
	"testing"
	"time"
)

// The wait before each attempt lies between half and all of a bound that
// starts at Delay and doubles up to MaxDelay; a negative Delay makes the
// first attempt at once; no cap never overflows.
func TestBackoffWait(t *testing.T) {
	low, high := func() float64 { return 0 }, func() float64 { return math.Nextafter(1, 0) }
	tests := []struct {
		name string
		b    backoff
		n    int
		want time.Duration // the bound
	}{
		{"default first", backoff{maxDelay: DefaultReconnectMaxDelay}, 0, 200 * time.Millisecond},
		{"default third", backoff{maxDelay: DefaultReconnectMaxDelay}, 2, 800 * time.Millisecond},
		{"default capped", backoff{maxDelay: DefaultReconnectMaxDelay}, 7, 20 * time.Second},
		{"default far", backoff{maxDelay: DefaultReconnectMaxDelay}, 1000, 20 * time.Second},
		{"own delay", backoff{delay: time.Second, maxDelay: 3 * time.Second}, 1, 2 * time.Second},
		{"own delay capped", backoff{delay: time.Second, maxDelay: 3 * time.Second}, 2, 3 * time.Second},
		{"none then default", backoff{delay: -1, maxDelay: time.Minute}, 1, 200 * time.Millisecond},
		{"none then doubling", backoff{delay: -1, maxDelay: time.Minute}, 3, 800 * time.Millisecond},
		{"no cap", backoff{delay: time.Second, maxDelay: -1}, 10, 1024 * time.Second},
		{"no cap, far", backoff{delay: time.Second, maxDelay: -1}, 1 << 20, 1 << 62},
	}
	for _, tt := range tests {
		if got := tt.b.wait(tt.n, low); got != tt.want/2 {
			t.Errorf("%s: shortest wait %v, want %v", tt.name, got, tt.want/2)
		}
		if got := tt.b.wait(tt.n, high); got > tt.want || got < tt.want-time.Microsecond {
			t.Errorf("%s: longest wait %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := (backoff{delay: -1}).wait(0, low); got != 0 {
		t.Errorf("first wait with no delay: %v, want none", got)
	}
}
