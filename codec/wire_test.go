package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"strings"
	"testing"
	"testing/quick"
)

func TestParseEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		frame               string
		id, typ, data, code string // raw values; "-" for absent
		err                 bool
	}{
		{`{"id":"1","type":"a.b","data":{"x":[1,"}"]}}`, `"1"`, `"a.b"`, `{"x":[1,"}"]}`, "-", false},
		{` { "type" : "a" , "id" : 7 } `, `7`, `"a"`, "-", "-", false},
		{`{"id":null,"type":"a"}`, `null`, `"a"`, "-", "-", false},
		{`{"data":"\"q\\","type":"t","extra":{"id":"no"}}`, "-", `"t"`, `"\"q\\"`, "-", false},
		{`{"type":"a","type":"b"}`, "-", `"b"`, "-", "-", false},
		{`{"\u0069d":"esc","type":"t"}`, `"esc"`, `"t"`, "-", "-", false},
		{`{"id":"e","type":"error","code":"NotFound","message":"m"}`, `"e"`, `"error"`, "-", `"NotFound"`, false},
		{`{}`, "-", "-", "-", "-", false},
		{`[]`, "", "", "", "", true},
		{`"x"`, "", "", "", "", true},
		{`{"id":1`, "", "", "", "", true},
		{`{"id":1} {}`, "", "", "", "", true},
		{``, "", "", "", "", true},
	}
	raw := func(b []byte) string {
		if b == nil {
			return "-"
		}
		return string(b)
	}
	for _, tt := range tests {
		env, err := parseEnvelope([]byte(tt.frame))
		if (err != nil) != tt.err {
			t.Errorf("%s: got error %v, want error %v", tt.frame, err, tt.err)
			continue
		}
		if tt.err {
			continue
		}
		if raw(env.id) != tt.id || raw(env.typ) != tt.typ || raw(env.data) != tt.data || raw(env.code) != tt.code {
			t.Errorf("%s: got id %s type %s data %s code %s; want %s %s %s %s", tt.frame,
				raw(env.id), raw(env.typ), raw(env.data), raw(env.code), tt.id, tt.typ, tt.data, tt.code)
		}
	}
}

// jsonString returns s as encoding/json writes it with HTML escaping off.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// appendString writes what encoding/json writes with HTML escaping off.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	want := jsonString
	check := func(s string) bool { return string(appendString(nil, s)) == want(s) }
	for _, s := range []string{"", "plain", "<&>", "q\"b\\", "\x00\x1f\n\r\t\b\f", "é ü 世界", "bad \xff utf8", "\u2028"} {
		if got := string(appendString(nil, s)); got != want(s) {
			t.Errorf("appendString(%q): got %s, want %s", s, got, want(s))
		}
	}
	if err := quick.Check(check, nil); err != nil {
		t.Error(err)
	}
	// Eight bytes at a time are skipped when none needs a look: put one
	// that does at every place around and within those words.
	for _, special := range specials {
		for at := range 20 {
			s := plainAround(special, at)
			if got := string(appendString(nil, s)); got != want(s) {
				t.Errorf("appendString(%q): got %s, want %s", s, got, want(s))
			}
			if got := string(appendString(nil, []byte(s))); got != want(s) {
				t.Errorf("appendString([]byte(%q)): got %s, want %s", s, got, want(s))
			}
		}
	}
}

// specials are the bytes and runes that the string scanners must stop at.
var specials = []string{`"`, `\`, "\n", "\x00", "\x1f", "\x7f", " ", "é", "世", "🎉", "\u2028", "\u2029", "\xff", "\xc3"}

// plainAround returns 24 plain bytes with special written over them at at.
func plainAround(special string, at int) string {
	return "abcdefghijklmnopqrstuvwx"[:at] + special + "abcdefghijklmnopqrstuvwx"[at:]
}

// parseEnvelope finds the end of a string wherever its quotes and escapes
// fall against the eight bytes it skips at a time.
func TestParseEnvelopeStringEnds(t *testing.T) {
	t.Parallel()
	var strs []string // JSON strings, each with one thing to stop at somewhere
	for at := range 20 {
		for _, special := range specials {
			strs = append(strs, jsonString(plainAround(special, at)))
		}
		for _, escape := range []string{`\"`, `\\`, `\u0041`} { // as written
			strs = append(strs, `"`+plainAround(escape, at)+`"`)
		}
	}
	for _, data := range strs {
		frame := `{"data":` + data + `,"type":"t"}`
		env, err := parseEnvelope([]byte(frame))
		if err != nil || string(env.data) != data || string(env.typ) != `"t"` {
			t.Errorf("%s: data %s, type %s, error %v; want data %s", frame, env.data, env.typ, err, data)
		}
	}
}

