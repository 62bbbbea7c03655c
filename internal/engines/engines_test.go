package engines

import (
	"os"
	"testing"

	"github.com/rpcws/rpcws/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// NATS's JetStream store outlives Restart, not RestartEmpty, and Stop
// removes it.
func TestNATSStore(t *testing.T) {
	s := StartT(t, NATS)
	first := s.store
	marker := first + "/marker"
	if err := os.WriteFile(marker, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.RestartT(t)
	if _, err := os.Stat(marker); err != nil || s.store != first {
		t.Fatalf("the store after Restart: %q, %v", s.store, err)
	}
	s.RestartEmptyT(t)
	if _, err := os.Stat(first); !os.IsNotExist(err) || s.store == "" || s.store == first {
		t.Fatalf("the store after RestartEmpty: old %q (%v), new %q", first, err, s.store)
	}
	second := s.store
	s.Stop()
	if _, err := os.Stat(second); !os.IsNotExist(err) {
		t.Fatalf("the store %q after Stop: %v", second, err)
	}
}

// Pause returns once the engine is stopped: it answers nothing after.
func TestPauseStops(t *testing.T) {
	s := StartT(t, NATS)
	s.Pause(t)
	if s.answers() {
		t.Fatal("a paused engine answered")
	}
	s.Resume()
	if !s.answers() {
		t.Fatal("a resumed engine does not answer")
	}
}
