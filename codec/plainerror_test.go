package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/rpc"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/rpcws/rpcws/codec"
)

// Leaky fails in the ways a service does: with a driver's plain error, with
// one wrapped, and with a coded error meant for the client.
type Leaky struct{}

var errDriver = errors.New(`pq: relation "users" does not exist (host db-7.internal)`)

func (Leaky) Plain(int, *int) error   { return errDriver }
func (Leaky) Wrapped(int, *int) error { return fmt.Errorf("loading user: %w", errDriver) }
func (Leaky) Coded(int, *int) error {
	return fmt.Errorf("loading user: %w", &codec.Error{Code: "NotFound", Message: "no user 7"})
}

func serveLeaky(t *testing.T, opts *codec.ServerOptions) (*codec.ServerCodec, rawClient) {
	srv := rpc.NewServer()
	if err := srv.Register(Leaky{}); err != nil {
		t.Fatal(err)
	}
	serverEnd, clientEnd := codec.Pipe()
	sc := codec.NewServerCodec(serverEnd, opts)
	go srv.ServeCodec(sc)
	return sc, rawClient{fakeServer{t, clientEnd}}
}

// ServerOptions.PlainError decides what the client reads of a plain error;
// without it the text goes out verbatim. Coded errors are never mapped.
func TestPlainErrorOption(t *testing.T) {
	var seen []string
	mapper := func(typ, text string) string {
		seen = append(seen, typ+": "+text)
		return "something went wrong"
	}
	tests := []struct {
		name       string
		plainError func(typ, text string) string
		typ        string
		want       string
	}{
		{"verbatim", nil, "leaky.plain", `{"id":1,"type":"error","code":"ServerError","message":"pq: relation \"users\" does not exist (host db-7.internal)"}`},
		{"mapped", mapper, "leaky.plain", `{"id":1,"type":"error","code":"ServerError","message":"something went wrong"}`},
		{"mapped wrapped", mapper, "leaky.wrapped", `{"id":1,"type":"error","code":"ServerError","message":"something went wrong"}`},
		{"coded kept", mapper, "leaky.coded", `{"id":1,"type":"error","code":"NotFound","message":"loading user: no user 7"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seen = nil
				sc, c := serveLeaky(t, &codec.ServerOptions{PlainError: tt.plainError})
				defer sc.Close()
				c.send(`{"id":1,"type":"%s","data":0}`, tt.typ)
				c.expect(tt.want)
				c.send(`{"type":"%s","data":0}`, tt.typ) // a notification: nothing to map
				c.send(`{"id":2,"type":"leaky.coded","data":0}`)
				c.expect(`{"id":2,"type":"error","code":"NotFound","message":"loading user: no user 7"}`)
				if tt.plainError != nil && tt.name != "coded kept" {
					if len(seen) != 1 || !strings.HasPrefix(seen[0], tt.typ+": ") || !strings.Contains(seen[0], "db-7.internal") {
						t.Errorf("the mapper saw %q, want one call for %s with the original text", seen, tt.typ)
					}
				} else if len(seen) != 0 {
					t.Errorf("the mapper saw %q, want no call", seen)
				}
			})
		})
	}
}

// HidePlainErrors sends a generic message and logs the text at level Error.
func TestHidePlainErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&log, nil))
		sc, c := serveLeaky(t, &codec.ServerOptions{PlainError: codec.HidePlainErrors(logger)})
		defer sc.Close()
		c.send(`{"id":"a","type":"leaky.wrapped","data":0}`)
		c.expect(`{"id":"a","type":"error","code":"ServerError","message":"` + codec.PlainErrorMessage + `"}`)
		got := log.String()
		for _, want := range []string{"level=ERROR", "type=leaky.wrapped", "loading user: pq: relation", "db-7.internal"} {
			if !strings.Contains(got, want) {
				t.Errorf("the log lacks %q:\n%s", want, got)
			}
		}
	})
}
