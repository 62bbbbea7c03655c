package rpcws_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// The wire of sessions, positions and recovery, seen by a raw WebSocket
// client (PROTOCOL.md, "Sessions and recovery").

// HChat is the service of the history tests.
type HChat struct{ h func() *rpcws.Handler }

// ChatArgs names a topic, and what to publish to it.
type ChatArgs struct {
	Topic  string          `json:"topic"`
	Data   json.RawMessage `json:"data"`
	Except bool            `json:"except"` // publish to every member but the caller
	rpcws.Caller
}

func (c *HChat) Join(a *ChatArgs, id *string) error {
	*id = a.Peer().ID()
	return a.Peer().Join(context.Background(), a.Topic)
}

func (c *HChat) Leave(a *ChatArgs, ok *bool) error {
	*ok = true
	return a.Peer().Leave(context.Background(), a.Topic)
}

func (c *HChat) Publish(a *ChatArgs, ok *bool) error {
	*ok = true
	to := rpcws.Topic(a.Topic)
	if a.Except {
		to = to.Except(a.Peer())
	}
	return c.h().Publish(context.Background(), to, "m", a.Data)
}

func (c *HChat) ID(a *ChatArgs, id *string) error {
	*id = a.Peer().ID()
	return nil
}

// histNode is one replica with history and presence on.
type histNode struct {
	h   *rpcws.Handler
	srv *httptest.Server
	url string
}

