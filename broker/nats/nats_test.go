package nats_test

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/broker/nats"
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
	b, err := nats.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Server is a nats-server process on a free loopback port, without
// JetStream or persistence, stopped at cleanup.
type Server struct {
	Addr string
	bin  string
	cmd  *exec.Cmd
	t    *testing.T
}

// URL returns the server's nats:// URL.
func (s *Server) URL() string { return "nats://" + s.Addr }

// StartServer starts nats-server, or skips the test (fails it under CI)
// when it is not installed.
func StartServer(t *testing.T) *Server {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, err := os.Stat("/usr/bin/nats-server"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("nats-server is not installed, and CI needs it: apt-get install nats-server")
			}
			t.Skip("nats-server is not installed (apt-get install nats-server); set CI to make this a failure")
		}
		bin = "/usr/bin/nats-server"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Addr: addr, bin: bin, t: t}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	var out testutil.SyncBuffer
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", port)
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			buf := make([]byte, 4)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "INFO") {
				return
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			s.t.Fatalf("nats-server does not answer on %s: %s", s.Addr, out.String())
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
	s.stop()
	s.start()
}
