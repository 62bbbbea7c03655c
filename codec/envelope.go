package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"unicode/utf8"
)

// envelope holds the raw JSON values of a frame's top-level fields. Each
// slice aliases the frame; nil means the field is absent.
type envelope struct {
	id, typ, data []byte
	code, message []byte // error replies only
}

var errNotObject = errors.New("frame is not a JSON object")

// parseEnvelope reads a frame once, without reflection: it checks that the
// frame is one valid JSON object, as json.Valid would, and notes where the
// fields it knows stand as it goes. Unknown fields are skipped; for a
// repeated field the last one wins, as with encoding/json.
func parseEnvelope(p []byte) (envelope, error) {
	var env envelope
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return envelope{}, errNotObject
	}
	if i = skipSpace(p, i+1); i < len(p) && p[i] == '}' {
		return env, endOfFrame(p, i+1)
	}
	for {
		keyEnd, v := scanKey(p, i)
		if v < 0 {
			return envelope{}, errNotObject
		}
		valEnd := scanValue(p, v, 1)
		if valEnd < 0 {
			return envelope{}, errNotObject
		}
		env.note(unquoteKey(p[i:keyEnd]), p[v:valEnd])
		switch i = skipSpace(p, valEnd); {
		case i < len(p) && p[i] == ',':
			i = skipSpace(p, i+1)
		case i < len(p) && p[i] == '}':
			return env, endOfFrame(p, i+1)
		default:
			return envelope{}, errNotObject
		}
	}
}

// note keeps val if key is one of the envelope's fields.
func (e *envelope) note(key, val []byte) {
	switch string(key) {
	case "id":
		e.id = val
	case "type":
		e.typ = val
	case "data":
		e.data = val
	case "code":
		e.code = val
	case "message":
		e.message = val
	}
}

// endOfFrame returns errNotObject unless only space follows p[i:].
func endOfFrame(p []byte, i int) error {
	if skipSpace(p, i) != len(p) {
		return errNotObject
	}
	return nil
}

// hasID reports whether the frame carries an id: absent and null are alike.
func (e *envelope) hasID() bool { return e.id != nil && !isNull(e.id) }

func isNull(v []byte) bool { return string(v) == "null" }

// unquoteKey returns a key's text. Keys with escapes are rare; they are
// decoded the slow way.
func unquoteKey(q []byte) []byte {
	if bytes.IndexByte(q, '\\') < 0 {
		return q[1 : len(q)-1]
	}
	var s string
	if json.Unmarshal(q, &s) != nil {
		return nil
	}
	return []byte(s)
}

