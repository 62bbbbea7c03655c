package rpcws_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// logRecorder is a slog.Handler that keeps the records it gets.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
	signal  chan struct{} // one token after each record
}

func newLogRecorder() *logRecorder { return &logRecorder{signal: make(chan struct{}, 1)} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// lines returns the records so far, each as its message followed by its
// attributes as key=value.
func (l *logRecorder) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// wait waits for a line that contains every one of parts.
func (l *logRecorder) wait(t *testing.T, parts ...string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		for _, line := range l.lines() {
			if containsAll(line, parts) {
				return
			}
		}
		select {
		case <-l.signal:
		case <-timeout:
			t.Fatalf("no log line with %q; got:\n%s", parts, strings.Join(l.lines(), "\n"))
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Refused upgrades, for every reason, get a log line.
func TestLogRefusedUpgrades(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   rpcws.HandlerOptions
		header http.Header
		query  string
		status int
		line   []string // what the log line says
		level  slog.Level
	}{
		{
			name:   "cross-origin",
			header: http.Header{"Origin": {"http://evil.example"}},
			status: http.StatusForbidden,
			line:   []string{"rpcws: refused an upgrade", "remote=127.0.0.1:", "evil.example", "not authorized"},
			level:  slog.LevelWarn,
		},
		{
			name:   "Authorize",
			opts:   rpcws.HandlerOptions{Authorize: authorize},
			query:  "?token=t-mallory",
			status: http.StatusForbidden,
			line:   []string{"rpcws: refused an upgrade", "remote=127.0.0.1:", "unknown token t-mallory"},
			level:  slog.LevelWarn,
		},
		{
			name:   "at capacity",
			opts:   rpcws.HandlerOptions{MaxConns: -1}, // filled below
			status: http.StatusServiceUnavailable,
			line:   []string{"rpcws: refused an upgrade", "remote=127.0.0.1:", "capacity"},
			level:  slog.LevelError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := newLogRecorder()
			tt.opts.Logger = slog.New(logs)
			full := tt.opts.MaxConns == -1
			if full {
				tt.opts.MaxConns = 1
			}
			s := newServer(t, &tt.opts)
			if full {
				s.dial(t, nil)
			}
			got := dialStatus(t, s.url+tt.query, &websocket.DialOptions{HTTPHeader: tt.header})
			if got != tt.status {
				t.Fatalf("status: got %d, want %d", got, tt.status)
			}
			logs.wait(t, tt.line...)
			if got := logs.levelOf(tt.line...); got != tt.level {
				t.Errorf("level: got %v, want %v", got, tt.level)
			}
		})
	}
}

// A notification that fails gets a log line, as it can get no reply.
func TestLogFailedNotifications(t *testing.T) {
	t.Parallel()
	logs := newLogRecorder()
	s := newServer(t, &rpcws.HandlerOptions{Logger: slog.New(logs)})
	c := s.dial(t, nil)
	ctx := context.Background()
	if err := c.Notify(ctx, "Test.Plain", &Args{}); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, "notification failed", "type=test.plain", "code=ServerError", "something broke")
	if err := c.Notify(ctx, "Test.Nope", &Args{}); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, "notification failed", "type=test.nope", "code=MethodNotFound")
	if err := c.Notify(ctx, "Test.Multiply", "not args"); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, "notification failed", "type=test.multiply", "code=InvalidParams")
	ws := dialRaw(t, s.url, nil)
	writeText(t, ws, `{"type":42}`)
	logs.wait(t, "dropped a notification", "code=BadRequest")
	// A notification that succeeds is not logged.
	before := len(logs.lines())
	if err := c.Notify(ctx, "Test.Note", "fine"); err != nil {
		t.Fatal(err)
	}
	<-s.noted
	var got int
	if err := c.Call("Test.Multiply", &Args{1, 1}, &got); err != nil { // the notification's reply path is done
		t.Fatal(err)
	}
	if after := logs.lines(); len(after) != before {
		t.Fatalf("log lines after a good notification: got %q, want none", after[before:])
	}
}

// OnCall sees every served request: its type as sent, whether it was a
// notification, how long it took and its code.
func TestOnCall(t *testing.T) {
	t.Parallel()
	calls := make(chan codec.CallInfo, 100)
	s := newServer(t, &rpcws.HandlerOptions{OnCall: func(ci codec.CallInfo) { calls <- ci }})
	c := s.dial(t, nil)
	ws := dialRaw(t, s.url, nil)
	const hold = 50 * time.Millisecond
	tests := []struct {
		name string
		send func(t *testing.T)
		want codec.CallInfo // Duration: the least expected
	}{
		{"success", func(t *testing.T) { c.Call("Test.Multiply", &Args{2, 3}, new(int)) },
			codec.CallInfo{Type: "test.multiply"}},
		{"coded error", func(t *testing.T) { c.Call("Test.Coded", &Args{}, new(int)) },
			codec.CallInfo{Type: "test.coded", Code: "OutOfRange"}},
		{"plain error", func(t *testing.T) { c.Call("Test.Plain", &Args{}, new(int)) },
			codec.CallInfo{Type: "test.plain", Code: codec.CodeServerError}},
		{"no such method", func(t *testing.T) { c.Call("Test.Nope", &Args{}, new(int)) },
			codec.CallInfo{Type: "test.nope", Code: codec.CodeMethodNotFound}},
		{"invalid params", func(t *testing.T) { c.Call("Test.Multiply", "not args", new(int)) },
			codec.CallInfo{Type: "test.multiply", Code: codec.CodeInvalidParams}},
		{"notification", func(t *testing.T) { c.Notify(context.Background(), "Test.Note", "hi"); <-s.noted },
			codec.CallInfo{Type: "test.note", Notification: true}},
		{"type as sent", func(t *testing.T) {
			writeText(t, ws, `{"id":1,"type":"Test.Multiply","data":{"A":1,"B":1}}`)
			readReply(t, ws, "1")
		}, codec.CallInfo{Type: "Test.Multiply"}},
		{"slow call", func(t *testing.T) {
			call := c.Go("Test.Gate", 1, new(int), make(chan *rpc.Call, 1))
			s.waitArrived(t, 1)
			<-time.After(hold)
			s.release(1)
			waitCall(t, call)
		}, codec.CallInfo{Type: "test.gate", Duration: hold}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.send(t)
			var got codec.CallInfo
			select {
			case got = <-calls:
			case <-time.After(10 * time.Second):
				t.Fatal("OnCall was not called")
			}
			if got.Type != tt.want.Type || got.Notification != tt.want.Notification || got.Code != tt.want.Code {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.Duration < tt.want.Duration || got.Duration <= 0 || got.Duration > 10*time.Second {
				t.Fatalf("duration: got %v, want at least %v", got.Duration, tt.want.Duration)
			}
		})
	}
	select {
	case ci := <-calls:
		t.Fatalf("OnCall called once too often: %+v", ci)
	default:
	}
}
