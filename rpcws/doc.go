// Package rpcws serves net/rpc services to browsers, and to any client of
// the protocol, over WebSocket, and gives Go programs a client for them.
// Its import path is github.com/rpcws/rpcws/rpcws (go get
// github.com/rpcws/rpcws/rpcws); the wire format itself is in
// github.com/rpcws/rpcws/codec.
//
// A [Handler] is an http.Handler that upgrades requests to WebSockets
// (github.com/coder/websocket) and serves each connection with an unchanged
// *rpc.Server through a [codec.ServerCodec]: one goroutine reads the
// connection, each method runs on a goroutine of its own, and one
// [codec.Outbox] writes replies and events in order. [Dial] returns a
// [Client] whose Call and Go have net/rpc's signatures and fail with coded
// errors ([Error]), and which adds [Client.CallContext], notifications and
// pushed events; [DialCodec] gives net/rpc's own client a connection.
//
//	h := rpcws.NewHandler(rpc.NewServer(), nil)
//	h.RegisterName("User", new(Users)) // reached as "user.get"
//	http.Handle("/rpc", h)
//
//	client, err := rpcws.Dial(ctx, "ws://127.0.0.1:8080/rpc", nil)
//	if err != nil {
//		return err
//	}
//	defer client.Close()
//	err = client.Call("User.Get", &UserID{ID: "123"}, &user)
//
// [Handler.Register] and [Handler.RegisterName] register a service on the
// handler's *rpc.Server and let the handler find its methods whatever the
// case of a request's type; services registered on the *rpc.Server directly
// are found by the default mapping ([codec.MethodName]) and acronyms in
// lower case. The Go client sends the type [codec.TypeName] makes of the
// method: "User.Get" travels as "user.get".
//
// # Time
//
// Every call ends: with its reply; at its timeout, which is its context's
// deadline or else [DialOptions.Timeout] (10 s by default); when its context
// is cancelled; or at once when the connection closes. Its error then has
// the code of that verdict, as package codec's "Errors" tells ([codec]), and
// the types and helpers of that story are here too: [Error], [AsError],
// [ErrorCode], [ErrTimeout], [ErrDisconnected], the Code constants. A call's
// context never reaches the socket.
//
// # Errors
//
// A method that returns a [*codec.Error] (or an error wrapping one) fails
// with its code and message. Any other error is a plain error: its text is
// sent verbatim, with code ServerError, to the client, which may be a
// browser: a driver's error, a file path, a host name included.
// [HandlerOptions].PlainError maps that text to what the client reads;
// [codec.HidePlainErrors] logs it and sends "internal error".
//
// # Push
//
// A method reaches the connection that called it by embedding [Caller] in
// its argument type; [Peer.Notify] pushes an event to that connection and
// [Handler.Broadcast] to all. Events wait in a bounded queue per connection,
// so a client that reads too slowly holds up no one: its connection is
// closed instead. Go clients receive events through [DialOptions].OnEvent,
// from a queue bounded in bytes ([DialOptions].MaxQueuedEventBytes).
//
// # Topics and brokers
//
// [Handler.Publish] sends an event to an [Address]: a [Topic] that
// connections join with [Peer.Join], a [User] (every connection whose
// identity names that user), one connection ([ToPeer]) or [All]. Across
// replicas it travels through the handler's [Broker]: in-process by default
// ([MemoryBus]), or Redis or NATS with the nested modules
// github.com/rpcws/rpcws/broker/redis and github.com/rpcws/rpcws/broker/nats.
// Delivery is at most once; a possible gap reaches the client as a
// [ResyncEvent] naming the topics concerned.
//
// # History, sessions and presence
//
// With [HandlerOptions].History, a broker that keeps history
// ([HistoryBroker], [SessionBroker]) gives every event published to a topic
// an epoch and an offset, and every connection a session (its first frame,
// [SessionEvent]): a client that reconnects within the recovery window and
// sends [RecoverMethod] first gets its topics back and the events it
// missed, in order and exactly once, or a [ResyncEvent] naming what could
// not be recovered (PROTOCOL.md, "Sessions and recovery"). The Go client
// does all of it by itself with [DialOptions].Reconnect, as the JS client
// does with reconnect: true; see docs/reconnect.md. With
// [HandlerOptions].Presence, [Handler.Presence] lists the connections in a
// topic on every replica; [Handler.History] reads a topic's last events.
// See docs/topics-and-brokers.md.
//
// # Limits and logs
//
// The handler caps requests in flight per connection (and stops reading at
// the cap), frame size, connections, queued events and the time a write may
// take; it pings idle connections, and [Handler.Shutdown] drains gracefully.
// Zero in an options field means the documented default, a negative value
// none. It logs to [HandlerOptions].Logger, or slog's default logger: Debug
// for what is routine, Warn for a client's fault, Error for what an operator
// must act on. See docs/production.md in the repository.
//
// A server connection's replies and events that complete while its outbox
// writes leave together in its next send: many calls on one connection
// cost far fewer system calls. One address that opens many connections
// gets its share of the server (HandlerOptions.MaxInFlightPerClient): a
// client that floods is slowed, not its neighbours.
package rpcws
