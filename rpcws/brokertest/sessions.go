package brokertest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// RunSessions is the conformance suite of [rpcws.SessionBroker]: a saved
// session is taken once, by one of many concurrent takers on three nodes;
// it expires after its ttl, which TouchSessions moves; touching an unknown
// session does not create it. Expiry is observed through TakeSession.
func RunSessions(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	t.Run("TakeOnce", func(t *testing.T) { testTakeOnce(t, newBroker) })
	t.Run("Expiry", func(t *testing.T) { testSessionExpiry(t, newBroker) })
	t.Run("Touch", func(t *testing.T) { testSessionTouch(t, newBroker) })
}

// sessionNodes starts n brokers that implement SessionBroker.
func sessionNodes(t *testing.T, newBroker func(t *testing.T) rpcws.Broker, n int) []rpcws.SessionBroker {
	t.Helper()
	out := make([]rpcws.SessionBroker, n)
	for i := range out {
		b, ok := newBroker(t).(rpcws.SessionBroker)
		if !ok {
			t.Fatal("the broker does not implement rpcws.SessionBroker")
		}
		if err := b.Start(nopReceiver{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		out[i] = b
	}
	return out
}

// sessionID returns an id no other test uses.
func sessionID(name string) string { return uniqueSubject("s." + name) }

func take(t *testing.T, b rpcws.SessionBroker, id string) ([]byte, error) {
	t.Helper()
	rec, err := b.TakeSession(ctxFor(t), id)
	if err != nil && !errors.Is(err, rpcws.ErrNoSession) {
		t.Fatalf("take: %v", err)
	}
	return rec, err
}

func save(t *testing.T, b rpcws.SessionBroker, id, rec string, ttl time.Duration) {
	t.Helper()
	if err := b.SaveSession(ctxFor(t), id, []byte(rec), ttl); err != nil {
		t.Fatalf("save: %v", err)
	}
}

func testTakeOnce(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := sessionNodes(t, newBroker, 3)
	id := sessionID("once")
	save(t, nodes[0], id, "first", time.Minute)
	save(t, nodes[1], id, `{"topics":["a"]}`, time.Minute) // replaces
	const takers = 12
	var wg sync.WaitGroup
	got := make(chan string, takers)
	for i := range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := nodes[i%len(nodes)].TakeSession(context.Background(), id)
			switch {
			case err == nil:
				got <- string(rec)
			case !errors.Is(err, rpcws.ErrNoSession):
				got <- "error: " + err.Error()
			}
		}()
	}
	wg.Wait()
	close(got)
	var wins []string
	for r := range got {
		wins = append(wins, r)
	}
	if len(wins) != 1 || wins[0] != `{"topics":["a"]}` {
		t.Fatalf("%d concurrent takers on 3 nodes got %q: want exactly one, with the last record saved", takers, wins)
	}
	if _, err := take(t, nodes[2], id); err == nil {
		t.Fatal("a session taken twice")
	}
	if _, err := take(t, nodes[0], sessionID("never")); err == nil {
		t.Fatal("an unknown session taken")
	}
}

func testSessionExpiry(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	b := sessionNodes(t, newBroker, 1)[0]
	short, long := sessionID("short"), sessionID("long")
	const ttl = 300 * time.Millisecond
	saved := time.Now()
	save(t, b, short, "short", ttl)
	save(t, b, long, "long", time.Minute)
	// Expiry can be seen only by taking, which ends the session: wait out
	// the ttl, with a margin for the engine's clock, then look once.
	time.Sleep(time.Until(saved.Add(ttl + 700*time.Millisecond)))
	if rec, err := take(t, b, short); err == nil {
		t.Fatalf("session %q taken a second after its %v ttl", rec, ttl)
	}
	if rec, err := take(t, b, long); err != nil || string(rec) != "long" {
		t.Fatalf("an unexpired session: %q, %v", rec, err)
	}
}

func testSessionTouch(t *testing.T, newBroker func(t *testing.T) rpcws.Broker) {
	nodes := sessionNodes(t, newBroker, 2)
	kept, ghost := sessionID("kept"), sessionID("ghost")
	const ttl = 300 * time.Millisecond
	saved := time.Now()
	save(t, nodes[0], kept, "kept", ttl)
	if err := nodes[1].TouchSessions(ctxFor(t), []string{kept, ghost}, time.Minute); err != nil {
		t.Fatalf("touch: %v", err)
	}
	time.Sleep(time.Until(saved.Add(ttl + 700*time.Millisecond)))
	if rec, err := take(t, nodes[1], kept); err != nil || string(rec) != "kept" {
		t.Fatalf("a touched session past its first ttl: %q, %v", rec, err)
	}
	if rec, err := take(t, nodes[0], ghost); err == nil {
		t.Fatalf("touching an unknown session created it: %q", rec)
	}
}
