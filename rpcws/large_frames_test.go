package rpcws_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// Frames from a few hundred bytes to several megabytes go both ways intact:
// larger than coder/websocket's write buffers (512 bytes on the server,
// 4 KiB on the client), and larger than the bytes a batchConn queues before
// writers wait.
func TestLargeFrames(t *testing.T) {
	t.Parallel()
	s, _ := newServerWith(t, &rpcws.HandlerOptions{ReadLimit: -1, MaxConnBytes: 64 << 20}, BenchEcho{})
	c := s.dial(t, &rpcws.DialOptions{ReadLimit: -1})
	for _, size := range []int{100, 600, 5000, 300 << 10, 900 << 10, 3 << 20} {
		arg := strings.Repeat(string(rune('a'+size%26)), size)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var got string
		err := c.CallContext(ctx, "BenchEcho.Echo", arg, &got)
		cancel()
		if err != nil {
			t.Fatalf("echo of %d bytes: %v", size, err)
		}
		if got != arg {
			t.Fatalf("echo of %d bytes came back as %d bytes", size, len(got))
		}
	}
}
