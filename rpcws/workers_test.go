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

// A worker serves the next request on its goroutine when it comes within
// workerIdle, and ends when none comes for that long, or at stop.
func TestWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers()
		ran := make(chan string, 1)
		run := func() { ran <- goroutineID() }

		w.Go(run)
		first := <-ran
		synctest.Wait() // the worker waits for more
		w.Go(run)
		if second := <-ran; second != first {
			t.Errorf("a request within workerIdle ran on goroutine %s, want the worker's, %s", second, first)
		}

		time.Sleep(workerIdle + time.Millisecond)
		w.Go(run)
		if third := <-ran; third == first {
			t.Errorf("a request after workerIdle ran on the worker that had ended, %s", first)
		}

		synctest.Wait()
		w.stop()
		// The bubble ends only once the waiting worker has: stop ends it
		// before workerIdle has passed.
	})
}
