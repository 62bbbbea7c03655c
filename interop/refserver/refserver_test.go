package refserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/interop/refserver"
	"github.com/rpcws/rpcws/rpcws"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// The reference server's HTTP timeouts close an idle keep-alive connection,
// and spare a WebSocket on the same server long past its ReadTimeout and
// WriteTimeout: the deadlines net/http set for the upgrade request do not
// survive the hijack.
func TestHTTPTimeoutsSpareWebSockets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const read, write, idle = 2 * time.Second, 3 * time.Second, 5 * time.Second
		ln := testutil.NewListener(64 << 10)
		ref := refserver.New(nil)
		hs := ref.HTTPServer(&refserver.Timeouts{Read: read, Write: write, Idle: idle})
		served := make(chan error, 1)
		go func() { served <- hs.Serve(ln) }()
		ctx := context.Background()
		var c *rpcws.Client
		defer func() { // on failure too: nothing may outlive the bubble
			if c != nil {
				c.Close()
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if err := ref.ShutdownHTTP(sctx, hs); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve: got %v, want ErrServerClosed", err)
			}
		}()

		tr := &http.Transport{DialContext: ln.Dial}
		var err error
		c, err = rpcws.Dial(ctx, "ws://refserver/rpc", &rpcws.DialOptions{
			WebSocket: &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}},
		})
		if err != nil {
			t.Fatal(err)
		}
		upgraded := time.Now()
		echo := func(what string) {
			t.Helper()
			var got json.RawMessage
			if err := c.Call("Demo.Echo", json.RawMessage(`"`+what+`"`), &got); err != nil || string(got) != `"`+what+`"` {
				t.Fatalf("echo %s, %v after the upgrade: got %s, %v", what, time.Since(upgraded), got, err)
			}
		}
		echo("at once")

		// A keep-alive connection: one request, then nothing.
		raw, err := ln.Dial(ctx, "", "")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		fmt.Fprintf(raw, "GET / HTTP/1.1\r\nHost: refserver\r\n\r\n")
		br := bufio.NewReader(raw)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("GET /: got %d (close %v), want 200 on a keep-alive connection", resp.StatusCode, resp.Close)
		}
		answered := time.Now()
		raw.SetReadDeadline(answered.Add(10 * idle)) // bounds the wait if the server never closes it
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle keep-alive connection: read %v, want EOF", err)
		}
		if got := time.Since(answered); got != idle {
			t.Errorf("idle keep-alive connection closed after %v, want IdleTimeout %v", got, idle)
		}

		// The WebSocket, upgraded before that request, has now outlived
		// ReadTimeout and WriteTimeout, idle all along.
		if since := time.Since(upgraded); since <= max(read, write) {
			t.Fatalf("only %v since the upgrade", since)
		}
		echo("after the idle timeout")
		time.Sleep(4 * idle)
		echo("after four more")
		t.Logf("keep-alive connection closed %v after its response; WebSocket served %v after its upgrade (ReadTimeout %v, WriteTimeout %v)",
			idle, time.Since(upgraded), read, write)

	})
}

// Shutdown stops the HTTP server and drains the WebSockets side by side: a
// stuck plain HTTP request does not hold up the drain, so requests on an
// open WebSocket are answered Unavailable while it is still stuck.
func TestShutdownDrainsBesideStuckHTTP(t *testing.T) {
	ref := refserver.New(nil)
	hs := ref.HTTPServer(nil)
	stuck, entered := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", ref)
	mux.HandleFunc("/stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-stuck
	})
	hs.Handler = mux
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: got %v, want ErrServerClosed", err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // past WaitFor's bound
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/rpc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	write := func(frame string) {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatalf("write %s: %v", frame, err)
		}
	}
	// read returns the next reply, skipping that of the sleep.
	read := func() map[string]any {
		t.Helper()
		for {
			_, p, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var m map[string]any
			if err := json.Unmarshal(p, &m); err != nil {
				t.Fatalf("reply %s: %v", p, err)
			}
			if m["id"] != "sleep" {
				return m
			}
		}
	}
	// A call in flight keeps the drain going, and the connection open.
	write(`{"id":"sleep","type":"demo.sleep","data":{"ms":60000}}`)
	testutil.WaitFor(t, "the sleep to be in flight", func() bool { return ref.RPC().InFlight() == 1 })

	gotStuck := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/stuck")
		if err == nil {
			resp.Body.Close()
		}
		gotStuck <- err
	}()
	<-entered

	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- ref.ShutdownHTTP(sctx, hs) }()

	served0, id := 0, 0
	testutil.WaitFor(t, "a request on the WebSocket to be answered Unavailable", func() bool {
		id++
		write(fmt.Sprintf(`{"id":%d,"type":"demo.echo","data":%d}`, id, id))
		m := read()
		if m["type"] == "error" {
			if m["code"] != codec.CodeUnavailable {
				t.Fatalf("request %d: got %v, want code %s", id, m, codec.CodeUnavailable)
			}
			return true
		}
		select {
		case err := <-shutdown:
			t.Fatalf("shutdown returned (%v) before the WebSocket drained", err)
		default:
		}
		served0++
		return false
	})
	t.Logf("with an HTTP request stuck, the WebSocket drain began after %d more requests were served", served0)

	// Give up the grace: the sleep is cut, everything closes.
	select {
	case err := <-shutdown:
		t.Fatalf("shutdown returned (%v) with a request in flight and one stuck", err)
	default:
	}
	scancel()
	select {
	case err := <-shutdown:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("shutdown: got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not return after its context ended")
	}
	close(stuck)
	select {
	case <-gotStuck: // its connection was closed, or the reply came first
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck request did not end")
	}
}
