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
// timeout, the lesson's "timeout: <type>".
//
// This is the client's error story, told here once. Every error that
// [ClientCodec.Call], [ClientCodec.Go] and [ClientCodec.Notify] return (and
// package rpcws's Client and Dial) is an [*Error], whichever the API and
// however the call ended: [AsError] finds it and [ErrorCode] gives its code.
// An error reply carries the server's code (NotFound, MethodNotFound,
// ServerError, ...); the client's own verdicts have codes no server sends:
//
//	Timeout       no reply in time: the client's timeout or the context's deadline;
//	              text "timeout: <type>"; matches ErrTimeout and context.DeadlineExceeded
//	Canceled      the call's context was cancelled; matches context.Canceled
//	Disconnected  the connection ended, or Close was called (then it also
//	              matches rpc.ErrShutdown), before the reply; matches ErrDisconnected
//	BadReply      the reply broke the protocol, or its data did not decode
//	              into the reply value; matches ErrBadReply; that call alone fails
//	BadArgs       args could not be encoded as JSON: nothing was sent
//	DialFailed    no connection could be made (rpcws.Dial); matches ErrDialFailed
//	              and wraps the cause
//
// net/rpc's own client over a ClientCodec ([rpc.NewClientWithCodec]) gets
// the same codes, as an [rpc.ServerError] whose text [AsError] and
// [ErrorCode] parse back (and Disconnected, or [rpc.ErrShutdown] after
// Close, as it is); but it decodes its replies itself, and a reply that does
// not fit its reply value ends that client with an error of net/rpc's.
//
// # Time
//
// Every call ends. A call whose context has a deadline is bounded by that
// deadline, later or earlier than [ClientOptions.Timeout]; every other call
// by ClientOptions.Timeout. When the connection ends, every pending call
// fails at once, and none is sent again.
//
// # Bad input
//
// A frame that is not a JSON object, or a request without a usable type, is
// answered by the server codec itself (ParseError, BadRequest) and the codec
// reads on: net/rpc, which ends a connection on any read error, only ever
// sees good requests. The client codec drops and counts frames it cannot
// read, and fails a call whose reply breaks the protocol with BadReply.
package codec
