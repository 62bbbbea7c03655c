package codec

import (
	"encoding/json"
	"strconv"
)

// The frames a transport writes by itself, beside the replies a
// [ServerCodec] writes for net/rpc: events, and the replies to requests of
// a reserved type that the transport answers itself.

// EncodeReply returns the success reply to the request whose id is id
// (its JSON text, as it arrived) and whose type is typ:
// {"id":ID,"type":typ+".response","data":data}. A transport that answers
// a request itself (one of a reserved type) writes it.
func EncodeReply(id json.RawMessage, typ string, data any) ([]byte, error) {
	e := newEncoder()
	e.start(id, typ, ".response")
	if err := e.data(data); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

// EncodeErrorReply returns the error reply to the request whose id is id:
// {"id":ID,"type":"error","code":code,"message":message}.
func EncodeErrorReply(id json.RawMessage, code, message string) []byte {
	return newEncoder().errorFrame(id, code, message)
}

// AppendPosition appends to dst the event frame event, as [EncodeEvent]
// returns it, with the position of a topic's event after its data:
// {"type":E,"data":D,"topic":T,"epoch":P,"offset":N} (PROTOCOL.md,
// "Sessions and recovery").
func AppendPosition(dst, event []byte, topic, epoch string, offset uint64) []byte {
	dst = append(dst, event[:len(event)-1]...) // without its closing brace
	dst = append(dst, `,"topic":`...)
	dst = appendString(dst, topic)
	dst = append(dst, `,"epoch":`...)
	dst = appendString(dst, epoch)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	return append(dst, '}')
}

// EncodeEvent returns the frame of an unsolicited event:
// {"type":typ,"data":data}. A transport that offers push writes it to the
// connection; see package rpcws.
func EncodeEvent(typ string, data any) ([]byte, error) {
	e := newEncoder()
	e.start(nil, typ, "")
	if err := e.data(data); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}