// stringValue returns the text of a raw JSON string value, and false when v is
// not a string. It allocates only for strings with escapes.
func stringValue(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// unmarshalData decodes a frame's data into x as json.Unmarshal does. data
// must be a value that parseEnvelope found, in a frame it accepted: valid
// JSON. The common replies and arguments that need neither reflection
// nor unescaping (a string without escapes into a *string, an integer into
// an *int) are read once, without encoding/json, which would validate the
// value again, scan it again to decode it and allocate its own state;
// everything else goes to encoding/json. validUTF8 tells that the frame is
// known to be valid UTF-8 (the server checks every frame), which spares the
// string's text a second look.
func unmarshalData(data []byte, x any, validUTF8 bool) error {
	switch p := x.(type) {
	case *string:
		// A valid JSON string holds no raw control character; without a
		// backslash and with valid UTF-8 its text is its bytes.
		if len(data) >= 2 && data[0] == '"' {
			if s := data[1 : len(data)-1]; bytes.IndexByte(s, '\\') < 0 && (validUTF8 || utf8.Valid(s)) {
				*p = string(s)
				return nil
			}
		}
	case *int:
		if plainInt(data) {
			if n, err := strconv.Atoi(string(data)); err == nil {
				*p = n
				return nil
			}
		}
	}
	return json.Unmarshal(data, x)
}

// plainInt reports whether v is a JSON number made of digits alone, with an
// optional minus sign: no fraction, no exponent.
func plainInt(v []byte) bool {
	if len(v) > 0 && v[0] == '-' {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 19 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// appendString appends s as a JSON string, as encoding/json does with HTML
// escaping off: <, > and & stay as they are (frames are not HTML); invalid
// UTF-8 becomes U+FFFD; U+2028 and U+2029 are escaped.
func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip eight bytes at a time that stay as they are: ASCII, and
		// neither a control character, a quote nor a backslash.
		for i+8 <= len(s) {
			v := load64(s, i)
			if v&(ones*0x80)|hasLess(v, 0x20)|hasZero(v^(ones*'"'))|hasZero(v^(ones*'\\')) != 0 {
				break
			}
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = appendEscape(append(dst, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript source before ES2019.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendEscape appends the escape of the ASCII byte c, a quote, a backslash
// or a control character.
func appendEscape(dst []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	}
	return append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}

// load64 returns s[i:i+8] as a little-endian word, which the compiler makes
// one load.
func load64[S ~string | ~[]byte](s S, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// encoder appends frames to a reused buffer. It is not safe for concurrent
// use; each codec guards its own.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

func newEncoder() *encoder {
	e := new(encoder)
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}

// Encoders are pooled by the process: each frame is encoded at once, and
// written from its encoder, so that a connection's writers need not take
// turns while one of them writes (BenchmarkShared64Small).
var encoderPool = sync.Pool{New: func() any { return newEncoder() }}

// getEncoder returns an encoder for one frame.
func getEncoder() *encoder { return encoderPool.Get().(*encoder) }

// putEncoder gives e back, without a large buffer.
func putEncoder(e *encoder) {
	e.trim()
	encoderPool.Put(e)
}

// trim drops the buffer after a frame too large to keep its storage for:
// one large reply should not pin its size for the connection's life.
func (e *encoder) trim() {
	if e.buf.Cap() > maxKeptBuffer {
		e.buf = bytes.Buffer{} // enc writes to &e.buf, which stays the same
	}
}

// start begins a new frame: {"id":ID,"type":T+suffix, or {"type":T+suffix
// without id.
func (e *encoder) start(id []byte, typ string, suffix string) {
	e.buf.Reset()
	b := e.buf.AvailableBuffer()
	b = append(b, '{')
	if id != nil {
		b = append(b, `"id":`...)
		b = append(b, id...)
		b = append(b, ',')
	}
	b = append(b, `"type":`...)
	b = appendString(b, typ)
	if suffix != "" { // suffix needs no escaping: ".response"
		b = append(b[:len(b)-1], suffix...)
		b = append(b, '"')
	}
	e.buf.Write(b)
}

// data finishes the frame with ,"data":V}. On an encoding error the frame is
// left unfinished and the error returned.
func (e *encoder) data(v any) error {
	e.buf.WriteString(`,"data":`)
	// Strings and integers, the common replies, are written directly, as
	// encoding/json would write them: one pass over a string instead of
	// two (json.Encoder encodes into a buffer of its own, then copies).
	switch x := v.(type) {
	case json.RawMessage:
		if x == nil {
			v = nil
		}
	case string:
		e.buf.Grow(len(x) + 3)
		e.buf.Write(appendString(e.buf.AvailableBuffer(), x))
		e.buf.WriteByte('}')
		return nil
	case *string:
		if x != nil {
			e.buf.Grow(len(*x) + 3)
			e.buf.Write(appendString(e.buf.AvailableBuffer(), *x))
			e.buf.WriteByte('}')
			return nil
		}
	case int:
		e.buf.Write(strconv.AppendInt(e.buf.AvailableBuffer(), int64(x), 10))
		e.buf.WriteByte('}')
		return nil
	case *int:
		if x != nil {
			e.buf.Write(strconv.AppendInt(e.buf.AvailableBuffer(), int64(*x), 10))
			e.buf.WriteByte('}')
			return nil
		}
	}
	if err := e.enc.Encode(v); err != nil {
		return err
	}
	e.buf.Truncate(e.buf.Len() - 1) // Encode's newline
	e.buf.WriteByte('}')
	return nil
}

// errorFrame writes a whole error frame: {"id":ID,"type":"error","code":C,"message":M}.
func (e *encoder) errorFrame(id []byte, code, message string) []byte {
	e.start(id, "error", "")
	b := e.buf.AvailableBuffer()
	b = append(b, `,"code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, message)
	b = append(b, '}')
	e.buf.Write(b)
	return e.buf.Bytes()
}
