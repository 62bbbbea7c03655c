package codec

import (
	"context"
	"errors"
	"net/rpc"
)

// read is the codec's reading goroutine: it matches replies to calls and
// hands events to OnEvent, until the connection ends.
func (c *ClientCodec) read() {
	defer close(c.readerDone)
	var buf []byte
	for {
		frame, err := c.conn.ReadFrame(c.ctx, buf)
		if errors.Is(err, ErrBinaryFrame) {
			c.badFrame("binary frame")
		} else if err != nil {
			c.shutdown(err)
			return
		} else {
			c.dispatch(frame)
		}
		buf = reusable(frame)
	}
}

// dispatch delivers one frame: a reply to its call, an event to OnEvent.
func (c *ClientCodec) dispatch(frame []byte) {
	env, err := parseEnvelope(frame)
	if err != nil {
		c.badFrame(err.Error())
		return
	}
	if !env.hasID() {
		c.noID(frame, &env)
		return
	}
	id, ok := stringValue(env.id)
	if !ok { // not an id this client sends: no call to fail
		c.badReplies.Add(1)
		c.logf("dropped a reply: its id is not a string")
		return
	}
	var call *clientCall
	if len(id) == len(idKey{}) {
		c.mu.Lock()
		if call = c.pending.byID[idKey(id)]; call != nil {
			c.pending.remove(call)
		}
		c.mu.Unlock()
	}
	if call == nil {
		c.late.Add(1)
		return
	}
	data, rerr, bad := replyOutcome(call.typ, &env)
	if bad {
		c.badReplies.Add(1)
	}
	if rerr != nil {
		c.complete(call, rerr, nil)
		return
	}
	c.complete(call, nil, data)
}

// noID handles a frame without id: an event, or an error that belongs to no
// request.
func (c *ClientCodec) noID(frame []byte, env *envelope) {
	typ, _ := stringValue(env.typ)
	switch {
	case string(typ) == "error":
		code, msg, _ := errorFields(env)
		c.logf("the server reported an error", "code", code, "message", msg)
	case len(typ) > 0 && c.onFrame != nil:
		var ev Event
		readEvent(frame, typ, env.data, &ev)
		c.onFrame(ev)
	case len(typ) > 0:
		if c.events.Enabled() {
			c.events.Add(string(typ), env.data)
		}
	default:
		c.badFrame("frame without id and type")
	}
}

// replyOutcome reads a reply to a call of type typ: its data, or the error
// it carries. A reply that breaks the protocol (PROTOCOL.md, "Messages")
// fails its call with BadReply, and bad is true: its type is neither typ +
// ".response" nor "error", or an error's code or message has the wrong
// JSON kind. Fields left out are taken leniently, as foreign servers do:
// data means null, code ServerError, message "".
func replyOutcome(typ string, env *envelope) (data []byte, err *Error, bad bool) {
	t, ok := stringValue(env.typ)
	switch {
	case ok && string(t) == "error":
		code, msg, ok := errorFields(env)
		if !ok {
			return nil, badReplyError(typ, "its code or message has the wrong JSON kind"), true
		}
		return nil, &Error{Code: code, Message: msg}, false
	case !ok || !isResponseType(t, typ):
		return nil, badReplyError(typ, `its type is neither "`+typ+`.response" nor "error"`), true
	}
	return env.data, nil, false
}

// isResponseType reports whether t is typ + ".response".
func isResponseType(t []byte, typ string) bool {
	const suffix = ".response"
	return len(t) == len(typ)+len(suffix) && string(t[:len(typ)]) == typ && string(t[len(typ):]) == suffix
}

// errorFields returns the code and message of an error frame; ok is false
// when either has a JSON kind no server sends. A foreign server may leave
// them out, or send a number for a code: the client keeps what it can.
func errorFields(env *envelope) (code, message string, ok bool) {
	code = CodeServerError
	switch b, isString := stringValue(env.code); {
	case isString:
		if validWireCode(string(b)) {
			code = string(b)
		}
	case env.code == nil || isNull(env.code):
	case plainNumber(env.code):
		code = string(env.code) // -32601, say
	default:
		return "", "", false
	}
	switch b, isString := stringValue(env.message); {
	case isString:
		message = string(b)
	case env.message == nil || isNull(env.message):
	default:
		return "", "", false
	}
	return code, message, true
}

// plainNumber reports whether v, a JSON value, is a number short enough to
// be a code.
func plainNumber(v []byte) bool {
	return len(v) > 0 && (v[0] == '-' || '0' <= v[0] && v[0] <= '9') && validWireCode(string(v))
}

// shutdown records why the connection ended and fails every pending call.
func (c *ClientCodec) shutdown(cause error) {
	c.mu.Lock()
	if c.closeCalled.Load() {
		c.doneErr = &Error{Code: CodeDisconnected, Message: "the client was closed", Err: rpc.ErrShutdown}
	} else {
		c.doneErr = &Error{Code: CodeDisconnected, Message: "connection closed: " + cause.Error(), Err: cause}
	}
	pending := c.pending.takeAll()
	close(c.done)
	c.mu.Unlock()
	c.adm.Close()
	for _, call := range pending {
		c.complete(call, c.doneErr, nil)
	}
	c.conn.Close()
}

func (c *ClientCodec) badFrame(why string) {
	c.badFrames.Add(1)
	c.logf("dropped a frame", "error", why)
}

// The client's verdicts, as [*Error]s with the codes of error.go.

// timeoutError is the error of a call that got no reply in time; cause is
// its context's cause, or nil for the client's own timeout.
func timeoutError(typ string, cause error) *Error {
	return &Error{Code: CodeTimeout, Message: timeoutPrefix + typ, Err: cause}
}

// contextError is the error of a call of type typ whose context ended.
func contextError(ctx context.Context, typ string) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return timeoutError(typ, context.Cause(ctx))
	}
	return &Error{Code: CodeCanceled, Message: "call " + typ + ": " + ctx.Err().Error(), Err: context.Cause(ctx)}
}

func badReplyError(typ, why string) *Error {
	return &Error{Code: CodeBadReply, Message: "reply to " + typ + ": " + why}
}

func badArgsError(typ string, err error) *Error {
	return &Error{Code: CodeBadArgs, Message: "cannot encode the data of " + typ + ": " + err.Error(), Err: err}
}
