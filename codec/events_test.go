package codec_test

import (
	"encoding/json"
	"testing"

	"github.com/rpcws/rpcws/codec"
)

// OnEventFrame gets every event on the reading goroutine, in order, with
// the position fields of its frame, whatever their place in it; fields of
// a JSON kind no server sends are left out, and OnEvent gets nothing.
func TestOnEventFrame(t *testing.T) {
	frames := []struct {
		frame string
		want  codec.Event
	}{
		{`{"type":"topic.message","data":{"n":1},"topic":"room","epoch":"e1","offset":7}`,
			codec.Event{Type: "topic.message", Data: json.RawMessage(`{"n":1}`), Topic: "room", Epoch: "e1", Offset: 7}},
		{` { "offset" : 18446744073709551615 , "topic":"r\u00e9sum\u00e9", "type":"t", "epoch":"e\"2"} `,
			codec.Event{Type: "t", Topic: "résumé", Epoch: `e"2`, Offset: 1<<64 - 1}},
		{`{"type":"plain","data":null}`, codec.Event{Type: "plain", Data: json.RawMessage(`null`)}},
		{`{"type":"odd","topic":7,"epoch":null,"offset":"7"}`, codec.Event{Type: "odd"}},
		{`{"type":"neg","offset":-1,"topic":"t"}`, codec.Event{Type: "neg", Topic: "t"}},
		{`{"type":"frac","offset":1.5,"nested":{"topic":"no"}}`, codec.Event{Type: "frac"}},
	}
	got := make(chan codec.Event, len(frames))
	client, _, srv := newClient(t, &codec.ClientOptions{
		OnEvent: func(string, json.RawMessage) { t.Error("OnEvent called alongside OnEventFrame") },
		OnEventFrame: func(ev codec.Event) {
			ev.Data = append(json.RawMessage(nil), ev.Data...) // it aliases the frame
			got <- ev
		},
	})
	defer client.Close()
	for _, f := range frames {
		srv.send("%s", f.frame)
	}
	for _, f := range frames {
		ev := <-got
		if ev.Type != f.want.Type || string(ev.Data) != string(f.want.Data) || ev.Topic != f.want.Topic ||
			ev.Epoch != f.want.Epoch || ev.Offset != f.want.Offset {
			t.Errorf("%s:\n got %+v\nwant %+v", f.frame, ev, f.want)
		}
	}
}
