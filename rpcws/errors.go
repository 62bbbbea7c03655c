package rpcws

import "github.com/rpcws/rpcws/codec"

// The error story of the client (see [Client]) and the codes a service fails
// with live in package codec; these are the same names, so that everyday
// code needs one import.

// Error is an error with a protocol code: [codec.Error].
type Error = codec.Error

// AsError finds the [*Error] in err: [codec.AsError].
func AsError(err error) (*Error, bool) { return codec.AsError(err) }

// ErrorCode returns the protocol code of err: [codec.ErrorCode].
func ErrorCode(err error) string { return codec.ErrorCode(err) }

// Codes of the wire protocol and of the client's own verdicts: see
// [codec.CodeTimeout] and the rest.
const (
	CodeParseError     = codec.CodeParseError
	CodeBadRequest     = codec.CodeBadRequest
	CodeMethodNotFound = codec.CodeMethodNotFound
	CodeInvalidParams  = codec.CodeInvalidParams
	CodeServerError    = codec.CodeServerError
	CodeUnavailable    = codec.CodeUnavailable
	CodeTooLarge       = codec.CodeTooLarge
	CodeTimeout        = codec.CodeTimeout
	CodeCanceled       = codec.CodeCanceled
	CodeDisconnected   = codec.CodeDisconnected
	CodeBadReply       = codec.CodeBadReply
	CodeBadArgs        = codec.CodeBadArgs
	CodeDialFailed     = codec.CodeDialFailed
)

// Sentinels for errors.Is: the same values as codec's.
var (
	ErrTimeout      = codec.ErrTimeout
	ErrDisconnected = codec.ErrDisconnected
	ErrBadReply     = codec.ErrBadReply
	ErrDialFailed   = codec.ErrDialFailed
)
