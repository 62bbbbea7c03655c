package codec

import (
	"errors"
	"net/rpc"
	"strings"
)

// Error codes of the wire protocol. A method may also fail with any other
// UpperCamelCase word by returning an [*Error] that carries it.
const (
	CodeParseError     = "ParseError"     // the frame is not a JSON object, or is binary
	CodeBadRequest     = "BadRequest"     // type missing, empty or not a string
	CodeMethodNotFound = "MethodNotFound" // no service or method answers to the type
	CodeInvalidParams  = "InvalidParams"  // data does not decode into the argument type
	CodeServerError    = "ServerError"    // the method returned a plain Go error
	CodeUnavailable    = "Unavailable"    // the server is shutting down and takes no new requests
	CodeTooLarge       = "TooLarge"       // the reply would exceed the frame limit
	CodeTimeout        = "Timeout"        // client verdict: no reply came in time
	CodeDisconnected   = "Disconnected"   // client verdict: the connection closed first
)

// Sentinels for errors.Is. Any [*Error] with the same Code matches them:
// errors.Is(err, ErrTimeout) holds for every timeout, whatever its message.
var (
	ErrTimeout      error = &Error{Code: CodeTimeout}
	ErrDisconnected error = &Error{Code: CodeDisconnected}
)

// Error is an error with a protocol error code. It is both the Go error and the
// wire object {"code": Code, "message": Message}.
//
// A service method that returns an *Error, or an error that wraps one (as
// fmt.Errorf's %w does; its text is then "context: [Code] Message"), fails
// with that code on the wire. A client
// gets an *Error back for every error reply, from [ClientCodec.Call] directly
// and from the stock [rpc.Client] through [AsError].
//
// net/rpc carries errors between a service and the codec, and between the codec
// and the stock client, as strings. The text of an Error is therefore a frozen
// format that the codecs parse back:
//
//	[Code] Message
//
// for example "[NotFound] no user 42". The one exception is the client's own
// timeout verdict, whose text is "timeout: <type>" (Code Timeout), the words
// of the JavaScript client and of the lesson its protocol comes from.
type Error struct {
	Code    string
	Message string
}

// Error returns the frozen text format: "[Code] Message", or the message alone
// for a timeout, which already reads "timeout: <type>".
func (e *Error) Error() string {
	if e.Code == CodeTimeout && strings.HasPrefix(e.Message, timeoutPrefix) {
		return e.Message
	}
	return "[" + e.Code + "] " + e.Message
}

// Is reports whether target is an *Error with the same code and no message,
// such as [ErrTimeout] and [ErrDisconnected].
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Timeout reports whether the error is a client's timeout verdict, as
// net.Error does.
func (e *Error) Timeout() bool { return e.Code == CodeTimeout }

const timeoutPrefix = "timeout: "

// timeoutError is the error of a call that got no reply in time.
func timeoutError(typ string) *Error {
	return &Error{Code: CodeTimeout, Message: timeoutPrefix + typ}
}

// AsError finds the protocol error in err. It returns the first [*Error] in
// err's chain, or, for the stock client's [rpc.ServerError], the code and
// message parsed back from its frozen text. A ServerError that is not in that
// format is reported with code ServerError and its whole text as message.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	var se rpc.ServerError
	if errors.As(err, &se) {
		if e, ok := parseError(string(se)); ok {
			return e, true
		}
		return &Error{Code: CodeServerError, Message: string(se)}, true
	}
	return nil, false
}

// ErrorCode returns the protocol code of err: the code of its [*Error] or
// [rpc.ServerError] (see [AsError]), Disconnected for a client that was shut
// down ([rpc.ErrShutdown]) or whose connection ended mid-call, "" for nil, and
// ServerError for anything else.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := AsError(err); ok {
		return e.Code
	}
	if errors.Is(err, rpc.ErrShutdown) {
		return CodeDisconnected
	}
	return CodeServerError
}

// parseError parses the frozen text format of [Error.Error].
func parseError(s string) (*Error, bool) {
	if msg, ok := strings.CutPrefix(s, timeoutPrefix); ok && msg != "" {
		return &Error{Code: CodeTimeout, Message: s}, true
	}
	rest, ok := strings.CutPrefix(s, "[")
	if !ok {
		return nil, false
	}
	code, msg, ok := strings.Cut(rest, "] ")
	if !ok || !validWireCode(code) {
		return nil, false
	}
	return &Error{Code: code, Message: msg}, true
}

// validWireCode reports whether code can travel in the frozen text: any
// non-empty run of printable ASCII without spaces or ']', at most 64 bytes.
// Foreign servers may send codes of their own shape, and the client keeps them.
func validWireCode(code string) bool {
	if code == "" || len(code) > 64 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; c <= ' ' || c > '~' || c == ']' {
			return false
		}
	}
	return true
}

// ValidCode reports whether code is an UpperCamelCase word, the shape of every
// code a server of this project sends: an ASCII capital letter, then ASCII
// letters and digits.
func ValidCode(code string) bool {
	if code == "" || len(code) > 64 || code[0] < 'A' || code[0] > 'Z' {
		return false
	}
	for i := 1; i < len(code); i++ {
		c := code[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
