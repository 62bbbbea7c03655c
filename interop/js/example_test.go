package js_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/rpcws/rpcws/interop/js"
)

// A Go server serves the client to its own pages at /rpcws.js, beside its
// WebSocket endpoint; a page then imports it with
// <script type="module">import { connect } from "/rpcws.js"; …</script>.
func ExampleFiles() {
	mux := http.NewServeMux()
	for _, name := range []string{"rpcws.js", "rpcws.d.ts"} {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, js.Files, name)
		})
	}
	// mux.Handle("/rpc", rpcws.NewHandler(srv, nil))

	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/rpcws.js")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Header.Get("Content-Type"))
	fmt.Println(strings.Contains(string(body), "export async function connect("))
	// Output:
	// text/javascript; charset=utf-8
	// true
}
