package codec_test

import (
	"encoding/json"
	"strings"
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

// A client without OnEvent ignores events: they are no bad frames.
func TestEventsWithoutOnEvent(t *testing.T) {
	client, cc, srv := newClient(t, nil)
	defer client.Close()
	srv.send(`{"type":"demo.tick","data":{"n":1}}`)
	done := client.Go("Demo.Echo", 1, new(int), nil)
	srv.reply(srv.next(), `1`)
	if call := <-done.Done; call.Error != nil {
		t.Fatal(call.Error)
	}
	if got := cc.Stats(); got != (codec.ClientStats{}) {
		t.Fatalf("stats: %+v, want none", got)
	}
}

// FuzzEventFrame feeds any frame to a client with OnEventFrame: an event
// (an object with a string type and no id) reaches it with the position
// fields that encoding/json reads in the frame, of the right JSON kind.
func FuzzEventFrame(f *testing.F) {
	f.Add([]byte(`{"type":"t","data":1,"topic":"a","epoch":"e","offset":3}`))
	f.Add([]byte(`{"type":"t","topic":"a","topic":7,"offset":1e3,"epoch":"\u00e9"}`))
	f.Add([]byte(`{"type":"t","offset":18446744073709551616,"to\u0070ic":"x"}`))
	f.Add([]byte(`{"id":"x","type":"t","topic":"a"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		got := make(chan codec.Event, 1)
		client, _, srv := newClient(t, &codec.ClientOptions{OnEventFrame: func(ev codec.Event) { got <- ev }})
		defer client.Close()
		srv.send("%s", frame)
		srv.send(`{"type":"end"}`)
		ev := <-got
		var fields map[string]json.RawMessage
		var typ string
		isEvent := json.Unmarshal(frame, &fields) == nil && json.Unmarshal(fields["type"], &typ) == nil && typ != "" &&
			(fields["id"] == nil || string(fields["id"]) == "null")
		if !isEvent {
			if ev.Type != "end" {
				t.Fatalf("%s: OnEventFrame got %+v, want nothing before the end", frame, ev)
			}
			return
		}
		var want codec.Event
		json.Unmarshal(fields["topic"], &want.Topic)
		json.Unmarshal(fields["epoch"], &want.Epoch)
		if raw := string(fields["offset"]); !strings.ContainsAny(raw, ".eE-") {
			json.Unmarshal(fields["offset"], &want.Offset)
		}
		if ev.Type != typ || ev.Topic != want.Topic || ev.Epoch != want.Epoch || ev.Offset != want.Offset {
			t.Fatalf("%s: got %+v, want type %q and %+v", frame, ev, typ, want)
		}
	})
}
