// Package codec implements net/rpc's [rpc.ServerCodec] and [rpc.ClientCodec]
// for a small JSON request-response protocol over any transport that carries
// whole frames: one JSON object per frame, as a WebSocket message does.
//
// The protocol is the one JavaScript developers write by hand over a
// WebSocket, as a short published lesson, "Request-Response over WebSocket",
// teaches it: the client tags each request with an id, the server echoes it,
// and a reply that never comes ends in "timeout: <type>". PROTOCOL.md, at the
// root of the repository, makes it precise:
//
//	client → server   {"id":ID,"type":"user.get","data":{"id":"123"}}
//	server → client   {"id":ID,"type":"user.get.response","data":{...}}
//	server → client   {"id":ID,"type":"error","code":"NotFound","message":"..."}
//	server → client   {"type":"demo.tick","data":{...}}   (an event: no id)
//
// The client picks the id (a random UUID here) and the server echoes it
// exactly as it arrived; replies may come in any order. A request without an
// id is a notification: it runs, and nothing comes back.
//
// The codecs map between that protocol and net/rpc: string ids to net/rpc's
// uint64 Seq and back, request types ("user.get") to net/rpc methods
// ("User.Get") by capitalising each part ([MethodName], [TypeName]; both
// replaceable), and Go errors to codes ([Error]). Services and clients stay
// stock net/rpc.
//
// The package sees frames only through [Conn], so it rides any transport;
// [Pipe] gives an in-memory pair for tests. Package rpcws puts it on
// WebSocket, with push, limits and keepalive.
//
// # Errors
//
// A service returns an [*Error] to fail with a code; any other error is
// ServerError, its text sent to the client verbatim, unless
// [ServerOptions].PlainError maps it ([HidePlainErrors] keeps it in the log
// and sends "internal error"). net/rpc carries errors as strings, so the text of an Error is
// a frozen format that the codecs parse back: "[Code] Message", or, for a
// client's own timeout verdict, the lesson's "timeout: <type>". [AsError]
// and [ErrorCode] recover the code from the stock client's [rpc.ServerError];
// [ClientCodec.Call] returns the *Error itself. So errors.Is(err, ErrTimeout)
// holds for a timed-out Call, and not for the stock client's Call, whose
// error is a string: there ErrorCode(err) == CodeTimeout.
//
// # Time
//
// Every call of the client codec ends. A call with no deadline of its own
// times out after [ClientOptions.Timeout]; a [ClientCodec.Call] whose context
// has a deadline is bounded by that deadline instead, later or earlier; and
// [WithTimeout] gives one call a timeout of its own, as the JavaScript
// client's timeoutMs does. When the connection ends, every pending call
// fails at once.
//
// # Bad input
//
// A frame that is not a JSON object, or a request without a usable type, is
// answered by the server codec itself (ParseError, BadRequest) and the codec
// reads on: net/rpc, which ends a connection on any read error, only ever
// sees good requests. The client codec drops and counts frames it cannot
// read.
package codec
