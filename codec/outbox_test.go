package codec_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// sendLog is a codec.BatchConn that records its sends, one entry per call
// of WriteFrame or WriteFrames, and blocks each send until it is let go
// when gated.
type sendLog struct {
	mu    sync.Mutex
	sends [][]string
	gate  chan struct{} // if set, every send waits to receive from it
	err   error         // every send fails with it, if set
}

func (l *sendLog) ReadFrame(ctx context.Context, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (l *sendLog) WriteFrame(ctx context.Context, p []byte) error {
	return l.WriteFrames(ctx, [][]byte{p})
}

func (l *sendLog) WriteFrames(_ context.Context, frames [][]byte) error {
	if l.gate != nil {
		<-l.gate
	}
	var send []string
	for _, f := range frames {
		send = append(send, string(f))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sends = append(l.sends, send)
	return l.err
}

func (l *sendLog) Close() error { return nil }

func (l *sendLog) got() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sends)
}

func newOutbox(conn codec.Conn, maxQueued int) (*codec.Outbox, *codec.Admission, *codec.Budget) {
	budget := codec.NewBudget(-1)
	adm := codec.NewAdmission(&codec.AdmissionOptions{Budget: budget})
	return codec.NewOutbox(conn, adm, maxQueued), adm, budget
}

// sendingOutbox returns an outbox over a gated sendLog whose first send,
// of first, is under way: it waits at the gate. It runs in a synctest
// bubble.
func sendingOutbox(maxQueued int, first string) (*sendLog, *codec.Outbox, *codec.Admission, *codec.Budget) {
	conn := &sendLog{gate: make(chan struct{})}
	out, adm, budget := newOutbox(conn, maxQueued)
	go out.Write(context.Background(), []byte(first), false)
	synctest.Wait() // the first send is under way
	return conn, out, adm, budget
}

// An idle outbox writes on the caller's goroutine: the frame is sent when
// Write returns.
func TestOutboxIdleWritesAtOnce(t *testing.T) {
	conn := &sendLog{}
	out, _, budget := newOutbox(conn, 0)
	if err := out.Write(context.Background(), []byte("a"), true); err != nil {
		t.Fatal(err)
	}
	if got := conn.got(); !slices.EqualFunc(got, [][]string{{"a"}}, slices.Equal) {
		t.Fatalf("sends %q, want [[a]]", got)
	}
	if n := budget.InUse(); n != 0 {
		t.Errorf("%d bytes still charged after the send", n)
	}
}

// Frames handed over while a send is under way queue, are charged until
// they are sent, and leave together, in order, in the next send; a frame
// the caller owns is copied when queued.
func TestOutboxBatchesWhatQueues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, out, _, budget := sendingOutbox(0, "first")
		own := []byte("b")
		for _, f := range [][]byte{[]byte("a"), own} {
			if err := out.Write(context.Background(), f, true); err != nil {
				t.Fatal(err)
			}
		}
		own[0] = 'X' // the caller's again
		if err := out.TryWrite([]byte("c")); err != nil {
			t.Fatal(err)
		}
		if got, want := budget.InUse(), int64(len("first")+3); got != want {
			t.Errorf("charged %d bytes, want %d: the frame being sent and those queued", got, want)
		}
		conn.gate <- struct{}{}
		conn.gate <- struct{}{}
		if err := out.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := [][]string{{"first"}, {"a", "b", "c"}}
		if got := conn.got(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("sends %q, want %q", got, want)
		}
		if n := budget.InUse(); n != 0 {
			t.Errorf("%d bytes still charged after the sends", n)
		}
	})
}

// The queue is bounded in bytes: TryWrite refuses a frame that does not
// fit, Write waits for room until its context ends, and a frame larger than
// the bound goes only into an empty queue.
func TestOutboxQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, out, _, _ := sendingOutbox(4, "sending")
		if err := out.TryWrite([]byte("larger than four")); err != nil {
			t.Fatalf("a large frame into an empty queue: %v", err)
		}
		if err := out.TryWrite([]byte("x")); !errors.Is(err, codec.ErrQueueFull) {
			t.Fatalf("TryWrite on a full queue: got %v, want ErrQueueFull", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := out.Write(ctx, []byte("y"), false); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Write on a full queue: got %v, want the context's end", err)
		}
		waited := make(chan error, 1)
		go func() { waited <- out.Write(context.Background(), []byte("z"), false) }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("Write returned %v with the queue full", err)
		default:
		}
		conn.gate <- struct{}{} // "sending" goes; "larger than four" is taken to send
		if err := <-waited; err != nil {
			t.Fatal(err)
		}
		close(conn.gate)
		out.Flush(context.Background())
		want := [][]string{{"sending"}, {"larger than four"}, {"z"}}
		if got := conn.got(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("sends %q, want %q", got, want)
		}
	})
}

