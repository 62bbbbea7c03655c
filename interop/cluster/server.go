package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/rpc"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	natsbroker "github.com/rpcws/rpcws/broker/nats"
	redisbroker "github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/codec"
	jsclient "github.com/rpcws/rpcws/interop/js"
	"github.com/rpcws/rpcws/interop/refserver"
	"github.com/rpcws/rpcws/rpcws"
)

// options configures one replica.
type options struct {
	Broker         rpcws.Broker // nil: in-process
	Logger         *slog.Logger
	OriginPatterns []string
	PingInterval   time.Duration
	History        *rpcws.HistoryOptions  // nil: no history, no sessions
	Presence       *rpcws.PresenceOptions // nil: topic.presence fails
}

// server is one replica of the cluster server: the reference services, the
// cluster services, the demo page.
type server struct {
	mux *http.ServeMux
	rpc *rpcws.Handler
}

// newBroker returns the broker that -broker names: nil for "" (in-process),
// Redis for redis://, NATS for nats://.
func newBroker(url string) (rpcws.Broker, error) {
	switch {
	case url == "":
		return nil, nil
	case strings.HasPrefix(url, "redis://"), strings.HasPrefix(url, "rediss://"):
		return redisbroker.New(url)
	case strings.HasPrefix(url, "nats://"), strings.HasPrefix(url, "tls://"):
		return natsbroker.New(url)
	}
	return nil, fmt.Errorf("-broker %q: want empty, redis://HOST:PORT or nats://HOST:PORT", url)
}

func newServer(opts options) *server {
	s := &server{}
	srv := rpc.NewServer()
	must(srv.RegisterName("User", &users{Users: refserver.NewUsers(), s: s}))
	must(srv.RegisterName("Demo", &demo{s: s}))
	must(srv.RegisterName("Topic", &topics{s: s}))
	s.rpc = rpcws.NewHandler(srv, &rpcws.HandlerOptions{
		AcceptOptions: &websocket.AcceptOptions{OriginPatterns: opts.OriginPatterns, Subprotocols: []string{"rpcws"}},
		Logger:        opts.Logger,
		PingInterval:  opts.PingInterval,
		Broker:        opts.Broker,
		Authorize:     userFromQuery,
		History:       opts.History,
		Presence:      opts.Presence,
	})
	s.mux = http.NewServeMux()
	s.mux.Handle("/rpc", s.rpc)
	s.mux.Handle("/chat/", http.StripPrefix("/chat/", http.FileServerFS(chatFiles())))
	s.mux.Handle("/", http.FileServerFS(jsclient.Files))
	return s
}

// chat holds the chat page, served at /chat/: a room that survives the
// restart of the replica the page is on.
//
//go:embed chat
var chat embed.FS

// chatFiles is the chat page's files at the root.
func chatFiles() fs.FS {
	sub, err := fs.Sub(chat, "chat")
	must(err)
	return sub
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Shutdown shuts the replica's WebSocket endpoint down, and its broker.
func (s *server) Shutdown(ctx context.Context) error { return s.rpc.Shutdown(ctx) }

// userFromQuery takes the connection's identity from the "user" query
// parameter: a stand-in for real authentication, which would check a token
// or a cookie here. Without it the connection has no identity; a parameter
// that is not a user name is refused.
func userFromQuery(r *http.Request) (any, error) {
	u := r.URL.Query().Get("user")
	if u == "" {
		return nil, nil
	}
	if !utf8.ValidString(u) || utf8.RuneCountInString(u) > rpcws.MaxNameLen {
		return nil, rpcws.ErrBadName
	}
	return u, nil
}

// name decodes a topic or user name: a JSON string of 1 to 128 code points.
// Anything else is InvalidParams.
func name(field string, raw json.RawMessage) (string, error) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil ||
		s == "" || utf8.RuneCountInString(s) > rpcws.MaxNameLen {
		return "", &codec.Error{Code: codec.CodeInvalidParams, Message: field + " must be a string of 1 to 128 characters"}
	}
	return s, nil
}

// orNull is raw, or JSON null when it is absent.
func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// topics serves topic.join, topic.leave and topic.publish.
type topics struct{ s *server }

// TopicArgs is the data of topic.join and topic.leave.
type TopicArgs struct {
	Topic json.RawMessage `json:"topic"`
	rpcws.Caller
}

// TopicReply is their result, and topic.publish's.
type TopicReply struct {
	Topic string `json:"topic"`
}

// Join makes the connection a member of the topic, on every replica.
func (t *topics) Join(args *TopicArgs, reply *TopicReply) error {
	topic, err := name("topic", args.Topic)
	if err != nil {
		return err
	}
	p := args.Peer()
	if err := p.Join(p.Context(), topic); err != nil {
		return err
	}
	reply.Topic = topic
	return nil
}

// Leave takes the connection out of the topic.
func (t *topics) Leave(args *TopicArgs, reply *TopicReply) error {
	topic, err := name("topic", args.Topic)
	if err != nil {
		return err
	}
	p := args.Peer()
	if err := p.Leave(p.Context(), topic); err != nil {
		return err
	}
	reply.Topic = topic
	return nil
}

// PublishArgs is the data of topic.publish.
type PublishArgs struct {
	Topic json.RawMessage `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// TopicMessage is the data of the topic.message event.
type TopicMessage struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// Publish sends topic.message to every member of the topic, on every
// replica.
func (t *topics) Publish(args *PublishArgs, reply *TopicReply) error {
	topic, err := name("topic", args.Topic)
	if err != nil {
		return err
	}
	msg := TopicMessage{Topic: topic, Data: orNull(args.Data)}
	if err := t.s.rpc.Publish(context.Background(), rpcws.Topic(topic), "topic.message", msg); err != nil {
		return err
	}
	reply.Topic = topic
	return nil
}

// users is the reference server's user service plus user.notify.
type users struct {
	*refserver.Users
	s *server
}

// NotifyArgs is the data of user.notify.
type NotifyArgs struct {
	User json.RawMessage `json:"user"`
	Data json.RawMessage `json:"data"`
}

// NotifyReply is its result.
type NotifyReply struct {
	User string `json:"user"`
}

// Notify sends user.notice to every connection of the user, on every
// replica.
func (u *users) Notify(args *NotifyArgs, reply *NotifyReply) error {
	user, err := name("user", args.User)
	if err != nil {
		return err
	}
	if err := u.s.rpc.Publish(context.Background(), rpcws.User(user), "user.notice", orNull(args.Data)); err != nil {
		return err
	}
	reply.User = user
	return nil
}

// demo is the reference server's demo service plus demo.broadcast.
type demo struct {
	refserver.Demo
	s *server
}

// BroadcastArgs is the data of demo.broadcast.
type BroadcastArgs struct {
	Data json.RawMessage `json:"data"`
}

// Broadcast sends demo.broadcast to every connection on every replica.
func (d *demo) Broadcast(args *BroadcastArgs, reply *struct{}) error {
	return d.s.rpc.Publish(context.Background(), rpcws.All(), "demo.broadcast", orNull(args.Data))
}
