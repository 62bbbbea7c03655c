// Package engines starts the pub/sub engines that the brokers' tests and
// benchmarks run against, redis-server and nats-server, as child processes
// on free 127.0.0.1 ports, and stops them. Redis writes nothing to disk;
// NATS runs JetStream (-js) with its store in a temporary directory that
// lives as long as the Server: kept across Restart, emptied by
// RestartEmpty, removed by Stop.
package engines

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNotInstalled is the error of Start when the engine's program is
// missing.
var ErrNotInstalled = errors.New("engines: not installed")

// Kinds of engine.
const (
	Redis = "redis"
	NATS  = "nats"
)

// Server is one engine process.
type Server struct {
	Kind string
	Addr string // 127.0.0.1:port
	bin  string

	mu    sync.Mutex // guards cmd, out and store
	cmd   *exec.Cmd
	out   *buffer
	store string // NATS: JetStream's store directory; "" until started
}

// program returns the path of kind's server program.
func program(kind string) (string, error) {
	name := map[string]string{Redis: "redis-server", NATS: "nats-server"}[kind]
	if name == "" {
		return "", fmt.Errorf("engines: unknown engine %q", kind)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name, nil
	}
	return "", fmt.Errorf("%w: %s (Debian: apt-get install %s)", ErrNotInstalled, name, name)
}

// Start starts an engine of kind on a free port and waits until it answers.
func Start(kind string) (*Server, error) {
	bin, err := program(kind)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Kind: kind, Addr: addr, bin: bin}
	if err := s.start(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartT starts an engine for a test and stops it at cleanup. When the
// engine is not installed it skips the test, or fails it when the
// environment variable CI is set.
func StartT(t testing.TB, kind string) *Server {
	t.Helper()
	s, err := Start(kind)
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v, and CI needs it", err)
		}
		t.Skipf("%v; set CI to make this a failure", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL returns the engine's URL: redis://... or nats://...
func (s *Server) URL() string { return s.Kind + "://" + s.Addr }

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	var args []string
	switch s.Kind {
	case Redis:
		args = []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", os.TempDir(), "--daemonize", "no", "--protected-mode", "yes"}
	case NATS:
		store, err := s.storeDir()
		if err != nil {
			return err
		}
		args = []string{"-a", "127.0.0.1", "-p", port, "-js", "-sd", store}
	}
	out := new(buffer)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd, s.out = cmd, out
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !s.answers() {
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("engines: %s does not answer on %s: %s", s.bin, s.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// answers reports whether the engine speaks on its port: +PONG to a Redis
// PING, the INFO line of NATS.
func (s *Server) answers() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	want := "INFO"
	if s.Kind == Redis {
		want = "+PONG"
		fmt.Fprintf(c, "PING\r\n")
	}
	buf := make([]byte, len(want))
	n, _ := c.Read(buf)
	return strings.HasPrefix(string(buf[:n]), want)
}

// storeDir returns JetStream's store directory, made on first use.
func (s *Server) storeDir() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == "" {
		dir, err := os.MkdirTemp("", "rpcws-nats-*")
		if err != nil {
			return "", err
		}
		s.store = dir
	}
	return s.store, nil
}

// Stop kills the engine, waits for it to exit and removes what it stored.
func (s *Server) Stop() {
	s.kill()
	s.mu.Lock()
	store := s.store
	s.store = ""
	s.mu.Unlock()
	if store != "" {
		os.RemoveAll(store)
	}
}

// kill kills the engine and waits for it to exit.
func (s *Server) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// Restart kills the engine, as a crash would, and starts it again on the
// same port with what it had stored: NATS keeps its JetStream streams and
// buckets (Redis runs without persistence, so it comes back empty).
func (s *Server) Restart() error {
	s.kill()
	return s.start()
}

// RestartEmpty kills the engine and starts it again on the same port
// without anything it stored, as a restart without persistence would:
// NATS loses its JetStream streams and buckets.
func (s *Server) RestartEmpty() error {
	s.Stop()
	return s.start()
}

// Pause stops the engine process (SIGSTOP) without closing its
// connections, as a stalled engine or a frozen machine would, until
// Resume; it resumes it at t's cleanup in any case.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	t.Cleanup(s.Resume)
	s.signal(t, syscall.SIGSTOP)
	s.awaitStopped(t)
}

// awaitStopped waits until every thread of the engine is stopped: a
// signal is delivered asynchronously, and a multi-threaded engine (NATS
// with JetStream) may otherwise answer a request or two after Pause
// returned. Where /proc is missing it returns at once.
func (s *Server) awaitStopped(t testing.TB) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	tasks := fmt.Sprintf("/proc/%d/task", cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for !allStopped(tasks) {
		if time.Now().After(deadline) {
			t.Fatalf("engines: %s not stopped 5s after SIGSTOP", s.bin)
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped reports whether every task under dir (/proc/PID/task) is in
// state T (stopped); true when dir cannot be read.
func allStopped(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// pid (comm) state ...: the state follows the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume lets a paused engine go on (SIGCONT).
func (s *Server) Resume() { s.signal(nil, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Signal(sig); err != nil && t != nil {
		t.Fatal(err)
	}
}

// RestartT is Restart for a test: it fails t on error.
func (s *Server) RestartT(t *testing.T) {
	t.Helper()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
}

// RestartEmptyT is RestartEmpty for a test: it fails t on error.
func (s *Server) RestartEmptyT(t *testing.T) {
	t.Helper()
	if err := s.RestartEmpty(); err != nil {
		t.Fatal(err)
	}
}

// buffer is a bytes buffer that a process may write while it is read.
type buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 64<<10 {
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
