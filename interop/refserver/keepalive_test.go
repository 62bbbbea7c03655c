package refserver_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/interop/refserver"
	"github.com/rpcws/rpcws/rpcws"
)

// Keepalive sees progress, not only pongs: 65 calls of 3 s on one
// connection, one more than the server's in-flight cap, with both ends
// pinging every 300 ms. The server stops reading at the cap, so it cannot
// read the client's pings or pongs for seconds; it pings on, the client
// counts the server's pings as life, and every call gets its reply.
func TestKeepaliveWithCallsAtTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ping, calls, ms = 300 * time.Millisecond, 65, 3000
		ln := testutil.NewListener(64 << 10)
		ref := refserver.New(&refserver.Options{PingInterval: ping})
		hs := &http.Server{Handler: ref}
		served := make(chan error, 1)
		go func() { served <- hs.Serve(ln) }()
		ctx := context.Background()
		c, err := rpcws.Dial(ctx, "ws://refserver/rpc", &rpcws.DialOptions{
			WebSocket:    &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.Dial}}},
			PingInterval: ping,
			Timeout:      -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		errs := make(chan error, calls)
		for range calls {
			go func() {
				var got refserver.SleepReply
				err := c.CallContext(ctx, "Demo.Sleep", &refserver.SleepArgs{Ms: ms}, &got)
				if err == nil && got.Ms != ms {
					err = fmt.Errorf("got %+v", got)
				}
				errs <- err
			}()
		}
		for i := range calls {
			if err := <-errs; err != nil {
				t.Errorf("call %d of %d: %v", i+1, calls, err)
			}
		}
		if took := time.Since(start); took != 2*ms*time.Millisecond {
			t.Errorf("the calls took %v, want two rounds of %d ms", took, ms)
		}
		c.Close()
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := ref.ShutdownHTTP(sctx, hs); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
}
