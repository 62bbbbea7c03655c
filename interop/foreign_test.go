package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// The Go client against interop/js/foreign/server.mjs: a server written in Node from
// the lesson's shape, with no notion of net/rpc.

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

// startForeign starts the foreign server for the length of the test and returns its
// WebSocket URL.
func startForeign(t *testing.T) string {
	t.Helper()
	node := needNode(t)
	needNodeModules(t)
	ctx, kill := context.WithCancel(context.Background())
	cmd := command(ctx, jsDir, node, "foreign/server.mjs")
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		t.Fatal(err)
	}
	out := &lineWriter{first: make(chan struct{})}
	var stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatalf("starting the foreign server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("the foreign server did not stop when its stdin closed; killing it")
			kill()
			<-exited
		}
		kill()
	})

	select {
	case <-out.first:
	case err := <-exited:
		t.Fatalf("the foreign server exited: %v\n%s%s", err, out.String(), stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("the foreign server did not say where it listens within 15 s\n%s", stderr.String())
	}
	line := strings.TrimSpace(out.String())
	url, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		t.Fatalf("the foreign server said %q, want \"listening ws://...\"", line)
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

func TestForeign(t *testing.T) {
	t.Parallel()
	url := startForeign(t)

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
		cases := []struct {
			method      string
			args        any
			code, msg   string
			stockAsText string // the stock Call's error text
		}{
			{"User.Get", userID{"999"}, "NotFound", "no user 999", "[NotFound] no user 999"},
			{"User.Save", user{}, "TypeError", "id must be a non-empty string", "[TypeError] id must be a non-empty string"},
			{"Nope.Get", nil, "MethodNotFound", "no method nope.get", "[MethodNotFound] no method nope.get"},
		}
		for _, tc := range cases {
			var reply json.RawMessage
			err := c.Call(tc.method, tc.args, &reply)
			e, ok := codec.AsError(err)
			if !ok || e.Code != tc.code || e.Message != tc.msg {
				t.Errorf("Call(%s) error = %v, want code %q message %q", tc.method, err, tc.code, tc.msg)
			}
			if err == nil || err.Error() != tc.stockAsText {
				t.Errorf("Call(%s) error text = %v, want %q", tc.method, err, tc.stockAsText)
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
		// The foreign server handles a connection's frames in order, but its methods
		// are async: ask until the save has landed, a bounded number of times.
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
