package codec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/rpc"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/internal/testutil"
)

// Echo is the one service the fuzz targets serve.
type Echo struct{}

func (Echo) Echo(args json.RawMessage, reply *json.RawMessage) error {
	*reply = args
	return nil
}

// seeds adds the frames of the golden transcripts to f: those sent by the
// client (send true) or by the server.
func seeds(f *testing.F, send bool, add func(frame []byte, binary bool)) {
	scripts, err := testutil.ReadTranscripts("../testdata/transcripts")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range scripts {
		for _, step := range s.Steps {
			if step.Send == send {
				add([]byte(step.Frame), step.Binary)
			}
		}
	}
}

// sentinel is the request the fuzz target sends after the fuzzed frame: its
// reply proves the connection still serves.
const sentinel = `{"id":"sentinel-1f3a","type":"echo.echo","data":"sentinel-1f3a"}`

// fuzzMaxFrame is the frame limit the fuzzed server writes within: small,
// so that echoes of large data meet it.
const fuzzMaxFrame = 2048

// FuzzServerCodec feeds any frame to a served connection. The server must
// not panic, must answer only with well-formed frames, valid UTF-8 within the
// frame limit and with ids within their limit, and must serve the next
// request.
func FuzzServerCodec(f *testing.F) {
	seeds(f, true, func(frame []byte, binary bool) { f.Add(frame, binary) })
	f.Add([]byte(`{"id":{"a":[1,{"b":"}"}]},"type":"echo.echo","data":[[[]]]}`), false)
	f.Add([]byte("{\"type\":\"\xff\xfe\",\"id\":1}"), false)
	f.Add([]byte("{\"id\":\"\xc3\",\"type\":\"echo.echo\"}"), false)
	f.Add([]byte(`{"id":1,"type":"`+strings.Repeat("t", codec.MaxTypeLength+1)+`"}`), false)
	f.Add([]byte(`{"id":"`+strings.Repeat("i", codec.MaxIDLength)+`","type":"echo.echo"}`), false)
	f.Add([]byte(`{"id":1,"type":"echo.echo","data":"`+strings.Repeat("d", fuzzMaxFrame)+`"}`), false)
	f.Fuzz(func(t *testing.T, frame []byte, binary bool) {
		srv := rpc.NewServer()
		srv.Register(Echo{})
		serverEnd, clientEnd := codec.Pipe()
		sc := codec.NewServerCodec(testutil.BinaryConn{Conn: serverEnd}, &codec.ServerOptions{MaxFrameSize: fuzzMaxFrame})
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeCodec(sc)
		}()
		defer func() {
			clientEnd.Close()
			<-done
		}()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if binary {
			frame = append([]byte(testutil.BinaryMark), frame...)
		}
		if err := clientEnd.WriteFrame(ctx, frame); err != nil {
			t.Fatal(err)
		}
		if err := clientEnd.WriteFrame(ctx, []byte(sentinel)); err != nil {
			t.Fatal(err)
		}
		for {
			got, err := clientEnd.ReadFrame(ctx, nil)
			if err != nil {
				t.Fatalf("no reply to the request after %q: %v", frame, err)
			}
			if !utf8.Valid(got) {
				t.Fatalf("the server sent %q, not valid UTF-8", got)
			}
			if len(got) > fuzzMaxFrame {
				t.Fatalf("the server sent %d bytes, over the frame limit of %d", len(got), fuzzMaxFrame)
			}
			var msg map[string]json.RawMessage
			if err := json.Unmarshal(got, &msg); err != nil {
				t.Fatalf("the server sent %q, not a JSON object", got)
			}
			if len(msg["id"]) > codec.MaxIDLength {
				t.Fatalf("the server echoed an id of %d bytes, over the limit", len(msg["id"]))
			}
			var typ string
			if json.Unmarshal(msg["type"], &typ) != nil || typ == "" {
				t.Fatalf("the server sent %s, without a type", got)
			}
			if typ == "error" {
				var code string
				if json.Unmarshal(msg["code"], &code) != nil || !codec.ValidCode(code) {
					t.Fatalf("the server sent %s, without a valid code", got)
				}
			}
			if string(msg["data"]) == `"sentinel-1f3a"` && string(msg["id"]) == `"sentinel-1f3a"` {
				return
			}
		}
	})
}

// FuzzClientCodec feeds any reply frame to a client with a call pending, the
// string ID in the frame replaced by the call's id. The client must not
// panic, and the call must end: by this frame, or by the proper reply sent
// after it.
func FuzzClientCodec(f *testing.F) {
	seeds(f, false, func(frame []byte, _ bool) {
		f.Add(bytes.Replace(frame, []byte(`"id":"`), []byte(`"id":"ID`), 1))
	})
	f.Add([]byte(`{"id":"ID","type":"error","code":{"x":1},"message":7}`))
	f.Add([]byte(`{"id":"ID","type":"x.response","data":{"deep":[[[[1]]]]}}`))
	f.Add([]byte(`{"id":"ID","type":5}`))
	f.Add([]byte(`{"id":"ID","type":"echo.echo.response","type":"echo.other.response"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		serverEnd, clientEnd := codec.Pipe()
		cc := codec.NewClientCodec(clientEnd, &codec.ClientOptions{
			OnEvent: func(string, json.RawMessage) {},
		})
		client := rpc.NewClientWithCodec(cc)
		defer client.Close()

		var reply any
		call := client.Go("Echo.Echo", "x", &reply, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := serverEnd.ReadFrame(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ ID string }
		json.Unmarshal(req, &r)
		sent := []byte(strings.ReplaceAll(string(frame), "ID", r.ID))
		serverEnd.WriteFrame(ctx, sent)
		serverEnd.WriteFrame(ctx, []byte(`{"id":"`+r.ID+`","type":"echo.echo.response","data":"ok"}`))
		select {
		case <-call.Done:
		case <-ctx.Done():
			t.Fatalf("the call did not end after %q", frame)
		}
		// A reply to the call that is not a success reply never succeeds.
		var got map[string]any // keys as sent: encoding/json matches struct fields in any case
		if call.Error == nil && json.Unmarshal(sent, &got) == nil && got["id"] == r.ID && got["type"] != "echo.echo.response" {
			t.Fatalf("%s completed the call with success", sent)
		}
	})
}
