package codec

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"
)

// dataSamples are values whose encoding and decoding take the codec's short
// paths, or just miss them.
var dataSamples = []string{
	"", "plain", "with \"quotes\" and \\ backslash", "tab\tnew\nline\r",
	"\x00\x01\x1f\x7f", "<html> & co", "é ü 日本語 🎉", "\u2028\u2029", "bad \xff utf-8 \xc3",
	"\xed\xa0\x80 surrogate", string(bytes.Repeat([]byte("x"), 5000)),
}

// The short paths of encoder.data write what json.Encoder with HTML escaping
// off writes.
func TestEncodeDataMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	want := func(v any) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return `{"type":"t","data":` + string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))) + "}"
	}
	check := func(v any) {
		t.Helper()
		e := newEncoder()
		e.start(nil, "t", "")
		if err := e.data(v); err != nil {
			t.Fatal(err)
		}
		if got, w := e.buf.String(), want(v); got != w {
			t.Errorf("data(%#v):\n got %q\nwant %q", v, got, w)
		}
	}
	for _, s := range dataSamples {
		check(s)
		check(&s)
	}
	for i := range 256 {
		s := string([]byte{'a', byte(i), 'b'})
		check(s)
	}
	for _, n := range []int{0, 1, -1, 42, math.MaxInt, math.MinInt} {
		check(n)
		check(&n)
	}
	check((*string)(nil))
	check((*int)(nil))
}

// unmarshalData gives what json.Unmarshal gives, value and error alike.
func TestUnmarshalDataMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	var raws []string
	for _, s := range dataSamples {
		b, _ := json.Marshal(s)
		raws = append(raws, string(b))
		if json.Valid([]byte(`"` + s + `"`)) {
			raws = append(raws, `"`+s+`"`) // raw invalid UTF-8 and unescaped <, >, &
		}
	}
	raws = append(raws, `0`, `-0`, `42`, `-42`, `1.5`, `1e3`, `-1E-2`, `true`, `null`, `{}`, `[1]`,
		strconv.Itoa(math.MaxInt), strconv.Itoa(math.MinInt), `9223372036854775808`, `-9223372036854775809`,
		`99999999999999999999`, `"7"`)
	for _, raw := range raws {
		for _, typ := range []reflect.Type{reflect.TypeFor[string](), reflect.TypeFor[int]()} {
			// validUTF8 may be told only of a frame that is valid UTF-8,
			// as the server's are.
			for _, validUTF8 := range []bool{false, utf8.ValidString(raw)} {
				got, want := reflect.New(typ), reflect.New(typ)
				got.Elem().Set(reflect.ValueOf(map[bool]any{true: "old", false: 7}[typ.Kind() == reflect.String]).Convert(typ))
				want.Elem().Set(got.Elem())
				gotErr := unmarshalData([]byte(raw), got.Interface(), validUTF8)
				wantErr := json.Unmarshal([]byte(raw), want.Interface())
				if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
					t.Errorf("unmarshalData(%q, *%v, %v): error %v, want %v", raw, typ, validUTF8, gotErr, wantErr)
				}
				if !reflect.DeepEqual(got.Elem().Interface(), want.Elem().Interface()) {
					t.Errorf("unmarshalData(%q, *%v, %v) = %#v, want %#v", raw, typ, validUTF8, got.Elem().Interface(), want.Elem().Interface())
				}
			}
		}
	}
}
