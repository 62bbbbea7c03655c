package rpcws_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/rpcws"
)

// The flooding clients of TestFloodingAddressSlowsOnlyItself run in a child
// process (the test binary run again), so that their own work does not
// share this process's scheduler with the server and the victim.
const (
	floodURLEnv  = "RPCWS_FLOOD_URL"
	floodConnsEn = "RPCWS_FLOOD_CONNS"
	floodModeEnv = "RPCWS_FLOOD_MODE" // "calls" or "pings"
	loadTestsEnv = "RPCWS_LOAD_TESTS" // set: run the load tests
)

// TestFloodClientProcess is the child process of
// TestFloodingAddressSlowsOnlyItself: it opens the connections, from the
// address "flood", and floods them until its standard input closes. Run on
// its own it does nothing.
func TestFloodClientProcess(t *testing.T) {
	url := os.Getenv(floodURLEnv)
	if url == "" {
		t.Skip("only runs as the child process of TestFloodingAddressSlowsOnlyItself")
	}
	n, _ := strconv.Atoi(os.Getenv(floodConnsEn))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{"X-Client": {"flood"}}}
	var wg sync.WaitGroup
	for range n {
		ws, _, err := websocket.Dial(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		ws.SetReadLimit(-1)
		wg.Add(2)
		go func() { // reads and drops the replies
			defer wg.Done()
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			flood(ctx, ws, os.Getenv(floodModeEnv))
		}()
	}
	os.Stdout.WriteString("flooding\n")
	buf := make([]byte, 1)
	os.Stdin.Read(buf) // until the parent closes it
	cancel()
	wg.Wait()
}

// flood writes tiny requests (or pings) to ws as fast as it takes them,
// until ctx ends.
func flood(ctx context.Context, ws *websocket.Conn, mode string) {
	req := []byte(`{"id":1,"type":"test.multiply","data":{"A":2,"B":3}}`)
	for ctx.Err() == nil {
		var err error
		if mode == "pings" {
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			err = ws.Ping(pctx)
			cancel()
			if ctx.Err() == nil && err != nil && pctx.Err() != nil {
				continue // a ping not answered in time
			}
		} else {
			err = ws.Write(ctx, websocket.MessageText, req)
		}
		if err != nil {
			return
		}
	}
}

// One address that floods the server from 50 connections, with tiny
// pipelined requests or with pings, is slowed; a client at another address
// is not: its calls' 99th percentile stays within 50 ms (five times that
// under the race detector, which slows every goroutine).
func TestFloodingAddressSlowsOnlyItself(t *testing.T) {
	if os.Getenv(loadTestsEnv) == "" {
		t.Skip("a load test whose latencies need the machine to itself: " + loadTestsEnv + "=1 go test -run Flooding ./rpcws (.ci/run runs it so, alone)")
	}
	for _, mode := range []string{"calls", "pings"} {
		t.Run(mode, func(t *testing.T) {
			opts := &rpcws.HandlerOptions{ClientAddr: func(r *http.Request) string { return r.Header.Get("X-Client") }}
			s := newServer(t, opts)
			stop := startFlood(t, s.url, 50, mode)
			defer stop()
			victim := s.dial(t, &rpcws.DialOptions{WebSocket: &websocket.DialOptions{HTTPHeader: http.Header{"X-Client": {"victim"}}}})
			bound := 50 * time.Millisecond
			if raceEnabled {
				bound *= 5
			}
			// The machine may be busy with other work: the best of five
			// windows of 200 calls counts. A flooded server that serves in
			// turn meets the bound in most.
			var best time.Duration
			for w := range 5 {
				p50, p99, worst := victimLatency(t, victim, 200)
				t.Logf("flooded with %s, window %d: the victim's p50 %v, p99 %v, max %v", mode, w, p50, p99, worst)
				if w == 0 || p99 < best {
					best = p99
				}
				if best <= bound {
					break
				}
			}
			if best > bound {
				t.Errorf("the victim's p99 is %v at best, want at most %v", best, bound)
			}
		})
	}
}

// victimLatency makes n calls with c, one after another, and returns the
// median, 99th percentile and largest of their times.
func victimLatency(t *testing.T, c *rpcws.Client, n int) (p50, p99, worst time.Duration) {
	t.Helper()
	took := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		var got int
		if err := c.Call("Test.Multiply", &Args{A: i, B: 2}, &got); err != nil || got != 2*i {
			t.Fatalf("call %d: %d, %v", i, got, err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took[n/2], took[n*99/100], took[n-1]
}

// startFlood starts the child process that floods url from n connections,
// and returns once they are flooding; stop ends it.
func startFlood(t *testing.T, url string, n int, mode string) (stop func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodClientProcess$", "-test.v")
	cmd.Env = append(os.Environ(), floodURLEnv+"="+url, floodConnsEn+"="+strconv.Itoa(n), floodModeEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() && lines.Text() != "flooding" {
		}
		close(ready)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the flooding process did not start within 30 s")
	}
	return func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}
