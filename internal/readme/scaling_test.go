package readme_test

// docs/push.md, "Topics, users and everyone": the block is the heart of
// Chat.Say.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// Chat publishes through its handler's broker.
type Chat struct{ h *rpcws.Handler }

type SayArgs struct {
	Text string `json:"text"`
	rpcws.Caller
}

// Say joins room 42 and publishes to each kind of address: the room but the
// caller, the user ada, everyone, and the caller by its ID.
func (c *Chat) Say(args *SayArgs, reply *struct{}) error {
	h, ctx := c.h, context.Background()
	msg, n, v, id := args.Text, "hello, ada", "v1.2.3", args.Peer().ID()

	p := args.Peer()               // from an embedded rpcws.Caller
	p.Join(p.Context(), "room 42") // in effect when it returns, on every replica
	h.Publish(ctx, rpcws.Topic("room 42").Except(p), "chat.said", msg)
	h.Publish(ctx, rpcws.User("ada"), "notice", n) // every connection of ada
	h.Publish(ctx, rpcws.All(), "deploy", v)       // everyone
	h.Publish(ctx, rpcws.ToPeer(id), "ping", 1)    // one connection, by Peer.ID, wherever it is
	return nil
}

// Two connections, one of user ada, each call Chat.Say; each receives what
// the addresses of the block say it should.
func TestScalingOutBlock(t *testing.T) {
	h := rpcws.NewHandler(rpc.NewServer(), &rpcws.HandlerOptions{
		Authorize: func(r *http.Request) (any, error) { return r.URL.Query().Get("user"), nil },
	})
	if err := h.Register(&Chat{h: h}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dial := func(query string) (*rpcws.Client, chan string) {
		events := make(chan string, 20)
		c, err := rpcws.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+query, &rpcws.DialOptions{
			OnEvent: func(typ string, data json.RawMessage) { events <- typ + " " + string(data) },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, events
	}
	anon, anonEvents := dial("")
	ada, adaEvents := dial("?user=ada")
	// A client sees its upgrade a moment before the handler has registered
	// its connection: wait for both, or an event to All may miss one.
	testutil.WaitFor(t, "both connections registered", func() bool { return len(h.Peers()) == 2 })
	for _, c := range []struct {
		who    string
		client *rpcws.Client
		text   string
	}{{"ada", ada, "hi"}, {"anon", anon, "hello"}} {
		if err := c.client.CallContext(ctx, "Chat.Say", &SayArgs{Text: c.text}, nil); err != nil {
			t.Fatalf("%s: Chat.Say: %v", c.who, err)
		}
	}

	for _, c := range []struct {
		who    string
		events chan string
		want   []string
	}{
		// ada's call: the room is hers alone, the user, everyone, herself;
		// anon's: the room (ada), the user (ada), everyone, anon.
		{"ada", adaEvents, []string{`notice "hello, ada"`, `deploy "v1.2.3"`, `ping 1`, `chat.said "hello"`, `notice "hello, ada"`, `deploy "v1.2.3"`}},
		{"anon", anonEvents, []string{`deploy "v1.2.3"`, `deploy "v1.2.3"`, `ping 1`}},
	} {
		var got []string
		for len(got) < len(c.want) {
			select {
			case e := <-c.events:
				got = append(got, e)
			case <-ctx.Done():
				t.Fatalf("%s: got events %q, want %q", c.who, got, c.want)
			}
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got events %q, want %q (in any order)", c.who, got, c.want)
		}
	}
}
