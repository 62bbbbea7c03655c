package rpcws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/interop/refserver"
)

var update = flag.Bool("update", false, "re-record the server frames of testdata/transcripts from the reference server")

const transcriptDir = "../testdata/transcripts"

// frameConn is the client's side of a transcript replay: raw frames.
type frameConn interface {
	send(ctx context.Context, frame string, binary bool) error
	recv(ctx context.Context) (string, error)
}

// TestTranscripts replays every golden transcript against the reference
// server, over the in-memory pipe and over a real WebSocket, and compares
// what the server sends byte for byte.
func TestTranscripts(t *testing.T) {
	scripts, err := testutil.ReadTranscripts(transcriptDir)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		for _, s := range scripts {
			record(t, s)
		}
		return
	}
	transports := map[string]func(t *testing.T) frameConn{
		"pipe":      pipeClient,
		"websocket": wsClient,
	}
	for name, dial := range transports {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, s := range scripts {
				t.Run(s.Name, func(t *testing.T) {
					t.Parallel()
					replay(t, dial(t), s)
				})
			}
		})
	}
}

func replay(t *testing.T, c frameConn, s testutil.Transcript) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, step := range s.Steps {
		if step.Send {
			if err := c.send(ctx, step.Frame, step.Binary); err != nil {
				t.Fatalf("line %d: send: %v", step.Line, err)
			}
			continue
		}
		got, err := c.recv(ctx)
		if err != nil {
			t.Fatalf("line %d: waiting for %s: %v", step.Line, step.Frame, err)
		}
		if got != step.Frame {
			t.Fatalf("line %d:\ngot  %s\nwant %s", step.Line, got, step.Frame)
		}
	}
}

// record re-writes a transcript's "<--" lines with what the reference server
// sends now, keeping each "//~ free" marker after the frame it belongs to (the
// n-th frame after the same sent frame). The frames that follow a sent frame are
// those that arrive before a short quiet spell: good enough for recording, which a
// person then reviews; replay never waits on time.
func record(t *testing.T, s testutil.Transcript) {
	path := filepath.Join(transcriptDir, s.Name+".txt")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(src), "\n")
	// markers[i][n]: the marker lines of the n-th frame after the i-th sent frame.
	markers := map[int]map[int][]string{}
	for sent, n, i := -1, -1, 0; i < len(lines); i++ {
		switch line := lines[i]; {
		case strings.HasPrefix(line, "--> "), strings.HasPrefix(line, "-->binary "):
			sent, n = sent+1, -1
		case strings.HasPrefix(line, "<-- "):
			n++
		case strings.HasPrefix(line, "//~ free "):
			if markers[sent] == nil {
				markers[sent] = map[int][]string{}
			}
			markers[sent][n] = append(markers[sent][n], line)
		}
	}
	c := wsClient(t)
	var out bytes.Buffer
	sent := -1
	for _, line := range lines {
		if strings.HasPrefix(line, "<-- ") || strings.HasPrefix(line, "//~ free ") || line == "" {
			continue
		}
		out.WriteString(line)
		binary := strings.HasPrefix(line, "-->binary ")
		if !binary && !strings.HasPrefix(line, "--> ") {
			continue
		}
		sent++
		frame := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(line, "-->binary "), "--> "), "\n")
		if err := c.send(context.Background(), frame, binary); err != nil {
			t.Fatal(err)
		}
		for n := 0; ; n++ {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			got, err := c.recv(ctx)
			cancel()
			if err != nil {
				break
			}
			fmt.Fprintf(&out, "<-- %s\n", got)
			for _, m := range markers[sent][n] {
				out.WriteString(m)
			}
		}
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTranscriptMarkers checks the "//~" lines of the golden transcripts. The replay
// above reads them as comments and compares exact bytes; the conformance tool
// (interop/js/suite/transcripts.mjs) reads them to know what a conforming server may
// word differently: "//~ rule NAME", once, names the PROTOCOL.md rule the transcript
// holds; "//~ free PATH..." right after a "<--" line names the parts of that frame
// (e.g. message, data.name) whose content is free.
func TestTranscriptMarkers(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(transcriptDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s (err %v)", transcriptDir, err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		var rules int
		var last string // the frame of the last line if it was a "<--" or its marker
		for i, line := range strings.Split(string(src), "\n") {
			at := fmt.Sprintf("%s:%d", name, i+1)
			word, args, _ := strings.Cut(strings.TrimPrefix(line, "//~ "), " ")
			switch {
			case strings.HasPrefix(line, "<-- "):
				last = strings.TrimPrefix(line, "<-- ")
				continue
			case !strings.HasPrefix(line, "//~"):
				last = ""
				continue
			case word == "rule" && args != "" && !strings.Contains(args, " "):
				rules++
				last = ""
			case word == "free" && last != "":
				var frame map[string]any
				if err := json.Unmarshal([]byte(last), &frame); err != nil {
					t.Errorf("%s: the frame above is not a JSON object: %v", at, err)
					continue
				}
				for _, path := range strings.Fields(args) {
					if !hasPath(frame, path) {
						t.Errorf("%s: the frame above has nothing at %s", at, path)
					}
					if path == "id" || path == "type" || path == "code" {
						t.Errorf("%s: %s is pinned by PROTOCOL.md; it cannot be free", at, path)
					}
				}
			default:
				t.Errorf("%s: want \"//~ rule NAME\" or, after a \"<--\" line, \"//~ free PATH...\"; got %q", at, line)
			}
		}
		if rules != 1 {
			t.Errorf("%s: %d \"//~ rule\" lines, want 1", name, rules)
		}
	}
}

