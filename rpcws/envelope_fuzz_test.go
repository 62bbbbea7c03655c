package rpcws

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Whatever the broker hands over, the frame a replica writes is valid
// UTF-8, a JSON object of exactly a string type (never an "rpcws." one) and
// data, within the frame limit.
func FuzzRebuildEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"m","data":{"a":[1,2]}}`, `{"type":"m"}`, `{"id":"1","type":"x.response","data":{}}`,
		`{"type":"rpcws.resync","data":{"topics":[]}}`, "{\"type\":\"m\",\"data\":\"\xff\"}", `[1]`, `"x"`,
		`{"type":"m","data":"\u2028<>&"}`, `{"TYPE":"m","Data":1}`, `{"type":"m","type":"rpcws.x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 512
		out, err := rebuildEvent(in, limit)
		if err != nil {
			if out != nil {
				t.Fatalf("an error and a frame")
			}
			return
		}
		if len(out) > limit || !utf8.Valid(out) {
			t.Fatalf("frame %q: over the limit or not UTF-8", out)
		}
		var ev map[string]json.RawMessage
		if err := json.Unmarshal(out, &ev); err != nil || len(ev) != 2 || ev["data"] == nil {
			t.Fatalf("frame %q: not {type, data}: %v", out, err)
		}
		var typ string
		if err := json.Unmarshal(ev["type"], &typ); err != nil || typ == "" || strings.HasPrefix(typ, "rpcws.") {
			t.Fatalf("frame %q: type %q", out, typ)
		}
	})
}
