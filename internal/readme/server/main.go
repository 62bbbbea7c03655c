// A complete rpcws server: a net/rpc service reached from browsers at /rpc,
// the JavaScript client at /rpcws.js, and a page at /.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/rpc"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/interop/js"
	"github.com/rpcws/rpcws/rpcws"
)

type UserID struct {
	ID string `json:"id"`
}

type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Users is an ordinary net/rpc service. Registered as "User", its Get is
// called as "user.get" from JavaScript and as "User.Get" from Go.
type Users struct {
	byID map[string]User // your storage: a database handle, say
}

func (s *Users) Get(args *UserID, reply *User) error {
	u, ok := s.byID[args.ID]
	if !ok {
		return &codec.Error{Code: "NotFound", Message: fmt.Sprintf("no user with id %q", args.ID)}
	}
	*reply = u
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()

	users := &Users{byID: map[string]User{"123": {ID: "123", Name: "Ada Lovelace"}}}
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	if err := h.RegisterName("User", users); err != nil {
		log.Fatal(err)
	}
	http.Handle("/rpc", h)                                    // the WebSocket endpoint
	http.Handle("GET /rpcws.js", http.FileServerFS(js.Files)) // the JavaScript client
	http.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "index.html") // the page below, beside main.go
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving http://%s/", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}