// hasPath reports whether the dotted path names a member of v.
func hasPath(v map[string]any, path string) bool {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

// pipeFrames is the client's side of a transcript replay over the pipe.
type pipeFrames struct{ codec.Conn }

func (p pipeFrames) send(ctx context.Context, frame string, binary bool) error {
	if binary {
		frame = testutil.BinaryMark + frame
	}
	return p.WriteFrame(ctx, []byte(frame))
}

func (p pipeFrames) recv(ctx context.Context) (string, error) {
	b, err := p.ReadFrame(ctx, nil)
	return string(b), err
}

// pipeClient serves a fresh reference server over an in-memory pipe.
func pipeClient(t *testing.T) frameConn {
	srv := refserver.New(nil)
	serverEnd, clientEnd := codec.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.RPC().ServeConn(testutil.BinaryConn{Conn: serverEnd})
	}()
	t.Cleanup(func() {
		clientEnd.Close()
		<-done
	})
	return pipeFrames{clientEnd}
}

// wsFrames reads on a goroutine of its own, so that a recv may give up
// without ending the WebSocket (a context that ends during a read closes it).
type wsFrames struct {
	ws     *websocket.Conn
	frames chan string
	err    chan error
}

func (c *wsFrames) send(ctx context.Context, frame string, binary bool) error {
	typ := websocket.MessageText
	if binary {
		typ = websocket.MessageBinary
	}
	return c.ws.Write(ctx, typ, []byte(frame))
}

func (c *wsFrames) recv(ctx context.Context) (string, error) {
	select {
	case f := <-c.frames:
		return f, nil
	case err := <-c.err:
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (c *wsFrames) read() {
	for {
		typ, b, err := c.ws.Read(context.Background())
		if err == nil && typ != websocket.MessageText {
			err = errors.New("got a binary frame")
		}
		if err != nil {
			c.err <- err
			return
		}
		c.frames <- string(b)
	}
}

// wsClient serves a fresh reference server over a real WebSocket on
// 127.0.0.1 and dials it with a raw WebSocket client.
func wsClient(t *testing.T) frameConn {
	srv := refserver.New(nil)
	hs := httptest.NewServer(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/rpc", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsFrames{ws: ws, frames: make(chan string, 64), err: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.read()
	}()
	t.Cleanup(func() {
		ws.CloseNow()
		<-done
		srv.Shutdown(context.Background())
		hs.Close()
	})
	return c
}
