package rpcws

import (
	"regexp"
	"strings"
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

func TestBrokerEnvelope(t *testing.T) {
	t.Parallel()
	msg := append(appendBrokerEnvelope(nil, "x.1", "y.2"), `{"type":"e"}`...)
	env, ok := parseBrokerEnvelope(msg)
	if !ok || env.except != "x.1" || env.target != "y.2" || string(env.frame) != `{"type":"e"}` {
		t.Errorf("parseBrokerEnvelope: %+v %v", env, ok)
	}
	for _, bad := range [][]byte{nil, {0}, {1}, {1, 5, 'a'}, {1, 0, 0}, {1, 0, 200}} {
		if _, ok := parseBrokerEnvelope(bad); ok {
			t.Errorf("parseBrokerEnvelope(%v) ok", bad)
		}
	}
}

// An event from the broker is written to clients only as a frame built
// anew from a string type and JSON data; anything else is refused.
func TestRebuildEvent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want string
		err      error
	}{
		{`{"type":"m","data":{"a": [1, 2]}}`, `{"type":"m","data":{"a":[1,2]}}`, nil},
		{`{"type":"m"}`, `{"type":"m","data":null}`, nil},
		{`{"data":1,"type":"m","id":"7","topic":"x"}`, `{"type":"m","data":1}`, nil},
		{`{"id":"1","type":"x.response","data":{}}`, `{"type":"x.response","data":{}}`, nil},
		{`{"type":"é\u00e9","data":"\u2028"}`, `{"type":"éé","data":"\u2028"}`, nil},
		{`not json`, "", errNotEvent},
		{`[1,2]`, "", errNotEvent},
		{`{"type":1,"data":2}`, "", errNotEvent},
		{`{"type":"","data":2}`, "", errNotEvent},
		{`{"data":2}`, "", errNotEvent},
		{`{"type":"m","data":}`, "", errNotEvent},
		{`{"type":"m"} trailing`, "", errNotEvent},
		{"{\"type\":\"m\",\"data\":\"\xff\"}", "", errInvalidUTF8},
		{`{"type":"rpcws.resync","data":{"topics":[]}}`, "", errReservedType},
		{`{"type":"m","data":"` + strings.Repeat("x", 100) + `"}`, "", errEventTooLarge},
	} {
		got, err := rebuildEvent([]byte(tt.in), 100)
		if err != tt.err || string(got) != tt.want {
			t.Errorf("rebuildEvent(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
