package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// serverCode reports whether a server may send code: a valid code that is
// not one of the client's own verdicts. A method that fails with the
// verdict of a call it made itself (a Timeout, say) fails with a plain
// ServerError that tells it, so that its client never takes the server's
// answer for a verdict of its own.
func serverCode(code string) bool {
	switch code {
	case CodeTimeout, CodeCanceled, CodeDisconnected, CodeBadReply, CodeBadArgs, CodeDialFailed:
		return false
	}
	return ValidCode(code)
}

// classify maps the error text that net/rpc hands to WriteResponse to a code
// and message: the frozen "[Code] Message" of an *Error, net/rpc's own
// lookup failures, or else a plain error.
func classify(text, typ string) (code, message string) {
	if e, ok := parseError(text); ok && serverCode(e.Code) {
		return e.Code, e.Message
	}
	// An error that wraps an *Error, as fmt.Errorf("…: %w", err) does, reads
	// "context: [Code] message": it carries that code, and its whole context.
	for i := strings.Index(text, ": ["); i >= 0; {
		if e, ok := parseError(text[i+2:]); ok && serverCode(e.Code) {
			return e.Code, text[:i+2] + e.Message
		}
		j := strings.Index(text[i+3:], ": [")
		if j < 0 {
			break
		}
		i += 3 + j
	}
	for _, p := range [...]string{"rpc: can't find service ", "rpc: can't find method ", "rpc: service/method request ill-formed: "} {
		if strings.HasPrefix(text, p) {
			return CodeMethodNotFound, "method not found: " + typ
		}
	}
	return CodeServerError, text
}

// invalidData says what in a request's data did not fit, in the words of
// the JSON the peer sent rather than of the Go types it missed: "data.id
// must be a string, not a number".
func invalidData(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return "invalid data: " + strings.TrimPrefix(err.Error(), "json: ")
	}
	where := "data"
	if te.Field != "" {
		where += "." + te.Field
	}
	return fmt.Sprintf("%s must be %s, not %s", where, jsonKind(te.Type), article(te.Value))
}

// jsonKind names the JSON values that decode into t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another kind of value"
}

// article puts "a" or "an" before what encoding/json calls the value it
// found: "string", "number", "number 1.5", "bool", "array", "object".
func article(v string) string {
	switch {
	case v == "bool":
		return "a boolean"
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ") // the number found: "-1"
	case v == "array" || v == "object":
		return "an " + v
	}
	return "a " + v
}