// appendString writes what encoding/json writes with HTML escaping off,
// whatever the input.
func FuzzAppendString(f *testing.F) {
	for _, special := range specials {
		f.Add(plainAround(special, 9))
	}
	f.Add(strings.Repeat("0123456789abcdef", 64))
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), jsonString(s); got != want {
			t.Fatalf("appendString(%q): got %s, want %s", s, got, want)
		}
	})
}

func TestNames(t *testing.T) {
	t.Parallel()
	tests := []struct{ typ, method string }{
		{"user.get", "User.Get"},
		{"Arith.Multiply", "Arith.Multiply"},
		{"a.b.c", "A.B.C"},
		{"user..get", "User..Get"},
		{".get", ".Get"},
		{"ünicode.x", "ünicode.X"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := MethodName(tt.typ); got != tt.method {
			t.Errorf("MethodName(%q): got %q, want %q", tt.typ, got, tt.method)
		}
	}
	for _, tt := range []struct{ method, typ string }{
		{"User.Get", "user.get"}, {"user.get", "user.get"},
		{"KV.Get", "kv.get"}, {"HTTP.GetURL", "http.getURL"},
		{"HTTPProxy.GetURL", "httpProxy.getURL"}, {"UserID.X", "userID.x"},
		{"A.B", "a.b"}, {"ABTest.Run", "abTest.run"}, {"", ""}, {"X..Y", "x..y"},
	} {
		if got := TypeName(tt.method); got != tt.typ {
			t.Errorf("TypeName(%q): got %q, want %q", tt.method, got, tt.typ)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *Error
		text string
	}{
		{&Error{Code: "NotFound", Message: "no user 7"}, "[NotFound] no user 7"},
		{&Error{Code: "NotFound"}, "[NotFound] "},
		{&Error{Code: "x-y", Message: "m] n"}, "[x-y] m] n"},
		{timeoutError("user.get", nil), "timeout: user.get"},
		{&Error{Code: CodeDisconnected, Message: "connection closed: EOF"}, "[Disconnected] connection closed: EOF"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.text {
			t.Errorf("%+v: got %q, want %q", tt.err, got, tt.text)
		}
		back, ok := parseError(tt.text)
		if !ok || *back != *tt.err {
			t.Errorf("parseError(%q): got %+v, %v; want %+v", tt.text, back, ok, tt.err)
		}
	}
	for _, s := range []string{"plain", "[bad code] x", "[] x", "[Code]x", "timeout: "} {
		if e, ok := parseError(s); ok {
			t.Errorf("parseError(%q): got %+v, want no match", s, e)
		}
	}
}

func TestAsErrorAndErrorCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		code string
		msg  string
	}{
		{nil, "", ""},
		{&Error{Code: "Teapot", Message: "m"}, "Teapot", "m"},
		{errors.Join(errors.New("ctx"), &Error{Code: "Teapot", Message: "m"}), "Teapot", "m"},
		{rpc.ServerError("[NotFound] no user"), "NotFound", "no user"},
		{rpc.ServerError("timeout: user.get"), CodeTimeout, "timeout: user.get"},
		{rpc.ServerError("some text"), CodeServerError, "some text"},
		{rpc.ErrShutdown, CodeDisconnected, ""},
		{errors.New("other"), CodeServerError, ""},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.code {
			t.Errorf("ErrorCode(%v): got %q, want %q", tt.err, got, tt.code)
		}
		if e, ok := AsError(tt.err); ok && e.Message != tt.msg {
			t.Errorf("AsError(%v): got message %q, want %q", tt.err, e.Message, tt.msg)
		}
	}
	if !errors.Is(timeoutError("x", nil), ErrTimeout) || errors.Is(&Error{Code: "Other"}, ErrTimeout) {
		t.Error("errors.Is with ErrTimeout matches by code only")
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct{ text, code, msg string }{
		{"[NotFound] no user", "NotFound", "no user"},
		{"[not-camel] x", CodeServerError, "[not-camel] x"},
		{"timeout: x", CodeServerError, "timeout: x"},
		{"rpc: can't find service User.Nope", CodeMethodNotFound, "method not found: user.nope"},
		{"rpc: can't find method User.Nope", CodeMethodNotFound, "method not found: user.nope"},
		{"rpc: service/method request ill-formed: User", CodeMethodNotFound, "method not found: user.nope"},
		{"disk full", CodeServerError, "disk full"},
		// Errors that wrap an *Error carry its code, and their context.
		{fmt.Errorf("loading ada: %w", &Error{Code: "Forbidden", Message: "not yours"}).Error(), "Forbidden", "loading ada: not yours"},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", &Error{Code: "NotFound", Message: "gone"})).Error(), "NotFound", "a: b: gone"},
		{"a: [not-camel] x: [Late] y", "Late", "a: [not-camel] x: y"},
		{"a: [Timeout] x", CodeServerError, "a: [Timeout] x"},
		{"a: [", CodeServerError, "a: ["},
	}
	for _, tt := range tests {
		code, msg := classify(tt.text, "user.nope")
		if code != tt.code || msg != tt.msg {
			t.Errorf("classify(%q): got %q %q, want %q %q", tt.text, code, msg, tt.code, tt.msg)
		}
	}
}

// What a peer can make the name cache hold is bounded: a few dozen short
// names, whatever it sends.
func TestNameCacheBounded(t *testing.T) {
	c := nameCache{fn: MethodName}
	for i := range 5000 {
		for _, n := range []int{8, maxCachedName, maxCachedName + 1, MaxTypeLength} {
			name := fmt.Sprintf("%0*d", n, i)
			if from, to := c.lookup([]byte(name)); from != name || to != MethodName(name) {
				t.Fatalf("lookup(%q) = %q, %q", name, from, to)
			}
		}
	}
	if len(c.m) > nameCacheSize {
		t.Fatalf("the cache holds %d names, want at most %d", len(c.m), nameCacheSize)
	}
	for k := range c.m {
		if len(k) > maxCachedName {
			t.Fatalf("the cache holds a name of %d bytes, want at most %d", len(k), maxCachedName)
		}
	}
}

// The name cache answers a repeated name from its last lookup, and never
// answers one name with another's mapping.
func TestNameCacheRepeats(t *testing.T) {
	calls := 0
	c := nameCache{fn: func(s string) string { calls++; return "<" + s + ">" }}
	long := strings.Repeat("x", maxCachedName+1)
	for i, name := range []string{"a.b", "a.b", "c.d", "a.b", "c.d", "c.d", long, "c.d", long, "", "a.b", ""} {
		if from, to := c.lookup([]byte(name)); from != name || to != "<"+name+">" {
			t.Fatalf("lookup %d of %q = %q, %q", i, name, from, to)
		}
	}
	// "a.b", "c.d" and "" once each; the name too long to cache every time.
	if want := 3 + 2; calls != want {
		t.Errorf("fn ran %d times, want %d", calls, want)
	}
}

// A connection that calls one method never makes the name cache's map.
func TestNameCacheOneName(t *testing.T) {
	c := nameCache{fn: MethodName}
	for range 3 {
		if from, to := c.lookup([]byte("arith.multiply")); from != "arith.multiply" || to != "Arith.Multiply" {
			t.Fatalf("lookup = %q, %q", from, to)
		}
	}
	if c.m != nil {
		t.Fatalf("one name made the map: %v", c.m)
	}
	c.lookup([]byte("arith.add"))
	for _, name := range []string{"arith.multiply", "arith.add"} {
		if _, ok := c.m[name]; !ok {
			t.Errorf("after a second name, the map lacks %q: %v", name, c.m)
		}
	}
}

// The table of requests in flight keeps the first in place and the rest in
// a map, whatever the order they are answered in.
func TestRequestTable(t *testing.T) {
	var tab requestTable
	req := func(seq uint64) serverRequest { return newServerRequest(fmt.Sprint("t", seq), []byte(fmt.Sprint(seq))) }
	check := func(seq uint64, want bool) {
		t.Helper()
		var r serverRequest
		ok := tab.take(seq, &r)
		if ok != want || ok && (r.typ != fmt.Sprint("t", seq) || string(r.id()) != fmt.Sprint(seq)) {
			t.Fatalf("take(%d) = %q %q %v, want %v", seq, r.typ, r.id(), ok, want)
		}
	}
	// One at a time: no map.
	for seq := uint64(1); seq <= 5; seq++ {
		tab.put(seq, req(seq))
		if tab.len() != 1 {
			t.Fatalf("len = %d, want 1", tab.len())
		}
		check(seq, true)
		check(seq, false)
	}
	if tab.more != nil {
		t.Fatal("one request at a time made the map")
	}
	// Several, answered out of order; AfterReply's update reaches each.
	for seq := uint64(6); seq <= 9; seq++ {
		tab.put(seq, req(seq))
	}
	for seq := uint64(6); seq <= 9; seq++ {
		if !tab.update(seq, func(r *serverRequest) { r.cost = int32(seq) }) {
			t.Fatalf("update(%d) found nothing", seq)
		}
	}
	if tab.update(42, func(*serverRequest) { t.Fatal("updated a request not in flight") }) {
		t.Fatal("update(42) found a request")
	}
	for _, seq := range []uint64{8, 6, 9} {
		var r serverRequest
		ok := tab.take(seq, &r)
		if !ok || r.cost != int32(seq) {
			t.Fatalf("take(%d) = cost %d, %v", seq, r.cost, ok)
		}
	}
	tab.put(10, req(10)) // the first's place is free again
	if tab.len() != 2 {
		t.Fatalf("len = %d, want 2", tab.len())
	}
	check(7, true)
	check(10, true)
	check(0, false)
	if tab.len() != 0 {
		t.Fatalf("len = %d, want 0", tab.len())
	}
}
