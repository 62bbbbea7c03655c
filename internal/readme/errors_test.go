package readme_test

// docs/errors.md, "What a method's error sends": PlainError.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// Store fails as a service over a database does.
type Store struct{}

func (Store) Load(id string, _ *string) error {
	if id == "7" {
		return &codec.Error{Code: "NotFound", Message: "no user 7"}
	}
	return errors.New(`pq: relation "users" does not exist`)
}

// With HidePlainErrors, a plain error's text stays in the log, and a coded
// error still reaches the client as it is.
func TestPlainErrorBlock(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	srv := rpc.NewServer()
	if err := srv.Register(Store{}); err != nil {
		t.Fatal(err)
	}

	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{
		PlainError: codec.HidePlainErrors(logger), // nil: slog.Default()
	})

	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := rpcws.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var s string
	err = client.CallContext(ctx, "Store.Load", "1", &s)
	if e, ok := codec.AsError(err); !ok || e.Code != codec.CodeServerError || e.Message != "internal error" {
		t.Errorf("plain error: got %v, want [ServerError] internal error", err)
	}
	err = client.CallContext(ctx, "Store.Load", "7", &s)
	if e, ok := codec.AsError(err); !ok || e.Code != "NotFound" || e.Message != "no user 7" {
		t.Errorf("coded error: got %v, want [NotFound] no user 7", err)
	}
	if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "type=store.load") || !strings.Contains(got, `relation \"users\" does not exist`) {
		t.Errorf("the log does not hold the plain error at ERROR with its type:\n%s", got)
	}
}
