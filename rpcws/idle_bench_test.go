package rpcws_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"net/rpc"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// The idle-connection benchmark holds connections open between one server,
// in the benchmark's process, and their clients, in a child process (the
// test binary run again): 10,000 connections need 20,000 file descriptors,
// more than one process may open here, and the split measures each side's
// memory on its own.
const (
	idleURLEnv  = "RPCWS_IDLE_URL"
	idleNEnv    = "RPCWS_IDLE_N"
	idleEachEnv = "RPCWS_IDLE_EACH" // "1": a call on every connection, not on the last alone
)

// usage returns the heap and stack memory in use, and the goroutines, after a
// collection.
func usage() (bytes uint64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}

// TestIdleClientProcess is the child process of BenchmarkIdleConns: it dials
// the connections, reports its usage, and holds them until its standard input
// closes. Run on its own it does nothing.
func TestIdleClientProcess(t *testing.T) {
	url := os.Getenv(idleURLEnv)
	if url == "" {
		t.Skip("only runs as the child process of BenchmarkIdleConns")
	}
	n, _ := strconv.Atoi(os.Getenv(idleNEnv))
	before, g0 := usage()
	clients := make([]*rpcws.Client, n)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := rpcws.Dial(ctx, url, nil)
		cancel()
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		clients[i] = c
	}
	callers := clients[n-1:]
	if os.Getenv(idleEachEnv) == "1" {
		callers = clients
	}
	for _, c := range callers {
		var reply int
		if err := c.Call("BenchArith.Multiply", &Args{2, 3}, &reply); err != nil {
			t.Fatal(err)
		}
	}
	after, g1 := usage()
	fmt.Printf("ready %d %d\n", after-before, g1-g0)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range clients {
		c.Close()
	}
}

// BenchmarkIdleConns reports the memory and goroutines that an idle
// connection costs, server and client together, with 1,000 and 10,000
// connections held open by one server: connections that have made no call
// but one (calls=one: a connection that only listens for events), and
// connections that have each made one (calls=each: a browser that called
// and went quiet). A server connection keeps more once it has served a
// call: its reader's stack grew to run the method.
func BenchmarkIdleConns(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, each := range []bool{false, true} {
			calls := map[bool]string{false: "one", true: "each"}[each]
			b.Run(fmt.Sprintf("conns=%d/calls=%s", n, calls), func(b *testing.B) {
				for range b.N {
					idleConns(b, n, each)
				}
			})
		}
	}
}

func idleConns(b *testing.B, n int, each bool) {
	srv := rpc.NewServer()
	srv.Register(BenchArith{})
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{MaxConns: n + 1, MaxConnsPerClient: -1})
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	before, g0 := usage()

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), idleURLEnv+"=ws"+strings.TrimPrefix(hs.URL, "http"), idleNEnv+"="+strconv.Itoa(n))
	if each {
		cmd.Env = append(cmd.Env, idleEachEnv+"=1")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("the client process: %v", err)
	}
	var clientBytes uint64
	var clientG int
	if _, err := fmt.Sscanf(line, "ready %d %d", &clientBytes, &clientG); err != nil {
		b.Fatalf("the client process said %q", line)
	}
	if got := h.NumConns(); got != n {
		b.Fatalf("NumConns: got %d, want %d", got, n)
	}
	after, g1 := usage()
	serverBytes := after - before
	b.ReportMetric(float64(serverBytes)/float64(n), "server-B/conn")
	b.ReportMetric(float64(clientBytes)/float64(n), "client-B/conn")
	b.ReportMetric(float64(serverBytes+clientBytes)/float64(n), "B/conn")
	b.ReportMetric(float64(g1-g0+clientG)/float64(n), "goroutines/conn")
}