// Once the admission closes, the outbox takes nothing, and what was queued
// is dropped and no longer charged; after a failed send, every write fails.
func TestOutboxAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, out, adm, budget := sendingOutbox(0, "sending")
		out.TryWrite([]byte("queued"))
		adm.Close()
		if err := out.Write(context.Background(), []byte("late"), false); !errors.Is(err, codec.ErrClosed) {
			t.Fatalf("Write after Close: got %v, want ErrClosed", err)
		}
		close(conn.gate)
		out.Flush(context.Background())
		if want := [][]string{{"sending"}}; !slices.EqualFunc(conn.got(), want, slices.Equal) {
			t.Fatalf("sends %q, want %q", conn.got(), want)
		}
		if n := budget.InUse(); n != 0 {
			t.Errorf("%d bytes still charged", n)
		}

		broken := &sendLog{err: errors.New("broken pipe")}
		out, _, _ = newOutbox(broken, 0)
		if err := out.Write(context.Background(), []byte("a"), false); !errors.Is(err, codec.ErrClosed) {
			t.Fatalf("a failed send: got %v, want an error matching ErrClosed", err)
		}
		if err := out.TryWrite([]byte("b")); !errors.Is(err, codec.ErrClosed) {
			t.Fatalf("after a failed send: got %v, want ErrClosed", err)
		}
	})
}

// After a send of more than one frame, the connection is busy: a frame
// handed to the idle outbox is queued for a goroutine that sends it, and
// Write returns before the send. busyAfterBatch sends of one frame in a
// row end the busy spell, and the next frame is written on the caller's
// goroutine again.
func TestOutboxBusyQueuesForAWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, out, _, _ := sendingOutbox(0, "first")
		out.Write(context.Background(), []byte("a"), true)
		out.Write(context.Background(), []byte("b"), true)
		conn.gate <- struct{}{}
		conn.gate <- struct{}{} // [a b]: the outbox is busy
		out.Flush(context.Background())

		returned := func(frame string) chan error {
			done := make(chan error, 1)
			go func() { done <- out.Write(context.Background(), []byte(frame), true) }()
			synctest.Wait()
			return done
		}
		// Busy: until busyAfterBatch sends of one frame in a row, each
		// Write returns before its send.
		want := [][]string{{"first"}, {"a", "b"}}
		for i := range codec.BusyAfterBatch {
			frame := fmt.Sprint("c", i)
			select {
			case err := <-returned(frame):
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("a busy outbox wrote %s on the caller's goroutine: Write waited for its send", frame)
			}
			conn.gate <- struct{}{} // [frame] alone
			out.Flush(context.Background())
			want = append(want, []string{frame})
		}
		// Quiet again: Write sends on the caller's goroutine.
		d := returned("d")
		select {
		case <-d:
			t.Fatal("after busyAfterBatch sends of one frame, Write returned before its send")
		default:
		}
		conn.gate <- struct{}{}
		if err := <-d; err != nil {
			t.Fatal(err)
		}
		want = append(want, []string{"d"})
		if got := conn.got(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("sends %q, want %q", got, want)
		}
	})
}

// After a send, the outbox yields before it takes the frames queued
// meanwhile: a frame written during the yield, as a goroutine made ready
// by the send would write it, leaves in the same batch.
func TestOutboxYieldGathersReadyWriters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, out, _, _ := sendingOutbox(0, "first")
		yields := 0
		codec.SetYield(out, func() {
			yields++
			if err := out.Write(context.Background(), []byte("ready"), true); err != nil {
				t.Error(err)
			}
		})
		out.Write(context.Background(), []byte("queued"), true)
		close(conn.gate)
		out.Flush(context.Background())
		synctest.Wait()
		want := [][]string{{"first"}, {"queued", "ready"}}
		if got := conn.got(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("sends %q, want %q", got, want)
		}
		if yields != 1 {
			t.Errorf("yielded %d times, want once: before the queued batch", yields)
		}
	})
}