// newHistNodes starts n replicas on bus; opts, if set, changes their
// options.
func newHistNodes(t *testing.T, bus *rpcws.MemoryBus, n int, opts func(*rpcws.HandlerOptions)) []*histNode {
	t.Helper()
	var nodes []*histNode
	for range n {
		nd := &histNode{}
		srv := rpc.NewServer()
		if err := srv.RegisterName("Chat", &HChat{h: func() *rpcws.Handler { return nd.h }}); err != nil {
			t.Fatal(err)
		}
		o := &rpcws.HandlerOptions{
			Broker:   bus.NewBroker(),
			History:  &rpcws.HistoryOptions{},
			Presence: &rpcws.PresenceOptions{},
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
		nd.srv = httptest.NewServer(nd.h)
		nd.url = "ws" + strings.TrimPrefix(nd.srv.URL, "http")
		t.Cleanup(func() {
			nd.srv.Close()
			nd.h.Shutdown(context.Background())
		})
		nodes = append(nodes, nd)
	}
	return nodes
}

// wframe is one wframe a raw client read.
type wframe struct {
	ID      json.RawMessage `json:"id"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Topic   string          `json:"topic"`
	Epoch   string          `json:"epoch"`
	Offset  uint64          `json:"offset"`
	raw     string
	closeBy websocket.StatusCode // on the wframe that tells the connection ended
}

// wireClient is a WebSocket client that sees every wframe.
type wireClient struct {
	ws     *websocket.Conn
	frames chan wframe // closed after the wframe that tells the end
	nextID atomic.Int64
	done   chan struct{}
}

// dialWire connects to url (user: its ?user=, "" for none).
func dialWire(t *testing.T, url, user string) *wireClient {
	t.Helper()
	if user != "" {
		url += "?user=" + user
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(-1)
	c := &wireClient{ws: ws, frames: make(chan wframe, 1<<16), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() {
		ws.CloseNow()
		<-c.done
	})
	return c
}

func (c *wireClient) read() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, p, err := c.ws.Read(context.Background())
		if err != nil {
			c.frames <- wframe{Type: "closed", closeBy: websocket.CloseStatus(err)}
			return
		}
		var f wframe
		json.Unmarshal(p, &f)
		f.raw = string(p)
		c.frames <- f
	}
}

// next returns the next wframe, failing t after 10 s.
func (c *wireClient) next(t *testing.T) wframe {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatal("the connection ended")
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no wframe within 10 s")
	}
	return wframe{}
}

// send writes a request of type typ with data and returns its id.
func (c *wireClient) send(t *testing.T, typ string, data any) string {
	t.Helper()
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	b, _ := json.Marshal(map[string]any{"id": id, "type": typ, "data": data})
	if err := c.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	return `"` + id + `"`
}

// call sends a request and returns the frames read before its reply, and
// the reply.
func (c *wireClient) call(t *testing.T, typ string, data any) (before []wframe, reply wframe) {
	t.Helper()
	id := c.send(t, typ, data)
	for {
		f := c.next(t)
		if string(f.ID) == id {
			return before, f
		}
		before = append(before, f)
	}
}

// ok calls and fails t on an error reply.
func (c *wireClient) ok(t *testing.T, typ string, data any) []wframe {
	t.Helper()
	before, reply := c.call(t, typ, data)
	if reply.Type == "error" {
		t.Fatalf("%s: %s", typ, reply.raw)
	}
	return before
}

// session reads the connection's first wframe, its session.
func (c *wireClient) session(t *testing.T) rpcws.SessionData {
	t.Helper()
	f := c.next(t)
	var s rpcws.SessionData
	if f.Type != rpcws.SessionEvent || json.Unmarshal(f.Data, &s) != nil {
		t.Fatalf("first wframe %s, want %s", f.raw, rpcws.SessionEvent)
	}
	return s
}

// ofType returns the frames of type typ among fs.
func ofType(fs []wframe, typ string) []wframe {
	var out []wframe
	for _, f := range fs {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

func TestHistoryWireFrames(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, nil)[0]
	c := dialWire(t, nd.url, "")
	s := c.session(t)
	if len(s.ID) < 22 || len(s.ID) > 128 || s.Window != rpcws.DefaultRecoveryWindow.Milliseconds() {
		t.Fatalf("session %d characters, window %d", len(s.ID), s.Window)
	}
	before := c.ok(t, "chat.join", map[string]any{"topic": "room"})
	if len(before) != 1 || before[0].Type != rpcws.JoinedEvent {
		t.Fatalf("before the join's reply: %v", before)
	}
	var joined rpcws.JoinedData
	json.Unmarshal(before[0].Data, &joined)
	if joined.Topic != "room" || joined.Offset != 0 || joined.Epoch == "" {
		t.Fatalf("joined %+v", joined)
	}
	before = c.ok(t, "chat.publish", map[string]any{"topic": "room", "data": 7})
	want := `{"type":"m","data":7,"topic":"room","epoch":"` + joined.Epoch + `","offset":1}`
	if len(before) != 1 || before[0].raw != want {
		t.Fatalf("event %v, want %s", before, want)
	}
	// A second member joins at the topic's offset.
	c2 := dialWire(t, nd.url, "")
	c2.session(t)
	before = c2.ok(t, "chat.join", map[string]any{"topic": "room"})
	json.Unmarshal(before[0].Data, &joined)
	if joined.Offset != 1 {
		t.Fatalf("second join at offset %d, want 1", joined.Offset)
	}
	before = c.ok(t, "chat.leave", map[string]any{"topic": "room"})
	if len(before) != 1 || before[0].raw != `{"type":"rpcws.left","data":{"topic":"room"}}` {
		t.Fatalf("before the leave's reply: %v", before)
	}
	// Events to other addresses carry no position.
	if err := nd.h.Publish(context.Background(), rpcws.All(), "b", 1); err != nil {
		t.Fatal(err)
	}
	if f := c.next(t); f.raw != `{"type":"b","data":1}` {
		t.Fatalf("broadcast %s", f.raw)
	}
}

// Without History, no session wframe: the first wframe is the first reply.
func TestNoHistoryNoSessionFrame(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, func(o *rpcws.HandlerOptions) { o.History, o.Presence = nil, nil })[0]
	c := dialWire(t, nd.url, "")
	before := c.ok(t, "chat.join", map[string]any{"topic": "room"})
	if len(before) != 0 {
		t.Fatalf("frames before the first reply: %v", before)
	}
	before, reply := c.call(t, "rpcws.recover", map[string]any{"session": "x"})
	if len(before) != 0 || reply.Code != "MethodNotFound" {
		t.Fatalf("rpcws.recover without history: %v %s", before, reply.raw)
	}
	if _, err := nd.h.History(context.Background(), "room", 10); err != rpcws.ErrNoHistory {
		t.Errorf("History: %v", err)
	}
	if _, err := nd.h.Presence(context.Background(), "room"); err != rpcws.ErrNoPresence {
		t.Errorf("Presence: %v", err)
	}
}

// recoverArgs is what a client sends to recover: its session and
// positions.
func recoverArgs(session string, pos map[string]rpcws.Position) map[string]any {
	return map[string]any{"session": session, "topics": pos}
}

// recoverReply decodes the reply of a recover.
func recoverReply(t *testing.T, f wframe) rpcws.RecoverReply {
	t.Helper()
	var r rpcws.RecoverReply
	if f.Type != rpcws.RecoverMethod+".response" || json.Unmarshal(f.Data, &r) != nil {
		t.Fatalf("recover reply %s", f.raw)
	}
	return r
}

// resyncTopics returns the topics of the resync frames among fs.
func resyncTopics(fs []wframe) [][]string {
	var out [][]string
	for _, f := range ofType(fs, rpcws.ResyncEvent) {
		var d struct{ Topics []string }
		json.Unmarshal(f.Data, &d)
		out = append(out, d.Topics)
	}
	return out
}

// offsetsOf returns the offsets of the "m" events of topic among fs.
func offsetsOf(fs []wframe, topic string) []uint64 {
	var out []uint64
	for _, f := range ofType(fs, "m") {
		if f.Topic == topic {
			out = append(out, f.Offset)
		}
	}
	return out
}

// dropped closes a client's socket at once and waits until its replica has
// seen it go.
func dropped(t *testing.T, nd *histNode, c *wireClient, conns int) {
	t.Helper()
	c.ws.CloseNow()
	testutil.WaitFor(t, "the replica to see the connection close", func() bool { return nd.h.NumConns() <= conns })
}

func TestRecoverReplaysMissed(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nodes := newHistNodes(t, &bus, 2, nil)
	pub := dialWire(t, nodes[1].url, "")
	pub.session(t)
	c := dialWire(t, nodes[0].url, "ann")
	s := c.session(t)
	joined := ofType(c.ok(t, "chat.join", map[string]any{"topic": "a"}), rpcws.JoinedEvent)
	c.ok(t, "chat.join", map[string]any{"topic": "quiet"})
	var ja rpcws.JoinedData
	json.Unmarshal(joined[0].Data, &ja)
	for i := range 3 {
		pub.ok(t, "chat.publish", map[string]any{"topic": "a", "data": i})
	}
	got := offsetsOf(c.ok(t, "chat.id", nil), "a")
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("live offsets %v", got)
	}
	// The client publishes to everyone but itself, then drops; more
	// events follow while it is away.
	c.ok(t, "chat.publish", map[string]any{"topic": "a", "data": "mine", "except": true})
	qpos := quietPosition(t, nodes[0].h, "quiet")
	dropped(t, nodes[0], c, 0)
	for i := range 3 {
		pub.ok(t, "chat.publish", map[string]any{"topic": "a", "data": 10 + i})
	}
	c2 := dialWire(t, nodes[1].url, "ann")
	c2.session(t)
	before, reply := c2.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{
		"a": {Epoch: ja.Epoch, Offset: 3}, "quiet": qpos, "never": {Epoch: "x", Offset: 0}}))
	r := recoverReply(t, reply)
	if !r.Recovered || len(r.Topics) != 2 || !r.Topics["a"].Recovered || !r.Topics["quiet"].Recovered || r.Topics["a"].Offset != 7 {
		t.Fatalf("recover reply %s", reply.raw)
	}
	if got := offsetsOf(before, "a"); fmt.Sprint(got) != "[5 6 7]" {
		t.Fatalf("replayed offsets %v, want [5 6 7] (4 excluded the old connection): %v", got, before)
	}
	if len(ofType(before, rpcws.ResyncEvent)) != 0 || len(ofType(before, rpcws.JoinedEvent)) != 0 {
		t.Fatalf("resync or joined frames in a full recovery: %v", before)
	}
	// Live events follow; the topic it never held is not joined.
	pub.ok(t, "chat.publish", map[string]any{"topic": "a", "data": 20})
	pub.ok(t, "chat.publish", map[string]any{"topic": "never", "data": 20})
	if f := c2.next(t); f.Topic != "a" || f.Offset != 8 {
		t.Fatalf("live event after recovery %s", f.raw)
	}
	if before := c2.ok(t, "chat.id", nil); len(before) != 0 {
		t.Fatalf("events of a topic the session never held: %v", before)
	}
	m, err := nodes[0].h.Presence(context.Background(), "a")
	if err != nil || len(m) != 1 || m[0].User != "ann" {
		t.Fatalf("presence %v %v", m, err)
	}
	// Used twice: nothing restored, every listed topic resynced.
	c3 := dialWire(t, nodes[0].url, "ann")
	c3.session(t)
	before, reply = c3.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{"a": {Epoch: ja.Epoch, Offset: 3}}))
	if r := recoverReply(t, reply); r.Recovered || len(r.Topics) != 0 {
		t.Fatalf("a session recovered twice: %s", reply.raw)
	}
	if got := resyncTopics(before); fmt.Sprint(got) != "[[a]]" {
		t.Fatalf("resyncs %v", got)
	}
}

// quietPosition reads a topic's position through the handler.
func quietPosition(t *testing.T, h *rpcws.Handler, topic string) rpcws.Position {
	t.Helper()
	th, err := h.History(context.Background(), topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	return rpcws.Position{Epoch: th.Epoch, Offset: th.Offset}
}

// A session restores nothing for another identity, a guessed id, or a
// listed topic the session never held; rpcws.recover after the first
// wframe is BadRequest.
func TestRecoverRefused(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, nil)[0]
	// session returns the id of a session of ann's in topic a, whose
	// connection has closed.
	session := func() string {
		c := dialWire(t, nd.url, "ann")
		s := c.session(t)
		c.ok(t, "chat.join", map[string]any{"topic": "a"})
		dropped(t, nd, c, 0)
		return s.ID
	}
	id := session()
	for _, tc := range []struct{ name, user, session string }{
		{"other identity", "bob", session()},
		{"no identity", "", session()},
		{"guessed", "ann", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"empty", "ann", ""},
		{"long", "ann", strings.Repeat("a", 129)},
	} {
		c2 := dialWire(t, nd.url, tc.user)
		c2.session(t)
		before, reply := c2.call(t, rpcws.RecoverMethod, recoverArgs(tc.session, map[string]rpcws.Position{"a": {Epoch: "e", Offset: 1}}))
		if r := recoverReply(t, reply); r.Recovered || len(r.Topics) != 0 {
			t.Errorf("%s: restored %s", tc.name, reply.raw)
		}
		if got := resyncTopics(before); fmt.Sprint(got) != "[[a]]" {
			t.Errorf("%s: resyncs %v", tc.name, got)
		}
		before = c2.ok(t, "chat.publish", map[string]any{"topic": "a", "data": 1})
		if len(ofType(before, "m")) != 0 {
			t.Errorf("%s: joined to the session's topic", tc.name)
		}
		c2.ws.CloseNow()
	}
	// Guesses did not spend the session.
	c3 := dialWire(t, nd.url, "ann")
	c3.session(t)
	_, reply := c3.call(t, rpcws.RecoverMethod, recoverArgs(id, nil))
	if r := recoverReply(t, reply); !r.Recovered || len(r.Topics) != 1 {
		t.Fatalf("the owner could not recover: %s", reply.raw)
	}
	_, reply = c3.call(t, rpcws.RecoverMethod, recoverArgs(id, nil))
	if reply.Type != "error" || reply.Code != "BadRequest" {
		t.Fatalf("a second rpcws.recover: %s", reply.raw)
	}
	c4 := dialWire(t, nd.url, "ann")
	c4.session(t)
	c4.ok(t, "chat.id", nil)
	if err := c4.ws.Write(context.Background(), websocket.MessageText, []byte(`{"id":"e","type":"rpcws\u002erecover","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	if reply = c4.next(t); string(reply.ID) != `"e"` || reply.Code != "BadRequest" {
		t.Fatalf("an escaped rpcws.recover after a request: %s", reply.raw)
	}
	_, reply = c4.call(t, rpcws.RecoverMethod, recoverArgs("x", nil))
	if reply.Type != "error" || reply.Code != "BadRequest" {
		t.Fatalf("rpcws.recover after a request: %s", reply.raw)
	}
}

// Past the history size the topic is joined but not recovered: one resync
// names it, and live events follow.
func TestRecoverPastHistorySize(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, func(o *rpcws.HandlerOptions) { o.History.Size = 5 })[0]
	pub := dialWire(t, nd.url, "")
	pub.session(t)
	c := dialWire(t, nd.url, "")
	s := c.session(t)
	c.ok(t, "chat.join", map[string]any{"topic": "a"})
	c.ok(t, "chat.join", map[string]any{"topic": "b"})
	pa, pb := quietPosition(t, nd.h, "a"), quietPosition(t, nd.h, "b")
	dropped(t, nd, c, 1)
	for i := range 6 {
		pub.ok(t, "chat.publish", map[string]any{"topic": "a", "data": i})
	}
	for i := range 5 {
		pub.ok(t, "chat.publish", map[string]any{"topic": "b", "data": i})
	}
	c2 := dialWire(t, nd.url, "")
	c2.session(t)
	before, reply := c2.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{"a": pa, "b": pb}))
	r := recoverReply(t, reply)
	if !r.Recovered || r.Topics["a"].Recovered || !r.Topics["b"].Recovered || r.Topics["a"].Offset != 6 {
		t.Fatalf("reply %s", reply.raw)
	}
	if got := resyncTopics(before); fmt.Sprint(got) != "[[a]]" {
		t.Fatalf("resyncs %v", got)
	}
	if got := offsetsOf(before, "b"); fmt.Sprint(got) != "[1 2 3 4 5]" || len(offsetsOf(before, "a")) != 0 {
		t.Fatalf("replayed %v", before)
	}
	before = pub.ok(t, "chat.publish", map[string]any{"topic": "a", "data": 9})
	if f := c2.next(t); f.Topic != "a" || f.Offset != 7 {
		t.Fatalf("live after resync %s", f.raw)
	}
	_ = before
}

