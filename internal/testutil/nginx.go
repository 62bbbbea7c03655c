package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// Nginx is an nginx process that a test started with [StartNginx].
type Nginx struct {
	Addr string // where it listens, 127.0.0.1:port
	Dir  string // its prefix: configuration, error log, temporary files
}

// ErrorLog returns what nginx wrote to its error log so far.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return string(b)
}

// StartNginx starts nginx with the configuration that the template in
// tmplPath makes of data: data's Dir and Listen entries are set to nginx's
// prefix and to a free 127.0.0.1 address. It waits until nginx accepts
// connections, stops it at cleanup (logging its error log if the test
// failed), and skips the test when nginx is not installed, or fails it
// under CI.
func StartNginx(t testing.TB, tmplPath string, data map[string]any) *Nginx {
	t.Helper()
	bin := nginxPath(t)
	tmpl, err := template.ParseFiles(tmplPath)
	if err != nil {
		t.Fatal(err)
	}
	// nginx binds a port of its own: take a free one, and try again if
	// another process takes it first.
	var lastErr error
	for range 5 {
		n := &Nginx{Addr: FreeAddr(t), Dir: t.TempDir()}
		data["Dir"], data["Listen"] = n.Dir, n.Addr
		var conf bytes.Buffer
		if err := tmpl.Execute(&conf, data); err != nil {
			t.Fatal(err)
		}
		confPath := filepath.Join(n.Dir, "nginx.conf")
		if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if lastErr = n.run(t, bin, confPath); lastErr == nil {
			return n
		}
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return nil
}

// nginxPath returns nginx's path, or skips t (fails it under CI) when it is
// not installed.
func nginxPath(t testing.TB) string {
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

// run starts nginx and waits, 10 s at most, until it accepts connections;
// it returns an error if nginx exits first.
func (n *Nginx) run(t testing.TB, bin, confPath string) error {
	var stderr SyncBuffer
	cmd := exec.Command(bin, "-p", n.Dir, "-e", filepath.Join(n.Dir, "error.log"), "-c", confPath)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM) // fast shutdown
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
			return fmt.Errorf("nginx exited: %v: %s%s", err, stderr.String(), n.ErrorLog())
		default:
		}
		c, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err == nil {
			c.Close()
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("nginx error log:\n%s", n.ErrorLog())
				}
			})
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("nginx does not accept connections on %s: %s%s", n.Addr, stderr.String(), n.ErrorLog())
		}
		time.Sleep(10 * time.Millisecond) // nginx announces nothing: poll, within the deadline
	}
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
