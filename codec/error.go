package codec

import (
	"context"
	"errors"
	"net/rpc"
	"strings"
)

// Error codes of the wire protocol, sent by servers. A method may also fail
// with any other UpperCamelCase word by returning an [*Error] that carries it.
const (
	CodeParseError     = "ParseError"     // the frame is not a JSON object, or is binary
	CodeBadRequest     = "BadRequest"     // type missing, empty or not a string
	CodeMethodNotFound = "MethodNotFound" // no service or method answers to the type
	CodeInvalidParams  = "InvalidParams"  // data does not decode into the argument type
	CodeServerError    = "ServerError"    // the method returned a plain Go error
	CodeUnavailable    = "Unavailable"    // the server cannot serve it now: it is shutting down, or a service it needs (its message broker) is unreachable
	CodeTooLarge       = "TooLarge"       // the reply would exceed the frame limit
)

// Codes of the client's own verdicts: a server never sends them, so a client
// tells its verdicts from the server's answers by code alone. What each API
// returns for each is told once, in the package comment's "Errors".
const (
	CodeTimeout      = "Timeout"      // no reply came in time: the client's timeout or the context's deadline
	CodeCanceled     = "Canceled"     // the call's context was cancelled
	CodeDisconnected = "Disconnected" // the connection closed (or Close was called) before the reply came
	CodeBadReply     = "BadReply"     // the reply was malformed, or its data did not decode into the reply value
	CodeBadArgs      = "BadArgs"      // the call's args could not be encoded as JSON: nothing was sent
	CodeDialFailed   = "DialFailed"   // no connection could be made (package rpcws's Dial)
)

// Sentinels for errors.Is. Any [*Error] with the same Code matches them:
// errors.Is(err, ErrTimeout) holds for every timeout, whatever its message.
// A cancelled call matches context.Canceled.
var (
	ErrTimeout      error = &Error{Code: CodeTimeout}
	ErrDisconnected error = &Error{Code: CodeDisconnected}
	ErrBadReply     error = &Error{Code: CodeBadReply}
	ErrDialFailed   error = &Error{Code: CodeDialFailed}
)

// Error is an error with a protocol error code. It is both the Go error and the
// wire object {"code": Code, "message": Message}.
//
// A service method that returns an *Error, or an error that wraps one (as
// fmt.Errorf's %w does; its text is then "context: [Code] Message"), fails
// with that code on the wire. A client gets an *Error for every error reply
// and every verdict of its own (see "Errors" in the package comment); the
// stock [rpc.Client] gets its text, which [AsError] reads back.
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

	// Err is the cause of a client's verdict, when there is one: the
	// context's cause, the decoding error of a bad reply, the dial's error.
	// It is never sent; errors.Is and errors.As look through it.
	Err error
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
// such as [ErrTimeout] and [ErrDisconnected]. A Timeout also matches
// context.DeadlineExceeded and a Canceled context.Canceled, however it was
// made: a timeout is a timeout, whoever's clock ran out.
func (e *Error) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Code == CodeTimeout
	case context.Canceled:
		return e.Code == CodeCanceled
	}
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Unwrap returns the cause of a client's verdict, or nil.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the error is a client's timeout verdict, as
// net.Error does.
func (e *Error) Timeout() bool { return e.Code == CodeTimeout }

const timeoutPrefix = "timeout: "

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
// [rpc.ServerError] (see [AsError]); Timeout for context.DeadlineExceeded,
// Canceled for context.Canceled, Disconnected for [rpc.ErrShutdown] (the
// errors of a stock net/rpc client); "" for nil; and ServerError for
// anything else.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := AsError(err); ok {
		return e.Code
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, rpc.ErrShutdown):
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
