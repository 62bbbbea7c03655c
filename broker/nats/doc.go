// Package nats is an [rpcws.Broker] on NATS core pub/sub, through
// github.com/nats-io/nats.go: replicas of an rpcws service that share a
// NATS server (or cluster) reach each other's connections with
// [rpcws.Handler.Publish]. With JetStream (nats-server -js) it also keeps
// topic history, sessions and presence ([rpcws.HistoryBroker],
// [rpcws.SessionBroker], [rpcws.PresenceBroker]).
//
//	b, err := nats.New("nats://127.0.0.1:4222")
//	h := rpcws.NewHandler(srv, &rpcws.HandlerOptions{Broker: b})
//
// All subscriptions of a broker feed one bounded channel, read by one
// goroutine that hands every message to the handler at once (the handler
// never waits on a client). When that channel is full, nats.go drops the
// message and reports a slow consumer; the broker reports the gap on that
// subject ([rpcws.BrokerReceiver.Lost]) and its members receive
// rpcws.resync. When the connection drops, nats.go reconnects and
// subscribes again by itself; once it is back, every connection receives
// rpcws.resync. A connection that goes silent without closing is found by
// nats.go's own pings (nats.PingInterval, nats.MaxPingsOutstanding) and
// handled the same way. The handler's subjects contain no wildcards: topic
// names are escaped.
//
// # History
//
// Events published with history are stored in one stream, RPCWS_HISTORY,
// an event of subject S on rpcwsh.S (S needs two tokens or more, as the
// handler's rpcws.t.<topic> has), with its position in headers. The
// stream republishes every event it stored to S itself, headers included:
// subscribers receive it on their core subscription to S
// and the broker hands it to [rpcws.HistoryReceiver.ReceiveAt]. Only
// stored events are republished, so a publish that lost its race for an
// offset reaches no one (a core subscriber to rpcwsh.S would receive it:
// a JetStream publish is a core publish first); plain publishes to S never
// touch the stream. NATS 2.9 may republish two events stored at
// once from two connections the wrong way round; each names the stream
// sequence of its topic's event before it, and the broker holds an event
// whose predecessor has not arrived (at most 200 ms and 1,024 events)
// and hands events to the handler in offset order. One that never comes
// is reported lost ([rpcws.BrokerReceiver.Lost]), as is one that comes
// after a later one was delivered.
//
// JetStream numbers a stream, not a subject. Each topic gets offsets 1, 2,
// 3, … with no gap across every node by optimistic concurrency: an event
// is published with the offset after the topic's last event and, as a
// condition the server checks, that event's stream sequence
// (Nats-Expected-Last-Subject-Sequence); when another node stored one
// first, the server refuses, and the publisher reads the new last event
// (a direct get) and tries again, at most 64 times within its context.
// The cost, measured by BenchmarkPublish on one busy 2-core machine: one
// round trip per publish while one node publishes to a topic (it
// remembers the last event of the topics it published to or received, and
// its own publishers to one topic take turns), as fast as a bare
// JetStream publish (0.2 to 0.5 ms each; a plain publish queues in 0.3
// µs); with four nodes racing for one topic, 2.8 messages per publish
// (about one lost race each) and 2,100 to 3,700 publishes/s in all,
// against 6,500 to 9,000/s when each has its own topic.
//
// A topic's position is its last event, kept apart from the events'
// TTL: the stream's MaxAge is max(TTL, 24h) + 1h, and an event past the
// TTL of its policy (a header) is left out when reading; likewise its
// policy's size (the stream keeps, per subject, the largest size any node
// asked). The storage is then up to that many events per topic published
// within MaxAge. A topic whose numbering has not started has its epoch in
// the key-value bucket rpcws_epochs, made once by create-if-absent (the
// same on every node), never refreshed, and expiring 24h after it was
// made: before any event numbered in it can leave the stream, whose MaxAge
// is longer; so an epoch is never used again once its offsets are lost. A
// server restarted without its store, or
// a stream deleted and made again, gives new epochs. Reading history
// takes at most the limit asked and the topic's size: up to 8 events
// walking back from the last, one direct get each (0.2 ms), more through
// an ephemeral consumer of the topic's events, made, read in one batch and
// deleted (2 ms for 100 events; one by one, 18 ms).
//
// # Sessions and presence
//
// Sessions live in the bucket rpcws_sessions under the SHA-256 of their
// id (the secret never appears in a subject); presence in rpcws_presence,
// as topic.peer (each base64url). NATS 2.9 has no per-key TTL: a bucket's
// MaxAge is the longest ttl any node asked, and each value carries its own
// ttl, checked against the time the server stored it. TakeSession reads
// the session and purges it on the condition that it is still the
// revision read, so one taker of many wins; TouchSessions reads the
// sessions (32 at once) and puts them back on the same condition, in
// acknowledged batches of asynchronous publishes, so a session taken
// meanwhile stays taken (1,000 sessions: 60 ms). AddPresence and RemovePresence publish in
// acknowledged batches of 256 (1,000 entries: 17 ms); Presence watches the
// topic's keys up to their current values, at most [MaxPresence] (1,000
// entries: 7 ms).
//
// The stream and buckets are made on first use, with one replica and file
// storage; every node of a service must share them. To replicate them in
// a NATS cluster, make them beforehand with the same configuration and
// more replicas: the broker takes them as they are, raising only their
// limits. (Direct gets may then be answered by a replica that is a little
// behind: a publish stays gap-free, as the leader checks its condition,
// but a read of history may miss the very last events.)
package nats
