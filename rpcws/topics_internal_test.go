package rpcws

import (
	"regexp"
	"testing"
)

// Escaped names are valid subject tokens on every engine, and distinct
// names stay distinct.
func TestEscapeName(t *testing.T) {
	t.Parallel()
	token := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	seen := map[string]string{}
	for _, name := range []string{"room.*", "room.>", "room 42", "room_2E_2A", "room", "é", "a\tb", "_", "-"} {
		e := escapeName(name)
		if !token.MatchString(e) {
			t.Errorf("escapeName(%q) = %q, not a plain token", name, e)
		}
		if prev, ok := seen[e]; ok {
			t.Errorf("escapeName(%q) = escapeName(%q) = %q", name, prev, e)
		}
		seen[e] = name
	}
}

func TestEnvelope(t *testing.T) {
	t.Parallel()
	msg := append(appendEnvelope(nil, "x.1", "y.2"), `{"type":"e"}`...)
	except, target, frame, ok := parseEnvelope(msg)
	if !ok || except != "x.1" || target != "y.2" || string(frame) != `{"type":"e"}` {
		t.Errorf("parseEnvelope: %q %q %q %v", except, target, frame, ok)
	}
	for _, bad := range [][]byte{nil, {0}, {1}, {1, 5, 'a'}, {1, 0, 0}, {1, 0, 200}} {
		if _, _, _, ok := parseEnvelope(bad); ok {
			t.Errorf("parseEnvelope(%v) ok", bad)
		}
	}
}