// A recovered session's old connection, still open, is closed with 1008.
func TestRecoverTakesOver(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nodes := newHistNodes(t, &bus, 2, nil)
	old := dialWire(t, nodes[0].url, "")
	s := old.session(t)
	old.ok(t, "chat.join", map[string]any{"topic": "a"})
	c := dialWire(t, nodes[1].url, "")
	c.session(t)
	_, reply := c.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, nil))
	if r := recoverReply(t, reply); !r.Recovered {
		t.Fatalf("reply %s", reply.raw)
	}
	for {
		f := old.next(t)
		if f.Type == "closed" {
			if f.closeBy != websocket.StatusPolicyViolation {
				t.Fatalf("old connection closed with %d", f.closeBy)
			}
			break
		}
	}
	// Its close did not bring the session back.
	c2 := dialWire(t, nodes[0].url, "")
	c2.session(t)
	_, reply = c2.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, nil))
	if r := recoverReply(t, reply); r.Recovered {
		t.Fatalf("recovered a taken session again: %s", reply.raw)
	}
}

// Presence lists a connection from its join, and not once it left or
// closed.
func TestPresenceJoinLeaveClose(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nodes := newHistNodes(t, &bus, 2, nil)
	ctx := context.Background()
	a := dialWire(t, nodes[0].url, "ann")
	a.session(t)
	b := dialWire(t, nodes[1].url, "")
	b.session(t)
	var ida, idb string
	json.Unmarshal(a.ok(t, "chat.join", map[string]any{"topic": "p"})[0].Data, new(any))
	_, r := a.call(t, "chat.id", nil)
	json.Unmarshal(r.Data, &ida)
	b.ok(t, "chat.join", map[string]any{"topic": "p"})
	b.ok(t, "chat.join", map[string]any{"topic": "p"}) // twice is once
	_, r = b.call(t, "chat.id", nil)
	json.Unmarshal(r.Data, &idb)
	members := func() string {
		m, err := nodes[1].h.Presence(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, x := range m {
			s = append(s, x.Peer+"/"+x.User)
		}
		return strings.Join(sortedStrings(s), " ")
	}
	want := strings.Join(sortedStrings([]string{ida + "/ann", idb + "/"}), " ")
	if got := members(); got != want {
		t.Fatalf("presence %q, want %q", got, want)
	}
	a.ok(t, "chat.leave", map[string]any{"topic": "p"})
	if got := members(); got != idb+"/" {
		t.Fatalf("after leave %q", got)
	}
	dropped(t, nodes[1], b, 0)
	if got := members(); got != "" {
		t.Fatalf("after close %q", got)
	}
}

func sortedStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestHistoryRead(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, nil)[0]
	ctx := context.Background()
	for i := range 5 {
		if err := nd.h.Publish(ctx, rpcws.Topic("h"), "m", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	th, err := nd.h.History(ctx, "h", 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(th.Events)
	if th.Offset != 5 || th.Epoch == "" || string(b) != `[{"offset":3,"type":"m","data":{"n":2}},{"offset":4,"type":"m","data":{"n":3}},{"offset":5,"type":"m","data":{"n":4}}]` {
		t.Fatalf("history %+v %s", th, b)
	}
	for _, limit := range []int{0, -1, 1001} {
		if _, err := nd.h.History(ctx, "h", limit); !errors.Is(err, rpcws.ErrBadLimit) {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	if _, err := nd.h.History(ctx, "", 1); !errors.Is(err, rpcws.ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	th, err = nd.h.History(ctx, "empty", 10)
	if err != nil || th.Offset != 0 || len(th.Events) != 0 {
		t.Errorf("empty topic %+v %v", th, err)
	}
}

// Lacking the broker interfaces, the handler says so and runs without.
func TestHistoryBrokerLacks(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	var log testutil.SyncBuffer
	h := rpcws.NewHandler(nil, &rpcws.HandlerOptions{
		Broker:   plainBroker{bus.NewBroker()},
		History:  &rpcws.HistoryOptions{},
		Presence: &rpcws.PresenceOptions{},
		Logger:   slog.New(slog.NewTextHandler(&log, nil)),
	})
	defer h.Shutdown(context.Background())
	if _, err := h.History(context.Background(), "a", 1); err != rpcws.ErrNoHistory {
		t.Errorf("History: %v", err)
	}
	if _, err := h.Presence(context.Background(), "a"); err != rpcws.ErrNoPresence {
		t.Errorf("Presence: %v", err)
	}
	if n := strings.Count(log.String(), "level=ERROR"); n != 2 {
		t.Errorf("%d Error lines:\n%s", n, log.String())
	}
}

// plainBroker hides the optional interfaces of the broker it wraps.
type plainBroker struct{ rpcws.Broker }

// An offset at or below the last is never delivered twice; an epoch change
// is told with a resync naming the topic, and delivery goes on.
func TestPositionsDedupAndEpoch(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, nil)[0]
	c := dialWire(t, nd.url, "")
	c.session(t)
	var j rpcws.JoinedData
	json.Unmarshal(c.ok(t, "chat.join", map[string]any{"topic": "a"})[0].Data, &j)
	c.ok(t, "chat.publish", map[string]any{"topic": "a", "data": 1})
	nd.h.DeliverAt("a", rpcws.Position{Epoch: j.Epoch, Offset: 1}, "m", []byte(`"again"`))
	nd.h.DeliverAt("a", rpcws.Position{Epoch: "new", Offset: 1}, "m", []byte(`"new epoch"`))
	nd.h.DeliverAt("a", rpcws.Position{Epoch: "new", Offset: 1}, "m", []byte(`"new epoch again"`))
	nd.h.DeliverAt("a", rpcws.Position{Epoch: "new", Offset: 2}, "m", []byte(`"next"`))
	var got []string
	for _, f := range c.ok(t, "chat.id", nil) {
		got = append(got, f.raw)
	}
	want := []string{
		`{"type":"rpcws.resync","data":{"topics":["a"]}}`,
		`{"type":"m","data":"new epoch","topic":"a","epoch":"new","offset":1}`,
		`{"type":"m","data":"next","topic":"a","epoch":"new","offset":2}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A replica without history delivers the events that one with history
// published as it always did: no position, no frame of sessions.
func TestMixedReplicas(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	with := newHistNodes(t, &bus, 1, nil)[0]
	without := newHistNodes(t, &bus, 1, func(o *rpcws.HandlerOptions) { o.History, o.Presence = nil, nil })[0]
	c := dialWire(t, without.url, "")
	c.ok(t, "chat.join", map[string]any{"topic": "a"})
	if err := with.h.Publish(context.Background(), rpcws.Topic("a"), "m", 1); err != nil {
		t.Fatal(err)
	}
	if f := c.next(t); f.raw != `{"type":"m","data":1}` {
		t.Fatalf("event %s", f.raw)
	}
}

// A takeover from the broker closes a connection only when it carries the
// hash of that connection's session: a forged one closes nothing.
func TestForgedTakeover(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, nil)[0]
	c := dialWire(t, nd.url, "")
	s := c.session(t)
	_, r := c.call(t, "chat.id", nil)
	var peer string
	json.Unmarshal(r.Data, &peer)
	raw := bus.NewBroker()
	defer raw.Close()
	takeover := func(secret string) {
		sum := sha256.Sum256([]byte(secret))
		msg := append([]byte{2, byte(len(peer))}, peer...)
		msg = append(msg, sum[:]...)
		node := peer[:strings.LastIndexByte(peer, '.')]
		if err := raw.Publish(context.Background(), "rpcws.n."+node, msg); err != nil {
			t.Fatal(err)
		}
	}
	takeover("a guess")
	takeover("")
	if before := c.ok(t, "chat.id", nil); len(before) != 0 {
		t.Fatalf("frames after forged takeovers: %v", before)
	}
	takeover(s.ID)
	if f := c.next(t); f.Type != "closed" || f.closeBy != websocket.StatusPolicyViolation {
		t.Fatalf("after a takeover with the session's hash: %s %d", f.raw, f.closeBy)
	}
}

// A replay larger than the connection's queue waits for room, as Notify
// does: the client gets every event, and is not cut as a slow consumer.
func TestReplayWaitsForRoom(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, func(o *rpcws.HandlerOptions) {
		o.History.Size = 300
		o.MaxQueuedBytes = 512
	})[0]
	c := dialWire(t, nd.url, "")
	s := c.session(t)
	var j rpcws.JoinedData
	json.Unmarshal(c.ok(t, "chat.join", map[string]any{"topic": "big"})[0].Data, &j)
	dropped(t, nd, c, 0)
	pad := strings.Repeat("x", 200)
	for i := range 300 {
		if err := nd.h.Publish(context.Background(), rpcws.Topic("big"), "m", pad+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	c2 := dialWire(t, nd.url, "")
	c2.session(t)
	before, reply := c2.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{"big": {Epoch: j.Epoch}}))
	if r := recoverReply(t, reply); !r.Recovered || !r.Topics["big"].Recovered {
		t.Fatalf("reply %s", reply.raw)
	}
	got := offsetsOf(before, "big")
	if len(got) != 300 || got[0] != 1 || got[299] != 300 {
		t.Fatalf("replayed %d events", len(got))
	}
}

// Topics returns the caller's topics.
func (c *HChat) Topics(a *ChatArgs, topics *[]string) error {
	*topics = a.Peer().Topics()
	return nil
}

// Joins and leaves of one topic racing on one connection leave the client
// with the last word the server's: the last of its rpcws.joined and
// rpcws.left frames tells whether it is a member.
func TestJoinLeaveRace(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, nil)[0]
	c := dialWire(t, nd.url, "")
	c.session(t)
	for round := range 20 {
		ids := map[string]bool{}
		for i := range 10 {
			typ := "chat.join"
			if i%2 == 1 {
				typ = "chat.leave"
			}
			ids[c.send(t, typ, map[string]any{"topic": "r"})] = true
		}
		member := false
		for len(ids) > 0 {
			f := c.next(t)
			switch {
			case ids[string(f.ID)]:
				delete(ids, string(f.ID))
			case f.Type == rpcws.JoinedEvent:
				member = true
			case f.Type == rpcws.LeftEvent:
				member = false
			}
		}
		_, r := c.call(t, "chat.topics", nil)
		if got := string(r.Data) == `["r"]`; got != member {
			t.Fatalf("round %d: the frames say member %v, the server %s", round, member, r.Data)
		}
	}
}

// A replay counts in the handler's byte budget until written: one the
// budget has no room for is not made, and the topic is resynced instead,
// while a small one on the same handler is replayed.
func TestReplayWithinBudget(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	nd := newHistNodes(t, &bus, 1, func(o *rpcws.HandlerOptions) { o.MaxBytes = 256 << 10 })[0]
	pub := dialWire(t, nd.url, "")
	pub.session(t)
	c := dialWire(t, nd.url, "")
	s := c.session(t)
	c.ok(t, "chat.join", map[string]any{"topic": "big"})
	c.ok(t, "chat.join", map[string]any{"topic": "small"})
	pBig, pSmall := quietPosition(t, nd.h, "big"), quietPosition(t, nd.h, "small")
	dropped(t, nd, c, 1)
	large := strings.Repeat("x", 100<<10)
	for range 3 { // 300 KiB of events, 600 KiB with their frames
		pub.ok(t, "chat.publish", map[string]any{"topic": "big", "data": large})
	}
	pub.ok(t, "chat.publish", map[string]any{"topic": "small", "data": "s"})
	c2 := dialWire(t, nd.url, "")
	c2.session(t)
	before, reply := c2.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{"big": pBig, "small": pSmall}))
	r := recoverReply(t, reply)
	if !r.Recovered || r.Topics["big"].Recovered || !r.Topics["small"].Recovered {
		t.Fatalf("reply %s", reply.raw)
	}
	if got := resyncTopics(before); fmt.Sprint(got) != "[[big]]" {
		t.Fatalf("resyncs %v", got)
	}
	if len(offsetsOf(before, "big")) != 0 || fmt.Sprint(offsetsOf(before, "small")) != "[1]" {
		t.Fatalf("replayed big %v, small %v", offsetsOf(before, "big"), offsetsOf(before, "small"))
	}
}

// gatedHistory is an in-process broker whose History waits, once armed,
// until the test lets it go.
type gatedHistory struct {
	rpcws.HistoryBroker
	rpcws.SessionBroker
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGatedHistory(bus *rpcws.MemoryBus) *gatedHistory {
	b := bus.NewBroker()
	return &gatedHistory{HistoryBroker: b.(rpcws.HistoryBroker), SessionBroker: b.(rpcws.SessionBroker),
		entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedHistory) Start(r rpcws.BrokerReceiver) error { return g.HistoryBroker.Start(r) }
func (g *gatedHistory) Subscribe(ctx context.Context, s string) error {
	return g.HistoryBroker.Subscribe(ctx, s)
}
func (g *gatedHistory) Unsubscribe(ctx context.Context, s string) error {
	return g.HistoryBroker.Unsubscribe(ctx, s)
}
func (g *gatedHistory) Publish(ctx context.Context, s string, m []byte) error {
	return g.HistoryBroker.Publish(ctx, s, m)
}
func (g *gatedHistory) Close() error { return g.HistoryBroker.Close() }

// History reads, then, once armed, waits before it answers: what is
// published meanwhile is not in its answer, and reaches the connection live.
func (g *gatedHistory) History(ctx context.Context, s string, after uint64, limit int) (rpcws.Position, []rpcws.HistoryEvent, error) {
	pos, events, err := g.HistoryBroker.History(ctx, s, after, limit)
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return pos, events, ctx.Err()
		}
	}
	return pos, events, err
}

// A recovery whose connection closes before its reply puts the session
// back: the client, which never had the reply, recovers with it again.
func TestRecoveryCutPutsSessionBack(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	g := newGatedHistory(&bus)
	nd := newHistNodes(t, &bus, 1, func(o *rpcws.HandlerOptions) { o.Broker = g; o.Presence = nil })[0]
	c := dialWire(t, nd.url, "ann")
	s := c.session(t)
	c.ok(t, "chat.join", map[string]any{"topic": "a"})
	pos := quietPosition(t, nd.h, "a")
	dropped(t, nd, c, 0)
	if err := nd.h.Publish(context.Background(), rpcws.Topic("a"), "m", 1); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	c2 := dialWire(t, nd.url, "ann")
	c2.session(t)
	c2.send(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{"a": pos}))
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the recovery never read the topic's history")
	}
	nd.h.Peers()[0].Cut()
	close(g.release)
	dropped(t, nd, c2, 0)

	c3 := dialWire(t, nd.url, "ann")
	c3.session(t)
	before, reply := c3.call(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{"a": pos}))
	if r := recoverReply(t, reply); !r.Recovered || !r.Topics["a"].Recovered {
		t.Fatalf("the second recovery with the session put back: %s", reply.raw)
	}
	if got := offsetsOf(before, "a"); fmt.Sprint(got) != "[1]" {
		t.Fatalf("replayed %v", got)
	}
}

// Live events held while a recovery reads the history count in the
// handler's byte budget: past it they are dropped, and the topic is
// resynced rather than held without bound.
func TestHeldEventsWithinBudget(t *testing.T) {
	t.Parallel()
	var bus rpcws.MemoryBus
	g := newGatedHistory(&bus)
	nd := newHistNodes(t, &bus, 1, func(o *rpcws.HandlerOptions) {
		o.Broker, o.Presence, o.MaxBytes = g, nil, 256<<10
	})[0]
	c := dialWire(t, nd.url, "")
	s := c.session(t)
	c.ok(t, "chat.join", map[string]any{"topic": "a"})
	pos := quietPosition(t, nd.h, "a")
	dropped(t, nd, c, 0)
	g.armed.Store(true)
	c2 := dialWire(t, nd.url, "")
	c2.session(t)
	id := c2.send(t, rpcws.RecoverMethod, recoverArgs(s.ID, map[string]rpcws.Position{"a": pos}))
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the recovery never read the topic's history")
	}
	large := strings.Repeat("x", 100<<10)
	for range 4 { // 400 KiB held, over the 256 KiB budget
		if err := nd.h.Publish(context.Background(), rpcws.Topic("a"), "m", large); err != nil {
			t.Fatal(err)
		}
	}
	close(g.release)
	var before []wframe
	for {
		f := c2.next(t)
		if string(f.ID) == id {
			if r := recoverReply(t, f); !r.Recovered || r.Topics["a"].Recovered {
				t.Fatalf("reply %s: want the session restored and topic a not recovered", f.raw)
			}
			break
		}
		before = append(before, f)
	}
	if got := resyncTopics(before); fmt.Sprint(got) != "[[a]]" {
		t.Fatalf("resyncs %v, want one naming a", got)
	}
	if n := len(offsetsOf(before, "a")); n >= 4 {
		t.Fatalf("%d of 4 held events of 100 KiB written with a 256 KiB budget", n)
	}
}
