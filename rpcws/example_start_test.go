package rpcws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// Every open connection gets the event: here two Go clients, which make a
// call first, whose reply proves their connection is set up.
func ExampleHandler_Broadcast() {
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	h.RegisterName("User", Users{})
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 2)
	for _, name := range []string{"ada", "bob"} {
		client, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{
			OnEvent: func(typ string, data json.RawMessage) { got <- name + " got " + typ + " " + string(data) },
		})
		if err != nil {
			log.Fatal(err)
		}
		defer client.Close()
		var u User
		client.Call("User.Get", &UserID{ID: "123"}, &u)
	}

	if err := h.Broadcast(ctx, "deploy", map[string]string{"version": "1.4.2"}); err != nil {
		log.Fatal(err)
	}
	lines := []string{<-got, <-got}
	if lines[0] > lines[1] {
		lines[0], lines[1] = lines[1], lines[0]
	}
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// ada got deploy {"version":"1.4.2"}
	// bob got deploy {"version":"1.4.2"}
}

// Me tells a connection who it is, from the identity Authorize returned.
type Me struct{}

type MeArgs struct{ rpcws.Caller }

func (Me) Get(args *MeArgs, name *string) error {
	*name, _ = args.Peer().Identity().(string)
	return nil
}

// A browser cannot set headers on a WebSocket, so its token travels as a
// subprotocol (new WebSocket(url, ["rpcws", "token." + token]), or the JS
// client's {protocols}), in the query, or in a cookie. Authorize checks it
// before the upgrade: an error refuses it with 403, and what it returns is
// the connection's identity, which methods read through Caller.
func ExampleHandlerOptions_authorize() {
	tokens := map[string]string{"t-4f2a": "ada"} // your sessions: a store, a signed token
	srv := rpc.NewServer()
	srv.Register(Me{})
	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{
		Authorize: func(r *http.Request) (any, error) {
			for _, p := range rpcws.Subprotocols(r) {
				if user, ok := tokens[strings.TrimPrefix(p, "token.")]; ok {
					return user, nil
				}
			}
			return nil, errors.New("no valid token") // logged, never sent: the client sees 403
		},
		// The handler selects "rpcws" among the offered subprotocols, as a
		// browser that offers some requires.
		AcceptOptions: &websocket.AcceptOptions{Subprotocols: []string{"rpcws"}},
	})
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{
		WebSocket: &websocket.DialOptions{Subprotocols: []string{"rpcws", "token.t-4f2a"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var name string
	err = client.Call("Me.Get", &MeArgs{}, &name)
	fmt.Println(name, err)

	_, err = rpcws.Dial(ctx, url, nil) // no token
	fmt.Println(err != nil)
	// Output:
	// ada <nil>
	// true
}

// A Go client that shows published events reloads what it shows when the
// server says events may have been lost ([rpcws.ResyncEvent]: a replica's
// broker connection came back, say). The event names the topics concerned;
// an empty list means all of them. Compiled only: it needs a server.
func ExampleDialOptions_resync() {
	reload := func(topics []string) { /* fetch the state afresh, with a call */ }
	ctx := context.Background()
	client, err := rpcws.Dial(ctx, "ws://127.0.0.1:8080/rpc", &rpcws.DialOptions{
		OnEvent: func(typ string, data json.RawMessage) {
			switch typ {
			case rpcws.ResyncEvent:
				var gap struct{ Topics []string }
				json.Unmarshal(data, &gap)
				reload(gap.Topics)
			case "chat.said":
				// apply the event
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
}

// A service that keeps its internals out of what clients read: plain errors
// (a driver's, a file path) are logged and sent as "internal error"; coded
// errors, meant for the client, go out as they are.
func ExampleHandlerOptions_plainError() {
	h := rpcws.NewHandler(rpc.NewServer(), &rpcws.HandlerOptions{
		PlainError: codec.HidePlainErrors(nil), // logs to slog.Default, at Error
	})
	http.Handle("/rpc", h)
}

// A server that shuts down gracefully on SIGINT or SIGTERM: calls in flight
// get their replies, then every connection closes with 1001. Returning from
// main when ListenAndServe does would cut them instead. The HTTP server and
// the WebSockets shut down side by side, under one deadline. Compiled only:
// it waits for a signal; internal/readme/shutdown is the same program, run
// by its test.
func ExampleHandler_Shutdown() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	h.RegisterName("User", Users{})
	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-ctx.Done()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var httpErr, wsErr error
	wg.Go(func() { httpErr = hs.Shutdown(ctx) })
	wg.Go(func() { wsErr = h.Shutdown(ctx) })
	wg.Wait()
	if err := errors.Join(httpErr, wsErr); err != nil {
		log.Fatal(err)
	}
}
