package rpcws

// The reserved frames of sessions and recovery (PROTOCOL.md, "Sessions and
// recovery"), shared by the handler and the Go client.
const (
	// SessionEvent is the first frame a handler with history writes on a
	// connection: its data is [SessionData].
	SessionEvent = "rpcws.session"

	// JoinedEvent tells a connection it joined a topic, and where the
	// topic stands: its data is [JoinedData].
	JoinedEvent = "rpcws.joined"

	// LeftEvent tells a connection it left a topic: its data is
	// {"topic": T}.
	LeftEvent = "rpcws.left"

	// RecoverMethod is the type of the request a reconnecting client sends
	// first: its data is [RecoverArgs], its reply [RecoverReply].
	RecoverMethod = "rpcws.recover"
)

// SessionData is the data of a [SessionEvent].
type SessionData struct {
	ID     string `json:"id"`     // secret: at least 128 random bits, at most 128 characters
	Window int64  `json:"window"` // the recovery window, in milliseconds
}

// JoinedData is the data of a [JoinedEvent]: the topic and its position
// when the connection joined it.
type JoinedData struct {
	Topic  string `json:"topic"`
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// LeftData is the data of a [LeftEvent].
type LeftData struct {
	Topic string `json:"topic"`
}

// RecoverArgs is the data of a [RecoverMethod] request: the old
// connection's session and, for each of its topics, the position of the
// last event the client received.
type RecoverArgs struct {
	Session string              `json:"session"`
	Topics  map[string]Position `json:"topics"`
}

// RecoverReply is the result of a [RecoverMethod] request.
type RecoverReply struct {
	Recovered bool                     `json:"recovered"` // the session was restored
	Topics    map[string]TopicRecovery `json:"topics"`    // the topics the connection is now in
}

// TopicRecovery is where one topic stands after a recovery, and whether
// the client got every event it missed.
type TopicRecovery struct {
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`
	Recovered bool   `json:"recovered"`
}
