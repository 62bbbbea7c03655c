package rpcws

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A lazyReader under a small bufio.Reader, as Hijack sets it up, reads every
// byte in order, whatever the pieces they were written in; it holds no
// buffer once it has handed over what it read; and it reports the end of
// the connection.
func TestLazyReader(t *testing.T) {
	t.Parallel()
	pipeA, pipeB := net.Pipe() // no syscall.RawConn: the fallback
	tcpA, tcpB := tcpPair(t)
	wrapA, wrapB := tcpPair(t)
	t.Cleanup(func() { pipeA.Close(); pipeB.Close() })
	for _, tc := range []struct {
		name   string
		w, r   net.Conn
		hasRaw bool
	}{
		{"tcp", tcpA, tcpB, true},
		{"pipe", pipeA, pipeB, false},
		// A wrapper of a socket is read through its own Read.
		{"wrapped tcp", wrapA, wrappedConn{wrapB}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var pool sync.Pool
			l := newLazyReader(tc.r, &pool)
			if got := l.raw != nil; got != tc.hasRaw {
				t.Fatalf("uses a RawConn: got %v, want %v", got, tc.hasRaw)
			}
			var want bytes.Buffer
			for i := range 200 {
				want.Write(bytes.Repeat([]byte{byte(i)}, i*37%(3*readBufSize)))
			}
			wrote := make(chan error, 1)
			go func() {
				p := want.Bytes()
				for i := 0; len(p) > 0; i++ {
					n := min(len(p), 1+i*101%(2*readBufSize))
					if _, err := tc.w.Write(p[:n]); err != nil {
						wrote <- err
						return
					}
					p = p[n:]
				}
				wrote <- tc.w.Close()
			}()
			br := bufio.NewReaderSize(l, 16)
			var got bytes.Buffer
			p := make([]byte, 1000)
			for i := 0; ; i++ {
				var n int
				var err error
				if i%3 == 0 {
					var c byte
					if c, err = br.ReadByte(); err == nil {
						got.WriteByte(c)
					}
				} else {
					n, err = br.Read(p[:1+i%len(p)])
					got.Write(p[:n])
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("read: %v", err)
				}
			}
			if err := <-wrote; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("read %d bytes, not the %d written", got.Len(), want.Len())
			}
			if l.buf != nil {
				t.Errorf("holds a buffer after everything was read")
			}
		})
	}
}

// wrappedConn is a listener's wrapper around a socket, as many add.
type wrappedConn struct{ net.Conn }

// Reading a connection closed on this side fails with net.ErrClosed, as
// reading the connection itself does.
func TestLazyReaderClosed(t *testing.T) {
	t.Parallel()
	_, r := tcpPair(t)
	var pool sync.Pool
	l := newLazyReader(r, &pool)
	done := make(chan error, 1)
	go func() {
		_, err := l.Read(make([]byte, 10))
		done <- err
	}()
	r.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: got %v, want net.ErrClosed", err)
	}
	if l.buf != nil {
		t.Errorf("holds a buffer after a failed read")
	}
}

// await waits for bytes without taking them, and stopAwait ends that wait
// for the closing goroutine: the wait returns no error of its own, the read
// deadline that ended it is gone, and no await waits afterwards.
func TestLazyReaderAwait(t *testing.T) {
	t.Parallel()
	w, r := tcpPair(t)
	var pool sync.Pool
	l := newLazyReader(r, &pool)
	if l.raw == nil {
		t.Skip("the socket is read through its own Read here: await does not wait")
	}
	front := bufio.NewReaderSize(l, 16)
	l.front = front
	waiting := func() bool {
		l.gate.Lock()
		defer l.gate.Unlock()
		return l.waiting
	}
	// await runs on a goroutine of its own; the channel closes when it
	// returns, and within returns it, failing the test after a while.
	await := func() chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); l.await() }()
		return done
	}
	within := func(done chan struct{}, what string) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: await did not return", what)
		}
	}
	readString := func(n int) string {
		t.Helper()
		p := make([]byte, n)
		if _, err := io.ReadFull(front, p); err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(p)
	}

	// Bytes end the wait, and are then read through the front.
	done := await()
	testutil.WaitFor(t, "await to wait", waiting)
	w.Write([]byte("hello"))
	within(done, "bytes came")
	if l.err != nil || l.buf == nil {
		t.Fatalf("after the bytes came: err %v, buffered %v; want nil, true", l.err, l.buf != nil)
	}
	if got := readString(5); got != "hello" {
		t.Fatalf("read %q, want hello", got)
	}

	// stopAwait ends a wait that no bytes end.
	done = await()
	testutil.WaitFor(t, "await to wait", waiting)
	l.stopAwait()
	within(done, "stopAwait")
	if l.err != nil {
		t.Fatalf("the ended wait left error %v for Read", l.err)
	}
	// Reads go on, with no deadline left behind.
	go w.Write([]byte("world"))
	if got := readString(5); got != "world" {
		t.Fatalf("read %q, want world", got)
	}

	// From now on await waits for nothing, and stopAwait has nothing to end.
	done = await()
	within(done, "await after stopAwait")
	l.stopAwait()
	if l.buf != nil {
		t.Fatal("await read after stopAwait")
	}
}
