package interop_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/interop/refserver"
	"github.com/rpcws/rpcws/rpcws"
)

// The JavaScript client's unit tests, against a fake socket, and its reconnection
// against a ws server in Node.
func TestNodeClient(t *testing.T) {
	t.Parallel()
	nodeTest(t, time.Minute, nil, "test/client.test.mjs", "test/reconnect.test.mjs")
}

// The interop scenarios in Node against the reference server. -short leaves out the
// lesson's 15 s exercise; the fast variant of the same shape always runs.
func TestNodeScenarios(t *testing.T) {
	t.Parallel()
	_, hs := startRef(t, nil)
	env := []string{"RPCWS_URL=" + wsURL(hs, "/rpc")}
	if !testing.Short() {
		env = append(env, "RPCWS_SLOW=1")
	}
	out := nodeTest(t, 2*time.Minute, env, "test/scenarios.test.mjs")
	if !testing.Short() && !strings.Contains(out, "✔ lesson exercise: 5 concurrent, one held 15 s") {
		t.Errorf("the lesson's 15 s exercise did not pass; output:\n%s", out)
	}
}

// The golden transcripts, replayed from Node over a raw WebSocket, byte for byte.
func TestNodeTranscripts(t *testing.T) {
	t.Parallel()
	_, hs := startRef(t, nil)
	out := nodeTest(t, time.Minute, []string{"RPCWS_URL=" + wsURL(hs, "/rpc")}, "test/transcripts.test.mjs")
	for _, name := range transcriptFiles(t) {
		if !strings.Contains(out, "✔ transcript "+name) {
			t.Errorf("transcript %s: no pass in Node's output", name)
		}
	}
}

// A browser's token travels as a subprotocol, since browsers cannot set headers.
func TestNodeSubprotocolToken(t *testing.T) {
	t.Parallel()
	h := tokenHandler(t)
	hs := serveRPC(t, h, h.Shutdown)
	nodeTest(t, time.Minute, []string{"RPCWS_AUTH_URL=" + wsURL(hs, "/")}, "test/auth.test.mjs")
}

// Whoami is the service of tokenHandler: it tells the caller who the token said it is.
type Whoami struct{}

// WhoamiArgs carries the calling connection.
type WhoamiArgs struct{ rpcws.Caller }

// Get returns the identity that Authorize gave the connection.
func (Whoami) Get(args *WhoamiArgs, reply *string) error {
	*reply = fmt.Sprint(args.Peer().Identity())
	return nil
}

// tokenHandler is an rpcws endpoint that lets in only connections offering the
// subprotocols "rpcws" and "token.s3cret" (the user alice), the way a browser page
// passes a token: new WebSocket(url, ["rpcws", "token.s3cret"]).
func tokenHandler(t *testing.T) *rpcws.Handler {
	t.Helper()
	srv := rpc.NewServer()
	if err := srv.Register(Whoami{}); err != nil {
		t.Fatal(err)
	}
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{
		AcceptOptions: &websocket.AcceptOptions{Subprotocols: []string{"rpcws"}},
		Authorize: func(r *http.Request) (any, error) {
			for _, p := range rpcws.Subprotocols(r) {
				if p == "token.s3cret" {
					return "alice", nil
				}
			}
			return nil, errors.New("no valid token")
		},
	})
	return h
}

// The JavaScript client through a graceful shutdown of the reference server.
func TestNodeGracefulShutdown(t *testing.T) {
	t.Parallel()
	ref := refserver.New(nil)
	shutdownDone := make(chan error, 1)
	mux := http.NewServeMux()
	mux.Handle("/rpc", ref)
	mux.HandleFunc("POST /shutdown", func(w http.ResponseWriter, r *http.Request) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			shutdownDone <- ref.Shutdown(ctx)
		}()
		w.WriteHeader(http.StatusAccepted)
	})
	hs := serveRPC(t, mux, ref.Shutdown)
	nodeTest(t, time.Minute, []string{
		"RPCWS_URL=" + wsURL(hs, "/rpc"),
		"RPCWS_SHUTDOWN_URL=" + hs.URL + "/shutdown",
	}, "test/shutdown.test.mjs")
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Shutdown did not return within 10 s")
	}
}
