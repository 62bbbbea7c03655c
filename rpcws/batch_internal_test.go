package rpcws

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// sends is a net.Conn that records each Write it is given, as one send.
// If during is set, each send first lets it write, as another goroutine
// could while the system call runs, and only then looks at its bytes.
type sends struct {
	net.Conn             // nil: only Write, Close and SetWriteDeadline are called
	during   func(i int) // called, on a goroutine of its own, at the start of send i; may be nil
	mu       sync.Mutex
	got      [][]byte
	closed   bool
}

func (s *sends) Write(p []byte) (int, error) {
	if s.during != nil {
		s.mu.Lock()
		i := len(s.got)
		s.mu.Unlock()
		done := make(chan struct{})
		go func() { defer close(done); s.during(i) }()
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, bytes.Clone(p))
	return len(p), nil
}

func (s *sends) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *sends) SetWriteDeadline(time.Time) error { return nil }

func (s *sends) sent() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got
}

// Writes made under a hold, by the holder and by others, leave in one send
// at its release, in the order they were made; a write after the release
// goes out on its own again. (In a bubble: the connection's quiet is
// bubble time.)
func TestHoldJoinsWrites(t *testing.T) {
	synctest.Test(t, testHoldJoinsWrites)
}

func testHoldJoinsWrites(t *testing.T) {
	s := &sends{}
	b := newBatchConn(s, 0, serverWriteBuffer)
	b.hold()
	b.Write([]byte("head"))
	done := make(chan struct{})
	go func() { // another writer, as coder/websocket's pong
		defer close(done)
		b.Write([]byte("+pong"))
	}()
	<-done
	b.Write([]byte("+payload"))
	if got := s.sent(); len(got) != 0 {
		t.Fatalf("sent %q under the hold", got)
	}
	if err := b.release(); err != nil {
		t.Fatal(err)
	}
	got := s.sent()
	if len(got) != 1 || string(got[0]) != "head+pong+payload" {
		t.Fatalf("sent %q at the release, want one send of %q", got, "head+pong+payload")
	}
	time.Sleep(2 * quiet) // quiet now: the next write goes out at once, on this goroutine
	b.Write([]byte("next"))
	if got := s.sent(); len(got) != 2 || string(got[1]) != "next" {
		t.Fatalf("sent %q, want %q after the first send", got, "next")
	}
}

// Holds nest: only the last release sends.
func TestHoldsNest(t *testing.T) {
	s := &sends{}
	b := newBatchConn(s, 0, serverWriteBuffer)
	b.hold()
	b.hold()
	b.Write([]byte("a"))
	b.release()
	if got := s.sent(); len(got) != 0 {
		t.Fatalf("sent %q before the last release", got)
	}
	b.Write([]byte("b"))
	b.release()
	if got := s.sent(); len(got) != 1 || string(got[0]) != "ab" {
		t.Fatalf("sent %q, want one send of %q", got, "ab")
	}
}

// What was written under a hold is sent before Close closes the connection:
// coder/websocket may write its close frame and close while a frame is held.
func TestCloseSendsHeldWrites(t *testing.T) {
	s := &sends{}
	b := newBatchConn(s, 0, serverWriteBuffer)
	b.hold()
	b.Write([]byte("close frame"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed || len(s.got) != 1 || string(s.got[0]) != "close frame" {
		t.Fatalf("closed %v after sending %q; want the held write sent first", s.closed, s.got)
	}
}

// Writes made while a held frame is being sent, and while the flusher sends
// them in turn, reach the connection intact and in order: a small held
// frame, whose storage is kept for reuse, then a large one, whose storage is
// not. (In a bubble: the connection's quiet is bubble time.)
func TestWritesDuringHeldSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sends{}
		b := newBatchConn(s, 0, serverWriteBuffer)
		var mu sync.Mutex
		var want []byte
		write := func(p []byte) {
			mu.Lock()
			want = append(want, p...)
			mu.Unlock()
			b.Write(p)
		}
		budget := 0              // writes left to make during sends
		s.during = func(i int) { // another writer, while send i is under way
			if budget > 0 {
				budget--
				write(bytes.Repeat([]byte{byte('a' + i)}, 64))
			}
		}
		for _, size := range []int{100, 2 * idleKeep} {
			budget = 2 // during the release's send, and the flusher's after it
			b.hold()
			write(bytes.Repeat([]byte{'H'}, size))
			if err := b.release(); err != nil {
				t.Fatal(err)
			}
			b.mu.Lock()
			for b.flushing {
				b.space.Wait()
			}
			b.mu.Unlock()
			time.Sleep(2 * quiet) // quiet again: the next release sends at once
		}
		b.Close()
		mu.Lock()
		defer mu.Unlock()
		if got := bytes.Join(s.sent(), nil); !bytes.Equal(got, want) {
			t.Fatalf("sent %d bytes %.120q..., want %d bytes %.120q...", len(got), got, len(want), want)
		}
	})
}
