package redis_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestConformance(t *testing.T) {
	srv := StartServer(t)
	brokertest.Run(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func TestRestart(t *testing.T) {
	srv := StartServer(t)
	brokertest.Restart(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, srv.Restart)
}

func newBroker(t *testing.T, url string) rpcws.Broker {
	b, err := redis.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Server is a redis-server process on a free loopback port, without
// persistence, stopped at cleanup.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	t    *testing.T
}

// URL returns the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// StartServer starts redis-server, or skips the test (fails it under CI)
// when it is not installed.
func StartServer(t *testing.T) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("redis-server is not installed, and CI needs it: apt-get install redis-server")
			}
			t.Skip("redis-server is not installed (apt-get install redis-server); set CI to make this a failure")
		}
		bin = "/usr/bin/redis-server"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Addr: addr, t: t}
	s.start(bin)
	t.Cleanup(s.stop)
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	var out testutil.SyncBuffer
	s.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.t.TempDir(), "--daemonize", "no")
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			fmt.Fprintf(c, "PING\r\n")
			buf := make([]byte, 7)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			s.t.Fatalf("redis-server does not answer on %s: %s", s.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart kills the server and starts it again on the same port.
func (s *Server) Restart(t *testing.T) {
	bin := s.cmd.Path
	s.stop()
	s.start(bin)
}
