package codec

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var validSamples = []string{
	``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1e5`, `1E-5`, `-1.5e+10`, `1x`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `nulll`, ` {} `, `{} {}`, `{},`, `[1,]`, `[,1]`, `[1 2]`,
	`{"a":1}`, `{"a" : 1 , "b":[1,{"c":null}]}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`,
	`"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\/\b\f\n\r\t\"\\"`, "\"\x01\"", "\"\x7f\xff\"", `"abc`, `"abc\`,
	`[[[]]]`, `[[[]]`, `[]]`, `{"a":[}`, `{"a":{]}`, "\t\n\r [1]\r\n", "\v[1]", `[1e01]`, `[-01]`, `[0.0e0]`,
	`{"id":"3f0c8a52-6e0e-4f7a-9a53-1c2b3d4e5f60","type":"arith.multiply","data":{"A":6,"B":7}}`,
	strings.Repeat("[", maxNestingDepth) + strings.Repeat("]", maxNestingDepth),
	strings.Repeat("[", maxNestingDepth+1) + strings.Repeat("]", maxNestingDepth+1),
	strings.Repeat(`{"a":`, maxNestingDepth) + "1" + strings.Repeat("}", maxNestingDepth),
	strings.Repeat(`{"a":`, maxNestingDepth+1) + "1" + strings.Repeat("}", maxNestingDepth+1),
	strings.Repeat("[", maxNestingDepth) + "[]" + strings.Repeat("]", maxNestingDepth),
	strings.Repeat("[", maxNestingDepth-1) + "[]" + strings.Repeat("]", maxNestingDepth-1),
}

func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range validSamples {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%.60q) = %v, want %v", s, got, want)
		}
	}
	// Every special byte at every offset of strings of every length up to
	// three words: the eight-byte skip must stop for each.
	for n := range 25 {
		for at := range n {
			for _, c := range []byte{'"', '\\', 0x00, 0x1f, ' ', 0x7f, 0x80, 0xff, 'u'} {
				b := []byte(`["` + strings.Repeat("x", n) + `"]`)
				b[2+at] = c
				for _, s := range []string{string(b), string(b[1 : len(b)-1])} {
					if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
						t.Errorf("validJSON(%q) = %v, want %v", s, got, want)
					}
				}
			}
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range validSamples {
		if len(s) < 200 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, want := validJSON(p), json.Valid(p); got != want {
			t.Errorf("validJSON(%q) = %v, want %v", p, got, want)
		}
	})
}

// An echo request with 1 KiB of text: what the validator spends on a frame
// that is mostly one string.
func BenchmarkValidJSON(b *testing.B) {
	frame := []byte(`{"id":"3f0c8a52-6e0e-4f7a-9a53-1c2b3d4e5f60","type":"echo.echo","data":"` + strings.Repeat("abcdefghij", 102) + `"}`)
	b.Run("validJSON", func(b *testing.B) {
		b.SetBytes(int64(len(frame)))
		for range b.N {
			if !validJSON(frame) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(frame)))
		for range b.N {
			if !json.Valid(frame) {
				b.Fatal("invalid")
			}
		}
	})
}

// parseEnvelope accepts exactly the frames that are one valid JSON object,
// and finds in them the fields that encoding/json finds.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range validSamples {
		if len(s) < 200 {
			f.Add([]byte(s))
		}
	}
	for _, s := range []string{
		`{"id":"1","type":"a.b","data":{"x":[1,"}"]}}`, ` { "type" : "a" , "id" : 7 } `,
		`{"data":"\"q\\","type":"t","extra":{"id":"no"}}`, `{"type":"a","type":"b"}`,
		`{"\u0069d":"esc","type":"t"}`, `{"id":"e","type":"error","code":"NotFound","message":"m"}`,
		`{}`, `{"id":1`, `{"id":1} {}`, `{"id":1,}`, `{"id" 1}`, `{,}`, `{"data":[[[]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		env, err := parseEnvelope(frame)
		trimmed := bytes.TrimLeft(frame, " \t\r\n")
		object := json.Valid(frame) && len(trimmed) > 0 && trimmed[0] == '{'
		if (err == nil) != object {
			t.Fatalf("parseEnvelope(%q): error %v, want an error: %v", frame, err, !object)
		}
		if !object {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(frame, &m); err != nil {
			t.Fatal(err)
		}
		for key, got := range map[string][]byte{"id": env.id, "type": env.typ, "data": env.data, "code": env.code, "message": env.message} {
			if want, ok := m[key]; ok != (got != nil) || !bytes.Equal(got, want) {
				t.Errorf("parseEnvelope(%q): %s is %q, want %q", frame, key, got, want)
			}
		}
	})
}

// An object nested as deep as encoding/json allows is a valid frame, and
// one level deeper is not, whether the depth is in a field or around it.
func TestParseEnvelopeNesting(t *testing.T) {
	t.Parallel()
	nested := func(depth int) []byte { // depth arrays inside the frame's object
		return []byte(`{"data":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
	}
	for _, depth := range []int{maxNestingDepth - 1, maxNestingDepth} {
		frame := nested(depth)
		_, err := parseEnvelope(frame)
		if want := json.Valid(frame); (err == nil) != want {
			t.Errorf("%d arrays in the frame: error %v, valid JSON: %v", depth, err, want)
		}
	}
}
