package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/rpcws"
)

// RunRecovery is the end-to-end suite of sessions and recovery on brokers
// that keep history and sessions (PROTOCOL.md, "Sessions and recovery"):
// three replicas with [rpcws.HandlerOptions.History], 30 clients that
// drop their sockets mid-stream and recover on another replica while
// another client publishes, each getting every event exactly once and in
// order; a replay that leaves out the events that excluded the old
// connection; recovery from a replica shut down or crashed; and the
// resync past the history size and past the recovery
// window. newBroker must return brokers that implement
// [rpcws.HistoryBroker] and [rpcws.SessionBroker].
func RunRecovery(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	t.Run("ExactlyOnce", func(t *testing.T) { testExactlyOnce(t, newBroker) })
	t.Run("Excluded", func(t *testing.T) { testReplayExcluded(t, newBroker) })
	t.Run("ReplicaGone", func(t *testing.T) { testRecoverReplicaGone(t, newBroker) })
	t.Run("PastHistorySize", func(t *testing.T) { testPastHistorySize(t, newBroker) })
	t.Run("PastWindow", func(t *testing.T) { testPastWindow(t, newBroker) })
}

// withHistory returns the options of replicas that keep history.
func withHistory(h rpcws.HistoryOptions) func(*rpcws.HandlerOptions) {
	return func(o *rpcws.HandlerOptions) { o.History = &h }
}

