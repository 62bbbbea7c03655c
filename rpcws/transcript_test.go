package rpcws_test

import (
	"bytes"
	"context"
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
// sends now. The frames that follow a sent frame are those that arrive
// before a short quiet spell: good enough for recording, which a person
// then reviews; replay never waits on time.
func record(t *testing.T, s testutil.Transcript) {
	path := filepath.Join(transcriptDir, s.Name+".txt")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := wsClient(t)
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(src), "\n") {
		if strings.HasPrefix(line, "<-- ") || line == "" {
			continue
		}
		out.WriteString(line)
		binary := strings.HasPrefix(line, "-->binary ")
		if !binary && !strings.HasPrefix(line, "--> ") {
			continue
		}
		frame := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(line, "-->binary "), "--> "), "\n")
		if err := c.send(context.Background(), frame, binary); err != nil {
			t.Fatal(err)
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			got, err := c.recv(ctx)
			cancel()
			if err != nil {
				break
			}
			fmt.Fprintf(&out, "<-- %s\n", got)
		}
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
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
