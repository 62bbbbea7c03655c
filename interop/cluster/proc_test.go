package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// node is one replica that a recovery test can stop and start again on the
// same address: a child process of the server's binary, or, for the
// in-process broker, a server in the test's own process.
type node interface {
	URL() string       // ws://127.0.0.1:port/rpc
	Kill(t *testing.T) // stops it at once: SIGKILL, nothing said to anyone
	Term(t *testing.T) // stops it gracefully, as SIGTERM does, and waits until it is gone
	Start(t *testing.T)
}

// buildServer builds the cluster server's binary into dir, once for all
// the subtests that ask, and returns its path.
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "cluster")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a replica running as a child process.
type proc struct {
	bin  string
	args []string
	addr string // 127.0.0.1:port, learnt at the first start

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	log    *testutil.SyncBuffer
}

// listening is the line the server logs once it listens.
var listening = regexp.MustCompile(`websocket=ws://(127\.0\.0\.1:[0-9]+)/rpc`)

// startProc starts the binary with args, on a free port, and stops it at
// t's cleanup.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{bin: bin, args: args, addr: "127.0.0.1:0"}
	p.Start(t)
	t.Cleanup(func() {
		if p.running() {
			p.Kill(t)
		}
		if t.Failed() {
			t.Logf("replica %s's log:\n%s", p.addr, p.log.String())
		}
	})
	return p
}

func (p *proc) URL() string { return "ws://" + p.addr + "/rpc" }

// Start starts the process and waits until it listens: its first start
// takes a free port, later ones the same.
func (p *proc) Start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(p.bin, append([]string{"-addr", p.addr}, p.args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if p.log == nil {
		p.log = new(testutil.SyncBuffer)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	addr := make(chan string, 1)
	go func(exited chan struct{}) {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.log.Write(append(sc.Bytes(), '\n'))
			if m := listening.FindSubmatch(sc.Bytes()); m != nil {
				select {
				case addr <- string(m[1]):
				default:
				}
			}
		}
		cmd.Wait()
		close(exited)
	}(p.exited)
	select {
	case a := <-addr:
		p.addr = a
	case <-p.exited:
		t.Fatalf("replica exited before it listened:\n%s", p.log.String())
	case <-time.After(wait):
		p.Kill(t)
		t.Fatalf("replica did not listen within %v:\n%s", wait, p.log.String())
	}
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *proc) Kill(t *testing.T) { p.stop(t, syscall.SIGKILL) }

// Term sends SIGTERM and waits until the process has shut down.
func (p *proc) Term(t *testing.T) { p.stop(t, syscall.SIGTERM) }

func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(wait):
		p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("replica %s did not exit within %v of %v", p.addr, wait, sig)
	}
}

// memNode is a replica in the test's process on the in-process broker: the
// replicas of one process share one bus. Its Kill is a shutdown that gives
// requests no time, the nearest a process can come to dying.
type memNode struct {
	bus  *rpcws.MemoryBus
	opts options
	addr string
	wrap func(http.Handler) http.Handler // if set, serves in front of the server

	srv  *server
	hs   *http.Server
	done chan struct{} // closed when hs.Serve returns
}

func startMemNode(t *testing.T, bus *rpcws.MemoryBus, opts options) *memNode {
	t.Helper()
	return startMemNodeWrapped(t, bus, opts, nil)
}

// startMemNodeWrapped is startMemNode with wrap in front of the server.
func startMemNodeWrapped(t *testing.T, bus *rpcws.MemoryBus, opts options, wrap func(http.Handler) http.Handler) *memNode {
	t.Helper()
	n := &memNode{bus: bus, opts: opts, addr: "127.0.0.1:0", wrap: wrap}
	n.Start(t)
	t.Cleanup(func() {
		if n.srv != nil {
			n.Kill(t)
		}
	})
	return n
}

func (n *memNode) URL() string { return "ws://" + n.addr + "/rpc" }

func (n *memNode) Start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	opts := n.opts
	opts.Broker = n.bus.NewBroker()
	n.srv = newServer(opts)
	var h http.Handler = n.srv
	if n.wrap != nil {
		h = n.wrap(h)
	}
	n.hs = &http.Server{Handler: h}
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		n.hs.Serve(ln)
	}()
}

func (n *memNode) Kill(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.shutdown(t, ctx)
}

func (n *memNode) Term(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	n.shutdown(t, ctx)
}

func (n *memNode) shutdown(t *testing.T, ctx context.Context) {
	t.Helper()
	n.hs.Shutdown(ctx)
	if err := n.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("shutdown: %v", err)
	}
	n.hs.Close()
	<-n.done
	n.srv = nil
}

// urlsOf returns the nodes' URLs.
func urlsOf[N node](nodes []N) []string {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL())
	}
	return urls
}

// hostOf is a ws:// URL's host:port.
func hostOf(url string) string {
	return strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/rpc")
}
