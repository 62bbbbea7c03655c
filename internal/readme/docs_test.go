package readme_test

// The package doc of rpcws.

import (
	"context"
	"net/http"
	"net/rpc"

	"github.com/rpcws/rpcws/rpcws"
)

// rpcwsPackageDoc is compiled only: it serves http.DefaultServeMux and dials
// a fixed address. Example_client and TestServerBlock run the same calls.
func rpcwsPackageDoc(ctx context.Context) error {
	var user User

	h := rpcws.NewHandler(rpc.NewServer(), nil)
	h.RegisterName("User", new(Users)) // reached as "user.get"
	http.Handle("/rpc", h)

	client, err := rpcws.Dial(ctx, "ws://127.0.0.1:8080/rpc", nil)
	if err != nil {
		return err
	}
	defer client.Close()
	err = client.Call("User.Get", &UserID{ID: "123"}, &user)

	return err
}

var _ = rpcwsPackageDoc
