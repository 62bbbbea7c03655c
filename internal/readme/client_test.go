package readme_test

// The Go client against the reference server, and docs/errors.md, "Which
// timeout": the blocks run against the reference server.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/interop/refserver"
	"github.com/rpcws/rpcws/rpcws"
)

// The Go client of "A client", against the reference server.
func Example_client() {
	ref := refserver.New(nil)
	hs := httptest.NewServer(ref)
	defer hs.Close()
	defer ref.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/rpc"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	client, err := rpcws.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var user User
	err = client.Call("User.Get", &UserID{ID: "123"}, &user)           // net/rpc's signature
	fmt.Println(user.Name, err)                                        // Ada Lovelace <nil>
	err = client.CallContext(ctx, "User.Get", &UserID{ID: "7"}, &user) // bounded by ctx
	var e *codec.Error
	if errors.As(err, &e) && e.Code == "NotFound" {
		fmt.Println(e.Message) // no user with id "7"
	}
	// Output:
	// Ada Lovelace <nil>
	// no user with id "7"
}

// The calls of "Timeouts", against the reference server, in a bubble of
// testing/synctest so that their 15 s sleeps and a minute's deadline take
// no time: a context deadline later than the client's 10 s timeout lets
// the call finish; a deadline of 1 s cuts one with a Timeout.
func TestTimeoutsBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, done := dialRefServerInBubble(t)
		defer done()
		var err error

		start := time.Now()
		var slept struct{ Ms int }
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = client.CallContext(ctx, "Demo.Sleep", map[string]int{"ms": 15000}, &slept) // up to a minute
		if err != nil || slept.Ms != 15000 || time.Since(start) != 15*time.Second {
			t.Errorf("sleep of 15 s with a minute's deadline: got %+v, %v after %v; want ms 15000 after 15s", slept, err, time.Since(start))
		}

		start = time.Now()
		short, cancelShort := context.WithTimeout(context.Background(), time.Second)
		defer cancelShort()
		err = client.CallContext(short, "Demo.Sleep", map[string]int{"ms": 15000}, &slept) // Timeout after 1 s
		if !errors.Is(err, rpcws.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("sleep of 15 s with a deadline of 1 s: got %v after %v; want a timeout after 1s", err, time.Since(start))
		}
		if got, want := err.Error(), "timeout: demo.sleep"; got != want {
			t.Errorf("timeout's text: got %q, want %q", got, want)
		}
	})
}

// dialRefServerInBubble serves the reference server over in-memory
// connections and dials it with default options; done closes both.
func dialRefServerInBubble(t *testing.T) (client *rpcws.Client, done func()) {
	t.Helper()
	ln := testutil.NewListener(64 << 10)
	ref := refserver.New(nil)
	hs := &http.Server{Handler: ref}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ref.ShutdownHTTP(ctx, hs); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: got %v, want ErrServerClosed", err)
		}
	}
	client, err := rpcws.Dial(context.Background(), "ws://refserver/rpc", &rpcws.DialOptions{
		WebSocket: &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.Dial}}},
	})
	if err != nil {
		stop()
		t.Fatal(err)
	}
	return client, func() { client.Close(); stop() }
}
