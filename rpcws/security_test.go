package rpcws_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/rpcws"
)

// Cross-origin upgrades are refused unless the origin is allowed; requests
// without an Origin header (non-browser clients) are let in.
func TestOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		patterns []string // AcceptOptions.OriginPatterns
		origin   string   // "self" stands for the server's own origin
		want     int      // 101 or the refusal's status
	}{
		{"no Origin", nil, "", http.StatusSwitchingProtocols},
		{"own origin", nil, "self", http.StatusSwitchingProtocols},
		{"other origin", nil, "http://evil.example", http.StatusForbidden},
		{"other port", nil, "http://127.0.0.1:1", http.StatusForbidden},
		{"null origin", nil, "null", http.StatusForbidden},
		{"other origin, allowed", []string{"app.example"}, "http://app.example", http.StatusSwitchingProtocols},
		{"other origin, allowed by a wildcard", []string{"*.example.com"}, "https://app.example.com", http.StatusSwitchingProtocols},
		{"other origin, not among those allowed", []string{"app.example"}, "http://evil.example", http.StatusForbidden},
		{"lookalike of an allowed origin", []string{"app.example"}, "http://app.example.evil.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, &rpcws.HandlerOptions{
				AcceptOptions: &websocket.AcceptOptions{OriginPatterns: tt.patterns},
			})
			h := http.Header{}
			switch tt.origin {
			case "":
			case "self":
				h.Set("Origin", "http"+strings.TrimPrefix(s.url, "ws"))
			default:
				h.Set("Origin", tt.origin)
			}
			opts := &rpcws.DialOptions{WebSocket: &websocket.DialOptions{HTTPHeader: h}}
			if tt.want != http.StatusSwitchingProtocols {
				if got := dialStatus(t, s.url, opts.WebSocket); got != tt.want {
					t.Fatalf("status: got %d, want %d", got, tt.want)
				}
				if got := s.h.NumConns(); got != 0 {
					t.Fatalf("NumConns: got %d, want 0", got)
				}
				return
			}
			c := s.dial(t, opts)
			var got int
			if err := c.Call("Test.Multiply", &Args{6, 7}, &got); err != nil || got != 42 {
				t.Fatalf("got %d, %v; want 42, nil", got, err)
			}
		})
	}
}

// Who is a service that tells callers who they are.
type Who struct{}

// WhoArgs is the argument of Who.Am.
type WhoArgs struct{ rpcws.Caller }

// user is the identity that the tests' Authorize gives a connection.
type user struct{ Name string }

// Am replies with the name of the connection's user.
func (Who) Am(args *WhoArgs, reply *string) error {
	u, ok := args.Peer().Identity().(user)
	if !ok {
		return errors.New("no identity")
	}
	*reply = u.Name
	return nil
}

// authorize accepts the tokens of two users, from the subprotocols offered
// ("token.<token>", beside the protocol "rpcws") or from the query, or a
// session cookie.
func authorize(r *http.Request) (any, error) {
	users := map[string]string{"t-alice": "alice", "t-bob": "bob"}
	token := r.URL.Query().Get("token")
	for _, p := range rpcws.Subprotocols(r) {
		if v, ok := strings.CutPrefix(p, "token."); ok {
			token = v
		}
	}
	if c, err := r.Cookie("session"); err == nil {
		token = c.Value
	}
	name, ok := users[token]
	if !ok {
		return nil, errors.New("secret reason: unknown token " + token)
	}
	return user{name}, nil
}

// Authorize refuses an upgrade (403) without a good token, whether it came
// as a subprotocol, in the query or in a cookie; an accepted connection's
// identity reaches the service methods through Caller. A good cookie does
// not let a page of another origin in.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	s, _ := newServerWith(t, &rpcws.HandlerOptions{
		Authorize:     authorize,
		AcceptOptions: &websocket.AcceptOptions{Subprotocols: []string{"rpcws"}},
	}, Who{})
	self := "http" + strings.TrimPrefix(s.url, "ws")
	header := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name         string
		query        string
		subprotocols []string
		header       http.Header
		want         string // the user, or "" for a refusal
	}{
		{"subprotocol token", "", []string{"rpcws", "token.t-alice"}, nil, "alice"},
		{"query token", "?token=t-bob", []string{"rpcws"}, nil, "bob"},
		{"query token, no subprotocol", "?token=t-bob", nil, nil, "bob"},
		{"session cookie, own origin", "", nil, header("Cookie", "session=t-alice", "Origin", self), "alice"},
		{"no token", "", []string{"rpcws"}, nil, ""},
		{"bad subprotocol token", "", []string{"rpcws", "token.t-mallory"}, nil, ""},
		{"bad query token", "?token=t-mallory", nil, nil, ""},
		{"session cookie, other origin", "", nil, header("Cookie", "session=t-alice", "Origin", "http://evil.example"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dopts := &websocket.DialOptions{Subprotocols: tt.subprotocols, HTTPHeader: tt.header}
			url := s.url + tt.query
			if tt.want == "" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				ws, resp, err := websocket.Dial(ctx, url, dopts)
				if err == nil {
					ws.CloseNow()
					t.Fatal("upgrade accepted, want it refused")
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("refusal: got %v, want status 403", err)
				}
				body, _ := io.ReadAll(resp.Body)
				if strings.Contains(string(body), "secret reason") {
					t.Fatalf("the refusal tells the client Authorize's error: %q", body)
				}
				return
			}
			if len(tt.subprotocols) > 0 {
				ws := dialRaw(t, url, dopts)
				if got := ws.Subprotocol(); got != "rpcws" {
					t.Fatalf("subprotocol: got %q, want rpcws", got)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{WebSocket: dopts})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got string
			if err := c.CallContext(ctx, "Who.Am", nil, &got); err != nil || got != tt.want {
				t.Fatalf("identity: got %q, %v; want %q, nil", got, err, tt.want)
			}
		})
	}
}
