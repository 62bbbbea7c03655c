package codec

import (
	"encoding/json"
	"strconv"

	"github.com/rpcws/rpcws/internal/eventq"
)

// DefaultMaxQueuedEventBytes is how many bytes of received events may wait
// for [ClientOptions.OnEvent] unless [ClientOptions.MaxQueuedEventBytes]
// says otherwise: 1 MiB, as much as one frame of a server with default
// limits.
const DefaultMaxQueuedEventBytes = eventq.DefaultMaxBytes

// Event is an event frame (a frame without id) as the client read it, for
// [ClientOptions.OnEventFrame].
type Event struct {
	Type string

	// Data is the raw JSON of the frame's "data", nil when absent. It
	// aliases the frame, which the client reuses: it is valid only until
	// OnEventFrame returns.
	Data json.RawMessage

	// Topic, Epoch and Offset are the position that a server keeping
	// history adds to a topic's events (PROTOCOL.md, "Sessions and
	// recovery"): "", "" and 0 when the frame has none, or has them in a
	// JSON kind no server sends.
	Topic  string
	Epoch  string
	Offset uint64
}

// readEvent fills ev from an event frame that parseEnvelope accepted, of
// type typ, whose data is data: it looks for the position fields, which
// only a client that reconnects needs, in a second scan of the frame.
func readEvent(frame, typ, data []byte, ev *Event) {
	*ev = Event{Type: string(typ), Data: data}
	i := skipSpace(frame, 0) + 1 // past '{': the frame is a valid object
	for {
		i = skipSpace(frame, i)
		keyEnd, v := scanKey(frame, i)
		if v < 0 {
			return
		}
		end := scanValue(frame, v, 1)
		if end < 0 {
			return
		}
		ev.note(unquoteKey(frame[i:keyEnd]), frame[v:end])
		i = skipSpace(frame, end)
		if i >= len(frame) || frame[i] != ',' {
			return
		}
		i++
	}
}

// note keeps val if key is one of the position's fields and val of the
// JSON kind the protocol gives it; of another kind, the field counts as
// absent. As with encoding/json, the last of a repeated field decides.
func (ev *Event) note(key, val []byte) {
	switch string(key) {
	case "topic":
		s, _ := stringValue(val)
		ev.Topic = string(s)
	case "epoch":
		s, _ := stringValue(val)
		ev.Epoch = string(s)
	case "offset":
		n, err := strconv.ParseUint(string(val), 10, 64)
		if err != nil { // not a plain integer, or too large
			n = 0
		}
		ev.Offset = n
	}
}
