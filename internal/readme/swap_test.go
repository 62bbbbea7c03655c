package readme_test

// docs/net-rpc.md: serving an existing program to browsers, the codec
// alone, and net/rpc's own client.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"net/rpc/jsonrpc"
	"strings"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/interop/refserver"
	"github.com/rpcws/rpcws/rpcws"
)

// servedBefore is compiled only: it is the stock net/rpc code the guide
// starts from, two ways of serving one connection, not both at once.
func servedBefore(srv *rpc.Server, conn net.Conn) {
	go srv.ServeConn(conn)                          // gob
	go srv.ServeCodec(jsonrpc.NewServerCodec(conn)) // or jsonrpc
}

var _ = servedBefore

// servedToBrowsers is compiled only: it registers on http.DefaultServeMux,
// once per process. The handler is served by the examples and tests of the
// other blocks.
func servedToBrowsers(srv *rpc.Server) {
	http.Handle("/rpc", rpcws.NewHandler(srv, nil))
}

var _ = servedToBrowsers

// The codec alone, over an in-memory pair of frame connections, serving the
// reference server's services with a plain *rpc.Server. demo.ticks, whose
// method pushes through rpcws.Caller, still answers: served by another codec
// than rpcws's, its Peer is nil, and pushing through it fails without harm.
func Example_codecOnly() {
	srv := rpc.NewServer()
	srv.RegisterName("User", refserver.NewUsers())
	srv.RegisterName("Demo", new(refserver.Demo))
	serverConn, clientConn := codec.Pipe()

	go srv.ServeCodec(codec.NewServerCodec(serverConn, nil))                // the serving end
	client := rpc.NewClientWithCodec(codec.NewClientCodec(clientConn, nil)) // the calling end
	defer client.Close()

	var u refserver.User
	if err := client.Call("User.Get", &refserver.UserID{ID: "123"}, &u); err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Name)
	var ticks json.RawMessage
	if err := client.Call("Demo.Ticks", map[string]int{"count": 3}, &ticks); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(ticks))
	// Output:
	// Ada Lovelace
	// {"count":3}
}

// net/rpc's own client over rpcws, against the reference server: an error
// reply reaches it as an rpc.ServerError, whose code ErrorCode reads back.
func Example_netrpcClient() {
	ref := refserver.New(nil)
	hs := httptest.NewServer(ref)
	defer hs.Close()
	defer ref.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/rpc"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cc, err := rpcws.DialCodec(ctx, url, nil) // dials as rpcws.Dial does
	if err != nil {
		log.Fatal(err)
	}
	client := rpc.NewClientWithCodec(cc) // an *rpc.Client over rpcws
	defer client.Close()

	var u refserver.User
	err = client.Call("User.Get", &refserver.UserID{ID: "123"}, &u)
	fmt.Println(u.Name, err)
	err = client.Call("User.Get", &refserver.UserID{ID: "7"}, &u)
	var se rpc.ServerError
	fmt.Println(errors.As(err, &se), rpcws.ErrorCode(err))
	// Output:
	// Ada Lovelace <nil>
	// true NotFound
}
