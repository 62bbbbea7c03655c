package brokertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// spy records a broker's subscriptions.
type spy struct {
	rpcws.Broker
	mu   sync.Mutex
	subs map[string]int // subject → subscribe count minus unsubscribe count
}

func (s *spy) Subscribe(ctx context.Context, subject string) error {
	s.mu.Lock()
	s.subs[subject]++
	s.mu.Unlock()
	return s.Broker.Subscribe(ctx, subject)
}

func (s *spy) Unsubscribe(ctx context.Context, subject string) error {
	s.mu.Lock()
	s.subs[subject]--
	s.mu.Unlock()
	return s.Broker.Unsubscribe(ctx, subject)
}

func (s *spy) withPrefix(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for subject, n := range s.subs {
		if n > 0 && strings.HasPrefix(subject, prefix) {
			out = append(out, subject)
		}
	}
	return out
}

func (s *spy) topicSubs() []string { return s.withPrefix("rpcws.t.") }
func (s *spy) userSubs() []string  { return s.withPrefix("rpcws.u.") }

// node is one replica.
type node struct {
	h    *rpcws.Handler
	hs   *httptest.Server
	once sync.Once
}

func newNodes(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, n int) []*node {
	t.Helper()
	return newNodesWith(t, newBroker, n, nil)
}

// newNodesWith is newNodes with options of the handlers set by opts.
func newNodesWith(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, n int, opts func(*rpcws.HandlerOptions)) []*node {
	t.Helper()
	var nodes []*node
	for range n {
		nd := &node{}
		srv := rpc.NewServer()
		if err := srv.RegisterName("Room", &Room{Handler: func() *rpcws.Handler { return nd.h }}); err != nil {
			t.Fatal(err)
		}
		o := &rpcws.HandlerOptions{
			Broker: newBroker(t),
			Authorize: func(r *http.Request) (any, error) {
				if u := r.URL.Query().Get("user"); u != "" {
					return u, nil
				}
				return nil, nil
			},
		}
		if opts != nil {
			opts(o)
		}
		nd.h = rpcws.NewHandler(srv, o)
		nd.hs = httptest.NewServer(nd.h)
		t.Cleanup(nd.stop)
		nodes = append(nodes, nd)
	}
	return nodes
}

// stop ends the replica at once, as a crash would.
func (n *node) stop() {
	n.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n.h.Shutdown(ctx)
		n.hs.Close()
	})
}

// Room is the service the suite's clients call.
type Room struct{ Handler func() *rpcws.Handler }

// TopicArgs names a topic.
type TopicArgs struct {
	Topic string `json:"topic"`
	rpcws.Caller
}

// Join joins the caller to a topic and returns its peer ID.
func (r *Room) Join(a *TopicArgs, id *string) error {
	*id = a.Peer().ID()
	return a.Peer().Join(context.Background(), a.Topic)
}

// Leave takes the caller out of a topic.
func (r *Room) Leave(a *TopicArgs, ok *bool) error {
	*ok = true
	return a.Peer().Leave(context.Background(), a.Topic)
}

// ID returns the caller's peer ID.
func (r *Room) ID(a *TopicArgs, id *string) error {
	*id = a.Peer().ID()
	return nil
}

// PublishArgs is an event to publish, of type "m" unless Type says.
type PublishArgs struct {
	Type   string          `json:"type"`
	To     string          `json:"to"` // all, topic, user or peer
	Name   string          `json:"name"`
	Except bool            `json:"except"`
	Data   json.RawMessage `json:"data"`
	rpcws.Caller
}

// Publish publishes an event "m" with the given data.
func (r *Room) Publish(a *PublishArgs, ok *bool) error {
	var to rpcws.Address
	switch a.To {
	case "all":
		to = rpcws.All()
	case "topic":
		to = rpcws.Topic(a.Name)
	case "user":
		to = rpcws.User(a.Name)
	case "peer":
		to = rpcws.ToPeer(a.Name)
	}
	if a.Except {
		to = to.Except(a.Peer())
	}
	*ok = true
	typ := a.Type
	if typ == "" {
		typ = "m"
	}
	return r.Handler().Publish(context.Background(), to, typ, a.Data)
}

// client is one WebSocket client and the events it received.
type client struct {
	name string
	id   string
	c    *rpcws.Client

	mu     sync.Mutex
	events []string // "type data"
	signal chan struct{}
}

