package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
)

// The routing test again, through nginx in front of the three replicas:
// nginx spreads the 30 clients over them, and the broker joins them.
func TestBehindNginx(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 3)
			var addrs []string
			for _, r := range c.replicas {
				addrs = append(addrs, strings.TrimPrefix(r.hs.URL, "http://"))
			}
			p := startProxy(t, addrs)
			routing(t, []string{"ws://" + p + "/rpc"})
			for i, r := range c.replicas {
				if n := r.srv.rpc.NumConns(); n == 0 {
					t.Errorf("replica %d served no connection: nginx did not spread them", i)
				}
			}
		})
	}
}

// nginxPath returns nginx's path, or skips the test (fails it under CI)
// when it is not installed.
func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx is not installed, and CI needs it: apt-get install nginx")
	}
	t.Skip("nginx is not installed (apt-get install nginx); set CI to make this a failure")
	return ""
}

// startProxy starts nginx with nginx.conf.tmpl in front of the replicas,
// stops it at cleanup, and returns its address.
func startProxy(t *testing.T, replicas []string) string {
	t.Helper()
	bin := nginxPath(t)
	tmpl, err := template.ParseFiles("nginx.conf.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	// nginx binds a port of its own: take a free one, and retry if another
	// process takes it first.
	var lastErr error
	for range 5 {
		dir := t.TempDir()
		addr := freePort(t)
		var conf bytes.Buffer
		if err := tmpl.Execute(&conf, map[string]any{"Dir": dir, "Listen": addr, "Replicas": replicas}); err != nil {
			t.Fatal(err)
		}
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if lastErr = runNginx(t, bin, dir, confPath, addr); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return ""
}

// runNginx starts nginx and waits until it accepts connections; it returns
// an error if nginx exits first.
func runNginx(t *testing.T, bin, dir, confPath, addr string) error {
	var stderr testutil.SyncBuffer
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(b)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("nginx exited: %v: %s%s", err, stderr.String(), errorLog())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("nginx error log:\n%s", errorLog())
				}
			})
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("nginx does not accept connections on %s: %s%s", addr, stderr.String(), errorLog())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a 127.0.0.1 address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
