package readme_test

// The types the package doc of rpcws takes as given (docs_test.go), and a
// test of its server. The README's own server is the program in server/.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

type Users struct {
	// your storage: a database handle, say
}

type UserID struct {
	ID string `json:"id"`
}

type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// An ordinary net/rpc method: the service is registered as "User", so it is
// reached as "user.get" from JavaScript and as "User.Get" from Go.
func (s *Users) Get(args *UserID, reply *User) error {
	u, ok := s.lookup(args.ID)
	if !ok {
		return &codec.Error{Code: "NotFound", Message: fmt.Sprintf("no user with id %q", args.ID)}
	}
	*reply = u
	return nil
}

// lookup stands for the storage a service has.
func (s *Users) lookup(id string) (User, bool) {
	if id != "123" {
		return User{}, false
	}
	return User{ID: "123", Name: "Ada Lovelace"}, true
}

// The package doc's server answers "user.get" from a browser's frames, and
// "User.Get" from the Go client, as its comment says.
func TestServerBlock(t *testing.T) {
	h := rpcws.NewHandler(rpc.NewServer(), nil)
	if err := h.RegisterName("User", new(Users)); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for _, c := range []struct{ send, want string }{
		{`{"id":"a","type":"user.get","data":{"id":"123"}}`, `{"id":"a","type":"user.get.response","data":{"id":"123","name":"Ada Lovelace"}}`},
		{`{"id":"b","type":"user.get","data":{"id":"7"}}`, `{"id":"b","type":"error","code":"NotFound","message":"no user with id \"7\""}`},
	} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(c.send)); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("sent %s: got %s, want %s", c.send, got, c.want)
		}
	}

	client, err := rpcws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var u User
	if err := client.Call("User.Get", &UserID{ID: "123"}, &u); err != nil || u.Name != "Ada Lovelace" {
		t.Errorf(`Call("User.Get"): got %+v, %v; want Ada Lovelace`, u, err)
	}
	var raw json.RawMessage
	if err := client.CallContext(ctx, "Users.Get", &UserID{ID: "123"}, &raw); codec.ErrorCode(err) != codec.CodeMethodNotFound {
		t.Errorf(`CallContext("Users.Get"): got %s, %v; want MethodNotFound, the service is "User"`, raw, err)
	}
}
