package rpcws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// readRecover reads the first frame of a new connection, which must be
// rpcws.recover, and returns it with its arguments.
func readRecover(t *testing.T, fc *fakeConn) (clientFrame, rpcws.RecoverArgs) {
	t.Helper()
	f := fc.read()
	if f.Type != rpcws.RecoverMethod {
		t.Fatalf("first frame of the new connection: %s %s, want %s", f.Type, f.Data, rpcws.RecoverMethod)
	}
	var args rpcws.RecoverArgs
	if err := json.Unmarshal(f.Data, &args); err != nil {
		t.Fatal(err)
	}
	return f, args
}

func wantRecover(t *testing.T, args rpcws.RecoverArgs, session string, topics map[string]rpcws.Position) {
	t.Helper()
	if args.Session != session {
		t.Errorf("recover: session %q, want %q", args.Session, session)
	}
	if fmt.Sprint(args.Topics) != fmt.Sprint(topics) { // fmt sorts maps
		t.Errorf("recover: topics %v, want %v", args.Topics, topics)
	}
}

// msg is what OnEvent records of an event of fakeConn.event.
func msg(topic string, offset int) string {
	return fmt.Sprintf(`topic.message {"topic":%q,"n":%d}`, topic, offset)
}

// The client keeps its session and each topic's position from the
// library's frames and the events' positions, sends rpcws.recover as the
// first request of the new connection, holds the application's calls until
// its reply, and shows OnEvent the replayed events in order, once each,
// then the resync the server sent: never the library's own frames. A
// server that refuses the recovery has lost the topics: the client says so
// with an rpcws.resync of its own.
func TestReconnectRecovers(t *testing.T) {
	s := newScripted(t, false)
	defer s.close()
	ev, st := newEvents(), newStates()
	o := s.options(&rpcws.ReconnectOptions{Delay: time.Millisecond, OnState: st.on})
	o.OnEvent = ev.on
	c, fc := s.dial(o)
	defer c.Close()

	fc.send(`{"type":"rpcws.session","data":{"id":"S1","window":120000}}`)
	fc.send(`{"type":"rpcws.joined","data":{"topic":"room","epoch":"e1","offset":0}}`)
	fc.send(`{"type":"rpcws.joined","data":{"topic":"quiet","epoch":"q1","offset":5}}`)
	fc.send(`{"type":"rpcws.joined","data":{"topic":"gone","epoch":"g1","offset":2}}`)
	for n := 1; n <= 3; n++ {
		fc.event("room", "e1", n)
	}
	fc.send(`{"type":"rpcws.left","data":{"topic":"gone"}}`)
	fc.send(`{"type":"user.notice","data":1}`)
	ev.wait(t, 4)
	fc.drop()
	if got := st.next(t); got != rpcws.StateReconnecting {
		t.Fatalf("state: %v", got)
	}

	// A call made now waits for the recovery.
	calls := make(chan string, 1)
	go func() {
		var out string
		err := c.Call("Demo.Echo", "held", &out)
		calls <- fmt.Sprint(out, err)
	}()
	fc2 := s.accept()
	f, args := readRecover(t, fc2)
	wantRecover(t, args, "S1", map[string]rpcws.Position{"room": {Epoch: "e1", Offset: 3}, "quiet": {Epoch: "q1", Offset: 5}})
	fc2.send(`{"type":"rpcws.session","data":{"id":"S2","window":120000}}`)
	fc2.event("room", "e1", 4)
	fc2.event("room", "e1", 5)
	fc2.event("room", "e1", 5) // twice: the client drops it
	fc2.send(`{"type":"rpcws.resync","data":{"topics":["lost"]}}`)
	fc2.event("room", "e1", 6) // live, before the reply
	select {
	case got := <-calls:
		t.Fatalf("the call did not wait for the recovery: %s", got)
	default:
	}
	fc2.reply(f, `{"recovered":true,"topics":{"room":{"epoch":"e1","offset":5,"recovered":true},"quiet":{"epoch":"q1","offset":5,"recovered":true}}}`)
	held := fc2.read()
	if held.Type != "demo.echo" {
		t.Fatalf("after the recovery: %s", held.Type)
	}
	fc2.reply(held, `"held"`)
	if got := <-calls; got != "held<nil>" {
		t.Fatalf("held call: %s", got)
	}
	want := []string{msg("room", 1), msg("room", 2), msg("room", 3), "user.notice 1",
		msg("room", 4), msg("room", 5), `rpcws.resync {"topics":["lost"]}`, msg("room", 6)}
	if got := ev.wait(t, len(want)); !slices.Equal(got, want) {
		t.Fatalf("OnEvent got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := st.next(t); got != rpcws.StateConnected {
		t.Fatalf("state: %v", got)
	}

	// Again: the new session, and the position of the live event.
	fc2.drop()
	fc3 := s.accept()
	f, args = readRecover(t, fc3)
	wantRecover(t, args, "S2", map[string]rpcws.Position{"room": {Epoch: "e1", Offset: 6}, "quiet": {Epoch: "q1", Offset: 5}})
	fc3.send(`{"id":%s,"type":"error","code":"MethodNotFound","message":"no such method"}`, f.ID)
	got := ev.wait(t, len(want)+1)[len(want)]
	var resync struct{ Topics []string }
	if !strings.HasPrefix(got, rpcws.ResyncEvent+" ") || json.Unmarshal([]byte(strings.TrimPrefix(got, rpcws.ResyncEvent+" ")), &resync) != nil {
		t.Fatalf("after a refused recovery: %s, want %s", got, rpcws.ResyncEvent)
	}
	if sort.Strings(resync.Topics); !slices.Equal(resync.Topics, []string{"quiet", "room"}) {
		t.Fatalf("resync topics: %v", resync.Topics)
	}

	// That connection had no session: the next one recovers nothing.
	fc3.drop()
	fc4 := s.accept()
	go func() { calls <- fmt.Sprint(c.Call("Demo.Echo", "plain", nil)) }()
	if f := fc4.read(); f.Type != "demo.echo" {
		t.Fatalf("first frame after a connection without session: %s", f.Type)
	}
}

// A recovery cut short (the new connection drops before the reply) is
// tried again, from the positions of the events the cut connection
// delivered, so that none is shown twice: with the old session while
// nothing shows that the server took it, and with the cut connection's
// own once an event of the old topics (or a resync of them) came there,
// since the server then moved the topics to it.
func TestReconnectRecoveryInterrupted(t *testing.T) {
	s := newScripted(t, false)
	defer s.close()
	ev := newEvents()
	o := s.options(&rpcws.ReconnectOptions{Delay: time.Millisecond})
	o.OnEvent = ev.on
	c, fc := s.dial(o)
	defer c.Close()
	fc.send(`{"type":"rpcws.session","data":{"id":"S1","window":120000}}`)
	fc.send(`{"type":"rpcws.joined","data":{"topic":"room","epoch":"e1","offset":0}}`)
	fc.event("room", "e1", 1)
	fc.event("room", "e1", 2)
	ev.wait(t, 2)
	fc.drop()

	// Cut before anything of the old session came: S1 again.
	fc2 := s.accept()
	_, args := readRecover(t, fc2)
	wantRecover(t, args, "S1", map[string]rpcws.Position{"room": {Epoch: "e1", Offset: 2}})
	fc2.send(`{"type":"rpcws.session","data":{"id":"S2","window":120000}}`)
	fc2.send(`{"type":"rpcws.joined","data":{"topic":"own","epoch":"o1","offset":0}}`)
	fc2.event("own", "o1", 1) // of a topic this connection joined: no sign
	ev.wait(t, 3)
	fc2.drop()

	// Cut after a replayed event: the server took S1, S3 holds the topics.
	fc3 := s.accept()
	_, args = readRecover(t, fc3)
	wantRecover(t, args, "S1", map[string]rpcws.Position{"room": {Epoch: "e1", Offset: 2}, "own": {Epoch: "o1", Offset: 1}})
	fc3.send(`{"type":"rpcws.session","data":{"id":"S3","window":120000}}`)
	fc3.event("room", "e1", 3)
	ev.wait(t, 4)
	fc3.drop()

	fc4 := s.accept()
	f, args := readRecover(t, fc4)
	wantRecover(t, args, "S3", map[string]rpcws.Position{"room": {Epoch: "e1", Offset: 3}, "own": {Epoch: "o1", Offset: 1}})
	fc4.send(`{"type":"rpcws.session","data":{"id":"S4","window":120000}}`)
	fc4.event("room", "e1", 3) // again: dropped
	fc4.event("room", "e1", 4)
	fc4.reply(f, `{"recovered":true,"topics":{"room":{"epoch":"e1","offset":4,"recovered":true}}}`)
	want := []string{msg("room", 1), msg("room", 2), msg("own", 1), msg("room", 3), msg("room", 4)}
	if got := ev.wait(t, len(want)); !slices.Equal(got, want) {
		t.Fatalf("OnEvent got %q, want %q", got, want)
	}

	// A resync of the old topics is a sign too.
	fc4.drop()
	fc5 := s.accept()
	readRecover(t, fc5)
	fc5.send(`{"type":"rpcws.session","data":{"id":"S5","window":120000}}`)
	fc5.send(`{"type":"rpcws.resync","data":{"topics":["room"]}}`)
	ev.wait(t, len(want)+1)
	fc5.drop()
	_, args = readRecover(t, s.accept())
	wantRecover(t, args, "S5", map[string]rpcws.Position{"room": {Epoch: "e1", Offset: 4}})
}

// A client without Reconnect never shows the library's frames of sessions
// either; rpcws.resync, which is the application's business, it shows.
func TestClientHidesLibraryFrames(t *testing.T) {
	s := newScripted(t, false)
	defer s.close()
	ev := newEvents()
	o := s.options(nil)
	o.OnEvent = ev.on
	c, fc := s.dial(o)
	defer c.Close()
	fc.send(`{"type":"rpcws.session","data":{"id":"secret","window":120000}}`)
	fc.send(`{"type":"rpcws.joined","data":{"topic":"room","epoch":"e1","offset":0}}`)
	fc.send(`{"type":"rpcws.left","data":{"topic":"room"}}`)
	fc.send(`{"type":"rpcws.future","data":1}`) // reserved for the library
	fc.send(`{"type":"rpcws.resync","data":{"topics":["room"]}}`)
	fc.event("room", "e1", 1)
	want := []string{`rpcws.resync {"topics":["room"]}`, msg("room", 1)}
	if got := ev.wait(t, 2); !slices.Equal(got, want) {
		t.Fatalf("OnEvent got %q, want %q", got, want)
	}
	if got := c.State(); got != rpcws.StateConnected {
		t.Fatalf("State: %v", got)
	}
	fc.drop()
	<-c.Done()
	if got := c.State(); got != rpcws.StateClosed {
		t.Fatalf("State after the drop: %v", got)
	}
}

// A server that does not answer rpcws.recover within the client's timeout
// fails the attempt: the application's calls, held meanwhile, are never
// sent on that connection, and the next attempt recovers the same session.
func TestReconnectRecoveryTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, true)
		defer s.close()
		o := s.options(&rpcws.ReconnectOptions{Delay: -1})
		o.Timeout = 2 * time.Second
		c, fc := s.dial(o)
		defer c.Close()
		fc.send(`{"type":"rpcws.session","data":{"id":"S1","window":120000}}`)
		fc.send(`{"type":"rpcws.joined","data":{"topic":"room","epoch":"e1","offset":4}}`)
		synctest.Wait()
		fc.drop()

		fc2 := s.accept()
		start := time.Now()
		readRecover(t, fc2)
		held := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			held <- c.CallContext(ctx, "Demo.Echo", "held", nil)
		}()
		fc3 := s.accept()
		// The attempt's 2 s, the closing handshake (1 s at most, cut short:
		// this server reads no more) and a wait of 200 ms at most.
		if d := time.Since(start); d < 2*time.Second || d > 3200*time.Millisecond {
			t.Fatalf("next attempt after %v, want 2 to 3.2 s", d)
		}
		f, args := readRecover(t, fc3)
		wantRecover(t, args, "S1", map[string]rpcws.Position{"room": {Epoch: "e1", Offset: 4}})
		fc3.reply(f, `{"recovered":true,"topics":{"room":{"epoch":"e1","offset":4,"recovered":true}}}`)
		h := fc3.read()
		if h.Type != "demo.echo" {
			t.Fatalf("after the recovery: %s", h.Type)
		}
		fc3.reply(h, `null`)
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	})
}