func testExactlyOnce(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	const clients, events = 30, 300
	nodes := newNodesWith(t, newBroker, 3, withHistory(rpcws.HistoryOptions{Size: 1000}))
	topic := uniqueTopic("feed")
	var rcs []*rclient
	for i := range clients {
		user := ""
		if i%4 != 0 {
			user = "u" + strconv.Itoa(i)
		}
		rc := connectR(t, nodes[i%3], user)
		rc.joinR(t, topic)
		rcs = append(rcs, rc)
	}
	pub := nodes[0].dialQuiet(t, "")
	errs := make(chan error, clients+1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the publisher, at the pace of its replies
		defer wg.Done()
		for i := 1; i <= events; i++ {
			if err := pub.try("Room.Publish", &PublishArgs{To: "topic", Name: topic, Data: json.RawMessage(strconv.Itoa(i))}); err != nil {
				errs <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
	}()
	for i, rc := range rcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each client drops at its own points of the stream, once or
			// twice, and recovers on the next replica.
			drops := []uint64{uint64(1 + i*37%(events-40))}
			if i%2 == 0 {
				drops = append(drops, drops[0]+uint64(10+i))
			}
			errs <- rc.follow(nodes, i, topic, events, drops)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// follow reads rc's events of topic until the last, dropping the socket
// after the offsets in drops and recovering on the next replica each time.
// Every event must arrive once, in order, with its offset as its data.
func (rc *rclient) follow(nodes []*node, i int, topic string, last uint64, drops []uint64) error {
	deadline := time.Now().Add(6 * Wait)
	for rc.pos[topic].Offset < last {
		if len(drops) > 0 && rc.pos[topic].Offset >= drops[0] {
			drops = drops[1:]
			i++
			r, err := rc.reconnect(nodes[i%len(nodes)])
			if err != nil {
				return err
			}
			if tr := r.Topics[topic]; !r.Recovered || !tr.Recovered {
				return fmt.Errorf("%s: not recovered at offset %d: %+v", rc.name, rc.pos[topic].Offset, r)
			}
			continue
		}
		if err := rc.step(deadline); err != nil {
			return err
		}
	}
	if len(rc.resyncs) > 0 {
		return fmt.Errorf("%s: resyncs %v in a full recovery", rc.name, rc.resyncs)
	}
	got := rc.got[topic]
	for k, e := range got {
		if e.offset != uint64(k+1) || e.data != strconv.Itoa(k+1) {
			return fmt.Errorf("%s: event %d is offset %d data %s, want %d", rc.name, k, e.offset, e.data, k+1)
		}
	}
	return nil
}

func testReplayExcluded(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodesWith(t, newBroker, 2, withHistory(rpcws.HistoryOptions{}))
	topic := uniqueTopic("excluded")
	a := connectR(t, nodes[0], "ada")
	a.joinR(t, topic)
	b := nodes[1].dialQuiet(t, "")
	b.join(t, topic)
	// a publishes to every member but itself, then drops before b's.
	if _, err := a.request("Room.Publish", &PublishArgs{To: "topic", Name: topic, Except: true, Data: json.RawMessage(`"not to ada"`)}, time.Now().Add(Wait)); err != nil {
		t.Fatal(err)
	}
	a.drop()
	b.publish(t, "topic", topic, false, "to all")
	r, err := a.reconnect(nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	if !r.Recovered || !r.Topics[topic].Recovered || r.Topics[topic].Offset != 2 {
		t.Fatalf("reply %+v", r)
	}
	if got := a.got[topic]; len(got) != 1 || got[0].offset != 2 || got[0].data != `"to all"` {
		t.Fatalf("replayed %+v, want offset 2 only", got)
	}
}

// A client recovers on another replica when its own shut down gracefully
// (its sessions saved as the connections closed) or crashed (its sessions
// as last saved and vouched for).
func testRecoverReplicaGone(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodesWith(t, newBroker, 3, withHistory(rpcws.HistoryOptions{}))
	topic := uniqueTopic("gone")
	a := connectR(t, nodes[0], "ada")
	a.joinR(t, topic)
	b := connectR(t, nodes[1], "")
	b.joinR(t, topic)
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := nodes[0].h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	nodes[1].stop()
	pub := nodes[2].dialQuiet(t, "")
	for i := 1; i <= 3; i++ {
		pub.publish(t, "topic", topic, false, i)
	}
	for _, rc := range []*rclient{a, b} {
		r, err := rc.reconnect(nodes[2])
		if err != nil {
			t.Fatal(err)
		}
		if !r.Recovered || !r.Topics[topic].Recovered || r.Topics[topic].Offset != 3 || len(rc.got[topic]) != 3 {
			t.Errorf("%s: reply %+v, replayed %v", rc.name, r, rc.got[topic])
		}
	}
}

func testPastHistorySize(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := newNodesWith(t, newBroker, 2, withHistory(rpcws.HistoryOptions{Size: 5}))
	topic, kept := uniqueTopic("past-size"), uniqueTopic("kept")
	a := connectR(t, nodes[0], "")
	a.joinR(t, topic)
	a.joinR(t, kept)
	a.drop()
	pub := nodes[1].dialQuiet(t, "")
	for i := range 8 {
		pub.publish(t, "topic", topic, false, i)
	}
	pub.publish(t, "topic", kept, false, "k")
	r, err := a.reconnect(nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	if !r.Recovered || r.Topics[topic].Recovered || r.Topics[topic].Offset != 8 || !r.Topics[kept].Recovered {
		t.Fatalf("reply %+v", r)
	}
	if fmt.Sprint(a.resyncs) != fmt.Sprint([][]string{{topic}}) {
		t.Fatalf("resyncs %v, want one naming %s", a.resyncs, topic)
	}
	if len(a.got[topic]) != 0 || len(a.got[kept]) != 1 {
		t.Fatalf("replayed %v", a.got)
	}
	pub.publish(t, "topic", topic, false, "after")
	for a.pos[topic].Offset < 9 {
		if err := a.step(time.Now().Add(Wait)); err != nil {
			t.Fatal(err)
		}
	}
}

func testPastWindow(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	const window = 500 * time.Millisecond
	nodes := newNodesWith(t, newBroker, 2, withHistory(rpcws.HistoryOptions{RecoveryWindow: window}))
	topic := uniqueTopic("past-window")
	a := connectR(t, nodes[0], "ada")
	a.joinR(t, topic)
	a.drop()
	waitFor(t, "the replica to see the connection close", func() bool { return nodes[0].h.NumConns() == 0 })
	awaitExpiry(t, newBroker, window)
	r, err := a.reconnect(nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	if r.Recovered || len(r.Topics) != 0 {
		t.Fatalf("recovered past the window: %+v", r)
	}
	if fmt.Sprint(a.resyncs) != fmt.Sprint([][]string{{topic}}) {
		t.Fatalf("resyncs %v, want one naming %s", a.resyncs, topic)
	}
}

// awaitExpiry waits until sessions saved now with ttl have expired in the
// engine, which announces nothing: it saves probes now, and takes one after
// another until one is gone. A session saved before them is gone too.
func awaitExpiry(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, ttl time.Duration) {
	t.Helper()
	sb := sessionNodes(t, newBroker, 1)[0]
	const probes = 1000
	base := sessionID("probe")
	for i := range probes {
		save(t, sb, base+strconv.Itoa(i), "probe", ttl)
	}
	i := 0
	waitFor(t, "sessions to expire", func() bool {
		if i == probes {
			t.Fatalf("sessions saved with a TTL of %v still there after %d polls", ttl, probes)
		}
		_, err := take(t, sb, base+strconv.Itoa(i))
		i++
		return errors.Is(err, rpcws.ErrNoSession)
	})
}

// rclient is a client that recovers by itself, on a raw WebSocket: it
// keeps its session and positions, and checks each topic event's offset.
type rclient struct {
	name, user string
	ws         *websocket.Conn
	frames     chan rframe // of the current connection; closed at its end
	session    string
	nextID     int
	pos        map[string]rpcws.Position
	got        map[string][]gotEvent
	resyncs    [][]string
}

type gotEvent struct {
	offset uint64
	data   string
}

// rframe is a frame as the client reads it.
type rframe struct {
	ID     json.RawMessage `json:"id"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	Topic  string          `json:"topic"`
	Epoch  string          `json:"epoch"`
	Offset uint64          `json:"offset"`
	raw    string
}

// connectR connects a recovering client of user to n.
func connectR(t *testing.T, n *node, user string) *rclient {
	t.Helper()
	rc := &rclient{name: "client of " + user, user: user, pos: map[string]rpcws.Position{}, got: map[string][]gotEvent{}}
	s, err := rc.connect(n)
	if err != nil {
		t.Fatal(err)
	}
	rc.session = s
	t.Cleanup(rc.drop)
	return rc
}

// connect dials n and reads the session frame; it returns the session.
func (rc *rclient) connect(n *node) (string, error) {
	url := "ws" + strings.TrimPrefix(n.hs.URL, "http")
	if rc.user != "" {
		url += "?user=" + rc.user
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return "", err
	}
	ws.SetReadLimit(-1)
	rc.ws, rc.frames = ws, make(chan rframe, 4096)
	go read(ws, rc.frames)
	f, err := rc.next(time.Now().Add(Wait))
	if err != nil {
		return "", err
	}
	var s rpcws.SessionData
	if f.Type != rpcws.SessionEvent || json.Unmarshal(f.Data, &s) != nil || s.ID == "" {
		return "", fmt.Errorf("%s: first frame %s, want %s", rc.name, f.raw, rpcws.SessionEvent)
	}
	return s.ID, nil
}

// read hands ws's frames to frames until it ends.
func read(ws *websocket.Conn, frames chan<- rframe) {
	defer close(frames)
	for {
		_, p, err := ws.Read(context.Background())
		if err != nil {
			return
		}
		var f rframe
		json.Unmarshal(p, &f)
		f.raw = string(p)
		frames <- f
	}
}

// drop closes the socket at once, as a network fault would, and waits
// until its reader has stopped.
func (rc *rclient) drop() {
	if rc.ws == nil {
		return
	}
	rc.ws.CloseNow()
	for range rc.frames {
	}
	rc.ws = nil
}

var errEnded = errors.New("the connection ended")

// next returns the next frame of the current connection.
func (rc *rclient) next(deadline time.Time) (rframe, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case f, ok := <-rc.frames:
		if !ok {
			return f, fmt.Errorf("%s: %w", rc.name, errEnded)
		}
		return f, nil
	case <-t.C:
		return rframe{}, fmt.Errorf("%s: no frame in time", rc.name)
	}
}

// step reads and handles one frame.
func (rc *rclient) step(deadline time.Time) error {
	f, err := rc.next(deadline)
	if err != nil {
		return err
	}
	return rc.handle(f)
}

// handle takes one frame that is not a reply: a topic event must follow
// the topic's position.
func (rc *rclient) handle(f rframe) error {
	switch {
	case f.Type == rpcws.JoinedEvent:
		var j rpcws.JoinedData
		json.Unmarshal(f.Data, &j)
		rc.pos[j.Topic] = rpcws.Position{Epoch: j.Epoch, Offset: j.Offset}
	case f.Type == rpcws.LeftEvent:
		var l rpcws.LeftData
		json.Unmarshal(f.Data, &l)
		delete(rc.pos, l.Topic)
	case f.Type == rpcws.ResyncEvent:
		var d struct{ Topics []string }
		json.Unmarshal(f.Data, &d)
		rc.resyncs = append(rc.resyncs, d.Topics)
	case f.Topic != "":
		p, in := rc.pos[f.Topic]
		if !in || p.Epoch != f.Epoch || f.Offset <= p.Offset {
			return fmt.Errorf("%s: event %s at position %+v (member: %v)", rc.name, f.raw, p, in)
		}
		rc.pos[f.Topic] = rpcws.Position{Epoch: f.Epoch, Offset: f.Offset}
		rc.got[f.Topic] = append(rc.got[f.Topic], gotEvent{f.Offset, string(f.Data)})
	}
	return nil
}

// request sends a request and handles frames until its reply.
func (rc *rclient) request(typ string, data any, deadline time.Time) (rframe, error) {
	rc.nextID++
	id := strconv.Itoa(rc.nextID)
	b, err := json.Marshal(map[string]any{"id": id, "type": typ, "data": data})
	if err != nil {
		return rframe{}, err
	}
	if err := rc.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		return rframe{}, err
	}
	for {
		f, err := rc.next(deadline)
		if err != nil {
			return f, err
		}
		if string(f.ID) == `"`+id+`"` {
			if f.Type == "error" {
				return f, fmt.Errorf("%s: %s: %s", rc.name, typ, f.raw)
			}
			return f, nil
		}
		if err := rc.handle(f); err != nil {
			return f, err
		}
	}
}

// joinR joins a topic; the joined frame comes before the reply.
func (rc *rclient) joinR(t *testing.T, topic string) {
	t.Helper()
	if _, err := rc.request("Room.Join", &TopicArgs{Topic: topic}, time.Now().Add(Wait)); err != nil {
		t.Fatal(err)
	}
	if _, in := rc.pos[topic]; !in {
		t.Fatalf("%s: no %s before the reply to the join of %s", rc.name, rpcws.JoinedEvent, topic)
	}
}

// reconnect drops the connection, if it is still up, connects to n and
// recovers the old session.
func (rc *rclient) reconnect(n *node) (rpcws.RecoverReply, error) {
	rc.drop()
	old := rc.session
	s, err := rc.connect(n)
	if err != nil {
		return rpcws.RecoverReply{}, err
	}
	rc.session = s
	listed := maps.Clone(rc.pos)
	f, err := rc.request(rpcws.RecoverMethod, rpcws.RecoverArgs{Session: old, Topics: listed}, time.Now().Add(Wait))
	if err != nil {
		return rpcws.RecoverReply{}, err
	}
	var r rpcws.RecoverReply
	if err := json.Unmarshal(f.Data, &r); err != nil {
		return r, fmt.Errorf("%s: recover reply %s", rc.name, f.raw)
	}
	// The connection is now in the reply's topics only, at their positions.
	rc.pos = map[string]rpcws.Position{}
	for name, tr := range r.Topics {
		rc.pos[name] = rpcws.Position{Epoch: tr.Epoch, Offset: tr.Offset}
	}
	return r, nil
}

// uniqueTopic returns a topic name no other test uses, so that suites may
// share an engine.
func uniqueTopic(name string) string {
	return name + " " + strconv.FormatInt(time.Now().UnixNano(), 36)
}
