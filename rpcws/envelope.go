package rpcws

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/rpcws/rpcws/codec"
)

// A brokerEnvelope is a message on the broker: a version byte, then the
// excepted peer's ID and the target peer's ID, each as a uvarint length and
// bytes, then the event frame {"type": E, "data": D}. It is not the wire
// protocol's envelope (codec's): replicas alone read it.
type brokerEnvelope struct {
	except string // a peer's ID, or ""
	target string // for a peer address, its ID; or ""
	frame  []byte // the event, as published
}

const brokerEnvelopeVersion = 1

// appendBrokerEnvelope appends the head of an envelope (version, except and
// target) to b; the frame follows it.
func appendBrokerEnvelope(b []byte, except, target string) []byte {
	b = append(b, brokerEnvelopeVersion)
	b = binary.AppendUvarint(b, uint64(len(except)))
	b = append(b, except...)
	b = binary.AppendUvarint(b, uint64(len(target)))
	return append(b, target...)
}

// parseBrokerEnvelope reads msg; the envelope's frame shares msg's bytes.
func parseBrokerEnvelope(msg []byte) (e brokerEnvelope, ok bool) {
	if len(msg) == 0 || msg[0] != brokerEnvelopeVersion {
		return e, false
	}
	rest := msg[1:]
	field := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return "", false
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, true
	}
	if e.except, ok = field(); !ok {
		return e, false
	}
	if e.target, ok = field(); !ok {
		return e, false
	}
	e.frame = rest
	return e, len(rest) > 0
}

// Why an event from the broker is refused.
var (
	errNotEnvelope   = errors.New("not a broker envelope")
	errNotEvent      = errors.New(`not an event {"type": string, "data": JSON}`)
	errInvalidUTF8   = errors.New("not valid UTF-8")
	errReservedType  = errors.New(`an "rpcws." event type, reserved for the library`)
	errEventTooLarge = errors.New("larger than the frame limit")
)

// rebuildEvent checks the event frame of an envelope and returns the frame
// the handler writes to its clients, built anew as {"type": E, "data": D}:
// the broker's bytes are never written as they came. The frame must be
// valid UTF-8, a JSON object with a non-empty string "type" that does not
// start with "rpcws." and any JSON "data"; other fields are dropped (an
// event has no "id"); the result must fit maxFrame bytes (<= 0: no limit).
func rebuildEvent(frame []byte, maxFrame int) ([]byte, error) {
	if maxFrame > 0 && len(frame) > 2*maxFrame+64 { // not worth decoding
		return nil, errEventTooLarge
	}
	if !utf8.Valid(frame) {
		return nil, errInvalidUTF8
	}
	var ev struct {
		Type *string         `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(frame, &ev); err != nil || ev.Type == nil || *ev.Type == "" {
		return nil, errNotEvent
	}
	if strings.HasPrefix(*ev.Type, "rpcws.") {
		return nil, errReservedType
	}
	out, err := codec.EncodeEvent(*ev.Type, ev.Data)
	if err != nil {
		return nil, errNotEvent
	}
	if maxFrame > 0 && len(out) > maxFrame {
		return nil, errEventTooLarge
	}
	return out, nil
}

// appendUvarintString appends s with its length as a uvarint before it.
func appendUvarintString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readUvarintString reads what appendUvarintString wrote, and the rest.
func readUvarintString(b []byte) (s string, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}
