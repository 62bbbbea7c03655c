package codec

import (
	"encoding/json"
	"testing"
)

// The frames a transport writes by itself: exact bytes, as encoding/json
// would write their strings with HTML escaping off.
func TestEncodeFrames(t *testing.T) {
	event, err := EncodeEvent("m", json.RawMessage(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := EncodeReply(json.RawMessage(`"a-1"`), "rpcws.recover", map[string]bool{"recovered": true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"event", string(event), `{"type":"m","data":{"n":1}}`},
		{"position", string(AppendPosition([]byte("x"), event, `r "<1>"`, "ep\u2028", 42)),
			`x{"type":"m","data":{"n":1},"topic":"r \"<1>\"","epoch":"ep\u2028","offset":42}`},
		{"reply", string(reply), `{"id":"a-1","type":"rpcws.recover.response","data":{"recovered":true}}`},
		{"numeric id", string(EncodeErrorReply(json.RawMessage(`7`), CodeBadRequest, "not <first>")),
			`{"id":7,"type":"error","code":"BadRequest","message":"not <first>"}`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
	if _, err := EncodeReply(json.RawMessage(`1`), "t", func() {}); err == nil {
		t.Error("a reply whose data does not encode: no error")
	}
}
