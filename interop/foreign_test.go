package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// The Go client and the JavaScript client against the foreign servers: written from the
// lesson's shape with no notion of net/rpc, in Node (interop/js/foreign/server.mjs) and
// in Python (interop/foreign-py/server.py).

type userID struct {
	ID string `json:"id"`
}

type user struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// lineWriter collects a process's output and closes first once a whole line is in.
type lineWriter struct {
	testutil.SyncBuffer
	once  sync.Once
	first chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n, err := w.SyncBuffer.Write(p)
	if bytes.IndexByte(p, '\n') >= 0 {
		w.once.Do(func() { close(w.first) })
	}
	return n, err
}

// startForeign starts the Node foreign server (interop/js/foreign/server.mjs) for the
// length of the test and returns its WebSocket URL.
func startForeign(t *testing.T) string {
	t.Helper()
	node := needNode(t)
	needNodeModules(t)
	return startListening(t, "the Node foreign server", jsDir, node, "foreign/server.mjs")
}

// pythonServer is the Python foreign server, relative to this package's directory.
var pythonServer = filepath.Join("foreign-py", "server.py")

// python is Debian's python3, which has python3-aiohttp; the python3 on PATH may be
// another one.
const python = "/usr/bin/python3"

// needPython returns the path of a python3 that has aiohttp, or skips the test (fails
// it under CI) saying how to install it.
func needPython(t *testing.T) string {
	t.Helper()
	const install = "apt-get install -y python3-aiohttp"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "import aiohttp").CombinedOutput()
	if err == nil {
		return python
	}
	why := strings.TrimSpace(string(out))
	if why == "" {
		why = err.Error()
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s cannot import aiohttp (%s), and CI is set: %s", python, why, install)
	}
	t.Skipf("%s cannot import aiohttp (%s); skipping (install it: %s)", python, why, install)
	return ""
}

// startPython starts the Python foreign server in script for the length of the test
// and returns its WebSocket URL.
func startPython(t *testing.T, script string) string {
	t.Helper()
	py := needPython(t)
	abs, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	return startListening(t, "the Python foreign server", ".", py, abs)
}

// startListening starts a server process that prints "listening ws://..." on stdout
// once ready and stops when its stdin closes; it stops it at the end of the test and
// returns the URL.
func startListening(t *testing.T, what, dir, name string, args ...string) string {
	t.Helper()
	ctx, kill := context.WithCancel(context.Background())
	cmd := command(ctx, dir, name, args...)
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		t.Fatal(err)
	}
	out := &lineWriter{first: make(chan struct{})}
	var stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatalf("starting %s: %v", what, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("%s did not stop when its stdin closed; killing it", what)
			kill()
			<-exited
		}
		kill()
		if t.Failed() && stderr.String() != "" {
			t.Logf("%s wrote:\n%s", what, stderr.String())
		}
	})

	select {
	case <-out.first:
	case err := <-exited:
		t.Fatalf("%s exited: %v\n%s%s", what, err, out.String(), stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not say where it listens within 15 s\n%s", what, stderr.String())
	}
	line := strings.TrimSpace(out.String())
	url, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		t.Fatalf("%s said %q, want \"listening ws://...\"", what, line)
	}
	return url
}

// dialForeign dials the foreign server with opts and closes the client at the end.
func dialForeign(t *testing.T, url string, opts *rpcws.DialOptions) *rpcws.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// An errorCase is a call that fails, with the code and message that a server sends.
type errorCase struct {
	method    string
	args      any
	code, msg string
}

// The Go client against each foreign server: the Node one and the Python one.
func TestForeign(t *testing.T) {
	t.Parallel()
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		testForeign(t, startForeign(t), []errorCase{
			{"User.Get", userID{"999"}, "NotFound", "no user 999"},
			{"User.Save", user{}, "TypeError", "id must be a non-empty string"},
			{"Nope.Get", nil, "MethodNotFound", "no method nope.get"},
		})
	})
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		testForeign(t, startPython(t, pythonServer), []errorCase{
			{"User.Get", userID{"999"}, "NotFound", "user '999' not found"},
			{"User.Save", user{}, "InvalidParams", "a user needs an id"},
			{"Nope.Get", nil, "MethodNotFound", "'nope.get' names no method"},
		})
	})
}

