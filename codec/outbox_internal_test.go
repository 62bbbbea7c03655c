package codec

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// gatedConn records the frames of each send, and holds every send until
// the test lets it go.
type gatedConn struct {
	gate  chan struct{}
	mu    sync.Mutex
	sends [][]string
}

func (c *gatedConn) ReadFrame(ctx context.Context, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (c *gatedConn) WriteFrame(ctx context.Context, p []byte) error {
	return c.WriteFrames(ctx, [][]byte{p})
}

func (c *gatedConn) WriteFrames(_ context.Context, frames [][]byte) error {
	<-c.gate
	var send []string
	for _, f := range frames {
		send = append(send, string(f))
	}
	c.mu.Lock()
	c.sends = append(c.sends, send)
	c.mu.Unlock()
	return nil
}

func (c *gatedConn) Close() error { return nil }

// After a send, the outbox yields before it takes the frames queued
// meanwhile: a frame written during the yield, as a goroutine made ready
// by the send would write it, leaves in the same batch.
func TestOutboxYieldGathersReadyWriters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := &gatedConn{gate: make(chan struct{})}
		out := NewOutbox(conn, NewAdmission(nil), 0)
		yields := 0
		out.yield = func() {
			yields++
			if err := out.Write(context.Background(), []byte("ready"), true); err != nil {
				t.Error(err)
			}
		}
		go out.Write(context.Background(), []byte("first"), true)
		synctest.Wait()
		out.Write(context.Background(), []byte("queued"), true)
		close(conn.gate)
		out.Flush(context.Background())
		synctest.Wait()
		want := [][]string{{"first"}, {"queued", "ready"}}
		if !slices.EqualFunc(conn.sends, want, slices.Equal) {
			t.Fatalf("sends %q, want %q", conn.sends, want)
		}
		if yields != 1 {
			t.Errorf("yielded %d times, want once: before the queued batch", yields)
		}
	})
}
