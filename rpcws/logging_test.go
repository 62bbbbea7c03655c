package rpcws_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// levelOf returns the level of the first record whose line contains every
// one of parts; the test fails if there is none.
func (l *logRecorder) levelOf(parts ...string) slog.Level {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		if containsAll(b.String(), parts) {
			return r.Level
		}
	}
	return slog.Level(-100)
}

// above returns the lines logged at level or above.
func (l *logRecorder) above(level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level >= level {
			out = append(out, r.Level.String()+" "+r.Message)
		}
	}
	return out
}

// A plain HTTP request to the endpoint (a health check, curl) is routine:
// it gets 426 and a line at Debug, nothing louder.
func TestPlainRequestLogsAtDebug(t *testing.T) {
	t.Parallel()
	logs := newLogRecorder()
	s := newServer(t, &rpcws.HandlerOptions{Logger: slog.New(logs)})
	resp, err := http.Get("http" + strings.TrimPrefix(s.url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: got %d, want %d", resp.StatusCode, http.StatusUpgradeRequired)
	}
	logs.wait(t, "rpcws: refused an upgrade", "Upgrade")
	if got := logs.levelOf("rpcws: refused an upgrade"); got != slog.LevelDebug {
		t.Errorf("level: got %v, want DEBUG", got)
	}
	if loud := logs.above(slog.LevelInfo); len(loud) > 0 {
		t.Errorf("lines at Info or above for a plain GET: %q", loud)
	}
}

// An upgrade refused while the handler shuts down is routine too.
func TestShutdownRefusalLogsAtDebug(t *testing.T) {
	t.Parallel()
	logs := newLogRecorder()
	s := newServer(t, &rpcws.HandlerOptions{Logger: slog.New(logs)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dialStatus(t, s.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("status: got %d, want 503", got)
	}
	logs.wait(t, "rpcws: refused an upgrade", "shutting down")
	if got := logs.levelOf("rpcws: refused an upgrade", "shutting down"); got != slog.LevelDebug {
		t.Errorf("level: got %v, want DEBUG", got)
	}
}

// Without a Logger the handler logs to slog's default logger, so that a
// page refused for its origin leaves a trace where a newcomer looks.
func TestDefaultLogger(t *testing.T) {
	// Not parallel: it swaps the process's default loggers.
	logs := newLogRecorder()
	oldSlog, oldOut, oldFlags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slog.New(logs))
	t.Cleanup(func() {
		slog.SetDefault(oldSlog)
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
	})
	s := newServer(t, nil)
	if got := dialStatus(t, s.url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}}); got != http.StatusForbidden {
		t.Fatalf("cross-origin: got %d, want 403", got)
	}
	logs.wait(t, "rpcws: refused an upgrade", "evil.example")
	if got := logs.levelOf("rpcws: refused an upgrade", "evil.example"); got != slog.LevelWarn {
		t.Errorf("level: got %v, want WARN", got)
	}
}

// A discarding logger silences the handler.
func TestDiscardLogger(t *testing.T) {
	logs := newLogRecorder()
	oldSlog, oldOut, oldFlags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slog.New(logs))
	t.Cleanup(func() {
		slog.SetDefault(oldSlog)
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
	})
	s := newServer(t, &rpcws.HandlerOptions{Logger: slog.New(slog.DiscardHandler)})
	if got := dialStatus(t, s.url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}}); got != http.StatusForbidden {
		t.Fatalf("cross-origin: got %d, want 403", got)
	}
	c := s.dial(t, nil)
	if err := c.Notify(context.Background(), "Test.Plain", &Args{}); err != nil {
		t.Fatal(err)
	}
	var got int
	if err := c.Call("Test.Multiply", &Args{2, 2}, &got); err != nil {
		t.Fatal(err)
	}
	if lines := logs.lines(); len(lines) > 0 {
		t.Fatalf("lines in the default logger: got %q, want none", lines)
	}
}

// HandlerOptions.PlainError reaches the codec: a plain error's text stays
// on the server, and a coded error goes out as it is.
func TestHandlerPlainError(t *testing.T) {
	t.Parallel()
	logs := newLogRecorder()
	s := newServer(t, &rpcws.HandlerOptions{PlainError: codec.HidePlainErrors(slog.New(logs))})
	c := s.dial(t, nil)
	var got int
	err := c.CallContext(context.Background(), "Test.Plain", &Args{}, &got)
	var e *codec.Error
	if !errors.As(err, &e) || e.Code != codec.CodeServerError || e.Message != codec.PlainErrorMessage {
		t.Fatalf("got %v, want [ServerError] %s", err, codec.PlainErrorMessage)
	}
	logs.wait(t, "type=test.plain", "something broke")
	if got := logs.levelOf("type=test.plain"); got != slog.LevelError {
		t.Errorf("level: got %v, want ERROR", got)
	}
}