// testForeign runs the Go client against the foreign server at url; errs are calls
// that fail in that server's words.
func testForeign(t *testing.T, url string, errs []errorCase) {
	t.Run("User.Get reaches user.get", func(t *testing.T) {
		t.Parallel()
		c := dialForeign(t, url, nil)
		var u user
		if err := c.Call("User.Get", userID{"123"}, &u); err != nil {
			t.Fatalf("Call(User.Get): %v", err)
		}
		if want := (user{"123", "Ada Lovelace"}); u != want {
			t.Errorf("Call(User.Get) = %+v, want %+v", u, want)
		}
		u = user{}
		if err := c.CallContext(context.Background(), "User.Get", userID{"123"}, &u); err != nil || u.Name != "Ada Lovelace" {
			t.Errorf("CallContext(User.Get) = %+v, %v; want Ada Lovelace", u, err)
		}
	})

	t.Run("User.Save then User.Get", func(t *testing.T) {
		t.Parallel()
		c := dialForeign(t, url, nil)
		want := user{"go-1", "Grace Hopper"}
		var saved, got user
		if err := c.Call("User.Save", want, &saved); err != nil || saved != want {
			t.Fatalf("Call(User.Save) = %+v, %v; want %+v", saved, err, want)
		}
		if err := c.Call("User.Get", userID{"go-1"}, &got); err != nil || got != want {
			t.Errorf("Call(User.Get) = %+v, %v; want %+v", got, err, want)
		}
	})

	t.Run("errors keep code and message", func(t *testing.T) {
		t.Parallel()
		c := dialForeign(t, url, nil)
		for _, tc := range errs {
			var reply json.RawMessage
			err := c.Call(tc.method, tc.args, &reply)
			e, ok := codec.AsError(err)
			if !ok || e.Code != tc.code || e.Message != tc.msg {
				t.Errorf("Call(%s) error = %v, want code %q message %q", tc.method, err, tc.code, tc.msg)
			}
			if stock := "[" + tc.code + "] " + tc.msg; err == nil || err.Error() != stock { // the stock Call's error text
				t.Errorf("Call(%s) error text = %v, want %q", tc.method, err, stock)
			}
			err = c.CallContext(context.Background(), tc.method, tc.args, &reply)
			var ce *codec.Error
			if !errors.As(err, &ce) || ce.Code != tc.code || ce.Message != tc.msg {
				t.Errorf("CallContext(%s) error = %#v, want *codec.Error{%q, %q}", tc.method, err, tc.code, tc.msg)
			}
		}
	})

	t.Run("a method that never replies times out", func(t *testing.T) {
		t.Parallel()
		c := dialForeign(t, url, &rpcws.DialOptions{Timeout: 200 * time.Millisecond})
		start := time.Now()
		err := c.Call("Demo.Never", nil, new(json.RawMessage))
		if e, ok := codec.AsError(err); !ok || e.Code != codec.CodeTimeout || err.Error() != "timeout: demo.never" {
			t.Errorf("Call(Demo.Never) error = %v, want code Timeout and text %q", err, "timeout: demo.never")
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
			t.Errorf("Call(Demo.Never) gave up after %v, want about 200ms", d)
		}
		err = c.CallContext(context.Background(), "Demo.Never", nil, new(json.RawMessage))
		if !errors.Is(err, rpcws.ErrTimeout) {
			t.Errorf("CallContext(Demo.Never) error = %v, want errors.Is ErrTimeout", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err = c.CallContext(ctx, "Demo.Never", nil, new(json.RawMessage))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CallContext(Demo.Never) with a 50ms context: error = %v, want context.DeadlineExceeded", err)
		}
		var u user
		if err := c.Call("User.Get", userID{"123"}, &u); err != nil || u.ID != "123" {
			t.Errorf("after the timeouts, Call(User.Get) = %+v, %v; want user 123", u, err)
		}
	})

	t.Run("a late reply is dropped", func(t *testing.T) {
		t.Parallel()
		// The server pushes demo.late.sent right after its late reply: once the event
		// is here, the client has read the reply too.
		sent := make(chan json.RawMessage, 1)
		c := dialForeign(t, url, &rpcws.DialOptions{
			Timeout: 100 * time.Millisecond,
			OnEvent: func(typ string, data json.RawMessage) {
				if typ == "demo.late.sent" {
					sent <- data
				}
			},
		})
		reply := struct{ Ms int }{Ms: -1}
		err := c.CallContext(context.Background(), "Demo.Late", map[string]int{"ms": 400}, &reply)
		if !errors.Is(err, rpcws.ErrTimeout) || err.Error() != "timeout: demo.late" {
			t.Fatalf("CallContext(Demo.Late) error = %v, want timeout: demo.late", err)
		}
		select {
		case <-sent:
		case <-time.After(10 * time.Second):
			t.Fatal("no demo.late.sent event within 10 s")
		}
		if reply.Ms != -1 {
			t.Errorf("the late reply was written into the reply: %+v", reply)
		}
		if got := c.Stats().LateReplies; got != 1 {
			t.Errorf("Stats().LateReplies = %d, want 1", got)
		}
		var u user
		if err := c.Call("User.Get", userID{"123"}, &u); err != nil || u.ID != "123" {
			t.Errorf("after the late reply, Call(User.Get) = %+v, %v; want user 123", u, err)
		}
	})

	t.Run("events do not disturb replies", func(t *testing.T) {
		t.Parallel()
		const count, callers = 200, 20
		events := make(chan int, count)
		c := dialForeign(t, url, &rpcws.DialOptions{
			OnEvent: func(typ string, data json.RawMessage) {
				var ev struct{ N int }
				if typ != "demo.chat" || json.Unmarshal(data, &ev) != nil {
					t.Errorf("OnEvent(%q, %s): want demo.chat {n}", typ, data)
					return
				}
				select {
				case events <- ev.N:
				default:
					t.Errorf("more than %d events", count)
				}
			},
		})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var echo map[string]int
				if err := c.Call("Demo.Echo", map[string]int{"i": i}, &echo); err != nil || echo["i"] != i {
					t.Errorf("Call(Demo.Echo, %d) = %v, %v", i, echo, err)
				}
			}()
		}
		var reply struct{ Count int }
		if err := c.Call("Demo.Chatty", map[string]int{"count": count}, &reply); err != nil || reply.Count != count {
			t.Errorf("Call(Demo.Chatty) = %+v, %v; want count %d", reply, err, count)
		}
		wg.Wait()
		// The events came before the reply; OnEvent, on a goroutine of its own, may
		// still be delivering the last ones.
		timeout := time.After(10 * time.Second)
		for want := 1; want <= count; want++ {
			select {
			case n := <-events:
				if n != want {
					t.Fatalf("event n = %d, want %d: events out of order", n, want)
				}
			case <-timeout:
				t.Fatalf("got %d demo.chat events within 10 s, want %d", want-1, count)
			}
		}
	})

	t.Run("a dropped connection fails pending calls at once", func(t *testing.T) {
		t.Parallel()
		c := dialForeign(t, url, &rpcws.DialOptions{Timeout: 30 * time.Second})
		never := c.Go("Demo.Never", nil, new(json.RawMessage), nil)
		start := time.Now()
		err := c.Call("Demo.Drop", nil, new(json.RawMessage))
		if code := codec.ErrorCode(err); code != codec.CodeDisconnected {
			t.Errorf("Call(Demo.Drop) error = %v (code %q), want code Disconnected", err, code)
		}
		select {
		case <-never.Done:
			if code := codec.ErrorCode(never.Error); code != codec.CodeDisconnected {
				t.Errorf("pending Demo.Never error = %v (code %q), want code Disconnected", never.Error, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("pending Demo.Never still waiting 10 s after the connection dropped")
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("calls failed after %v, want at once", d)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Error("Done not closed 5 s after the connection dropped")
		}
	})

	t.Run("a notification runs the method", func(t *testing.T) {
		t.Parallel()
		c := dialForeign(t, url, nil)
		want := user{"go-notified", "Katherine Johnson"}
		if err := c.Notify(context.Background(), "User.Save", want); err != nil {
			t.Fatalf("Notify(User.Save): %v", err)
		}
		// The foreign servers run a connection's requests concurrently: ask until the
		// save has landed, a bounded number of times.
		for attempt := 1; ; attempt++ {
			var got user
			err := c.Call("User.Get", userID{want.ID}, &got)
			if err == nil && got == want {
				break
			}
			if attempt == 100 {
				t.Fatalf("after Notify(User.Save), Call(User.Get) = %+v, %v; want %+v", got, err, want)
			}
		}
	})
}

// The JavaScript client's interop suite, scenarios and transcripts at the default
// level, against the Python server.
func TestForeignPythonJSClient(t *testing.T) {
	t.Parallel()
	url := startPython(t, pythonServer)
	// aiohttp closes a connection that sends invalid UTF-8 with 1007 before
	// the server's code sees the frame: a known deviation (see
	// TestConformanceForeignServers).
	out := nodeTest(t, 2*time.Minute, []string{"RPCWS_URL=" + url, "RPCWS_STRICT=0", "RPCWS_DEVIATIONS=utf8"}, "test/scenarios.test.mjs", "test/transcripts.test.mjs")
	if !strings.Contains(out, "\u2139 fail 0") {
		t.Errorf("the node test run did not report 0 failures")
	}
	if !strings.Contains(out, "known deviation") {
		t.Errorf("the utf8 check did not fail as the known deviation says")
	}
	if strings.Contains(out, "target lacks") {
		t.Errorf("a check was skipped for a service the Python server has")
	}
}
