package rpcws

import (
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// goroutineID returns the calling goroutine's number.
func goroutineID() string {
	buf := make([]byte, 64)
	return strings.Fields(string(buf[:runtime.Stack(buf, false)]))[1]
}

// A worker serves the next request on its goroutine while requests keep
// coming, however long it lives, and ends once it has served none for a
// whole tick of workerIdle (between one and two workerIdle after its last
// request), or at stop.
func TestWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers()
		ran := make(chan string, 1)
		run := func() { ran <- goroutineID() }

		w.Go(run)
		first := <-ran
		for range 4 * workerIdle / time.Millisecond {
			time.Sleep(time.Millisecond)
			synctest.Wait() // the worker waits for more
			w.Go(run)
			if next := <-ran; next != first {
				t.Fatalf("a request within workerIdle of the last ran on goroutine %s, want the worker's, %s", next, first)
			}
		}

		time.Sleep(2*workerIdle + time.Millisecond)
		w.Go(run)
		if last := <-ran; last == first {
			t.Errorf("a request 2×workerIdle after the last ran on the worker that should have ended, %s", first)
		}

		synctest.Wait()
		w.stop()
		// The bubble ends only once the waiting worker has: stop ends it
		// before workerIdle has passed.
	})
}