func (n *node) dial(t *testing.T, user string) *client {
	t.Helper()
	cl := n.dialQuiet(t, user)
	if user != "" {
		cl.awaitUser(t, user)
	}
	return cl
}

// dialQuiet connects a client and makes one call, without waiting for its
// user address to be in effect.
func (n *node) dialQuiet(t *testing.T, user string) *client {
	t.Helper()
	url := "ws" + strings.TrimPrefix(n.hs.URL, "http")
	name := "anonymous"
	if user != "" {
		url += "?user=" + user
		name = user
	}
	cl := &client{signal: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, err := rpcws.Dial(ctx, url, &rpcws.DialOptions{OnEvent: cl.onEvent, MaxQueuedEventBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl.c = c
	if err := c.CallContext(ctx, "Room.ID", &TopicArgs{}, &cl.id); err != nil {
		t.Fatal(err)
	}
	cl.name = name + "@" + cl.id
	return cl
}

// awaitUser waits until the user's address reaches the client: the handler
// subscribes to it in the background. It sends probes, of their own type,
// until one arrives.
func (c *client) awaitUser(t *testing.T, user string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for i := 0; ; i++ {
		data := fmt.Sprintf("%q", fmt.Sprintf("probe %s %d", c.id, i))
		c.call(t, "Room.Publish", &PublishArgs{Type: "probe", To: "user", Name: user, Data: json.RawMessage(data)})
		if c.within(100*time.Millisecond, func() bool { return c.count("probe", data) > 0 }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the user address %q never reached the connection", c.name, user)
		}
	}
}

// within waits up to d for cond, woken by each event.
func (c *client) within(d time.Duration, cond func() bool) bool {
	timeout := time.After(d)
	for !cond() {
		select {
		case <-c.signal:
		case <-timeout:
			return cond()
		}
	}
	return true
}

func (c *client) onEvent(typ string, data json.RawMessage) {
	c.mu.Lock()
	c.events = append(c.events, typ+" "+string(data))
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *client) call(t *testing.T, method string, args any) {
	t.Helper()
	if err := c.try(method, args); err != nil {
		t.Fatalf("%s: %s: %v", c.name, method, err)
	}
}

// try calls method and returns its error.
func (c *client) try(method string, args any) error {
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	var reply json.RawMessage
	return c.c.CallContext(ctx, method, args, &reply)
}

func (c *client) join(t *testing.T, topic string) {
	t.Helper()
	c.call(t, "Room.Join", &TopicArgs{Topic: topic})
}
func (c *client) leave(t *testing.T, topic string) {
	t.Helper()
	c.call(t, "Room.Leave", &TopicArgs{Topic: topic})
}

func (c *client) publish(t *testing.T, to, name string, except bool, data any) {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	c.call(t, "Room.Publish", &PublishArgs{To: to, Name: name, Except: except, Data: raw})
}

func (c *client) close() { c.c.Close() }

func (c *client) closed() bool {
	select {
	case <-c.c.Done():
		return true
	default:
		return false
	}
}

// ofType returns the data of the events of type typ received so far.
func (c *client) ofType(typ string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.events {
		if d, ok := strings.CutPrefix(e, typ+" "); ok {
			out = append(out, d)
		}
	}
	return out
}

func (c *client) count(typ, data string) int {
	n := 0
	for _, d := range c.ofType(typ) {
		if d == data {
			n++
		}
	}
	return n
}

// waitType waits for n events of type typ and returns their data.
func (c *client) waitType(t *testing.T, typ string, n int) []string {
	t.Helper()
	var got []string
	c.await(t, fmt.Sprintf("%d events %s", n, typ), func() bool {
		got = c.ofType(typ)
		return len(got) >= n
	})
	return got
}

// waitEvent waits for an event of type typ with data.
func (c *client) waitEvent(t *testing.T, typ, data string) {
	t.Helper()
	c.await(t, "event "+typ+" "+data, func() bool { return c.count(typ, data) > 0 })
}

func (c *client) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(Wait)
	for !cond() {
		select {
		case <-c.signal:
		case <-timeout:
			c.mu.Lock()
			got := slices.Clone(c.events)
			c.mu.Unlock()
			t.Fatalf("%s: no %s within %v; events: %q", c.name, what, Wait, got)
		}
	}
}

// waitFor polls cond, for state that announces no event.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
