package codec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// fakeServer is the far end of a pipe, driven by the test frame by frame.
type fakeServer struct {
	t    *testing.T
	conn codec.Conn
}

type request struct {
	ID   json.RawMessage `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// next reads the next request the client sent.
func (s fakeServer) next() request {
	s.t.Helper()
	frame, err := s.conn.ReadFrame(context.Background(), nil)
	if err != nil {
		s.t.Fatalf("reading a request: %v", err)
	}
	var r request
	if err := json.Unmarshal(frame, &r); err != nil {
		s.t.Fatalf("request %s: %v", frame, err)
	}
	return r
}

func (s fakeServer) send(format string, args ...any) {
	s.t.Helper()
	if err := s.conn.WriteFrame(context.Background(), fmt.Appendf(nil, format, args...)); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

func (s fakeServer) reply(r request, data string) {
	s.send(`{"id":%s,"type":%q,"data":%s}`, r.ID, r.Type+".response", data)
}

// newClient returns a stock rpc.Client over a codec and the fake server at
// the pipe's other end.
func newClient(t *testing.T, opts *codec.ClientOptions) (*rpc.Client, *codec.ClientCodec, fakeServer) {
	serverEnd, clientEnd := codec.Pipe()
	cc := codec.NewClientCodec(clientEnd, opts)
	return rpc.NewClientWithCodec(cc), cc, fakeServer{t, serverEnd}
}

// The lesson's exercise: five concurrent requests whose replies arrive out
// of order are all matched; the server holds one for 15 s, the client times
// it out at 10 s, and the other four resolve.
func TestLessonExercise(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, cc, srv := newClient(t, nil) // default timeout: 10 s
		defer client.Close()
		start := time.Now()
		calls := make([]*rpc.Call, 5)
		replies := make([]int, 5)
		for i := range calls {
			calls[i] = client.Go("Demo.Echo", i, &replies[i], nil)
		}
		reqs := make(map[string]request)
		for range calls {
			r := srv.next()
			reqs[string(r.Data)] = r
		}
		for _, i := range []string{"3", "1", "4", "0"} { // out of order; 2 is held
			srv.reply(reqs[i], i)
		}
		for _, i := range []int{0, 1, 3, 4} {
			<-calls[i].Done
			if calls[i].Error != nil || replies[i] != i {
				t.Errorf("call %d: got %d, %v; want %d, nil", i, replies[i], calls[i].Error, i)
			}
		}
		<-calls[2].Done
		if got := time.Since(start); got != codec.DefaultCallTimeout {
			t.Errorf("held call ended after %v, want %v", got, codec.DefaultCallTimeout)
		}
		if err := calls[2].Error; err == nil || err.Error() != "timeout: demo.echo" {
			t.Errorf("held call: got %v, want timeout: demo.echo", err)
		}
		time.Sleep(5 * time.Second) // the server answers at 15 s
		srv.reply(reqs["2"], "2")
		synctest.Wait()
		if replies[2] != 0 {
			t.Errorf("a late reply was written into the call's reply: %d", replies[2])
		}
		if got := cc.Stats().LateReplies; got != 1 {
			t.Errorf("late replies: got %d, want 1", got)
		}
	})
}

// The timeout holds for the stock Call exactly, and a late reply harms
// nothing: the next call on the connection works.
func TestTimeoutExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, cc, srv := newClient(t, &codec.ClientOptions{Timeout: 3 * time.Second})
		defer client.Close()
		call := client.Go("User.Get", "x", new(string), nil)
		r := srv.next()
		time.Sleep(3*time.Second - time.Nanosecond)
		synctest.Wait()
		select {
		case <-call.Done:
			t.Fatal("the call ended before its timeout")
		default:
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		select {
		case <-call.Done:
		default:
			t.Fatal("the call did not end at its timeout")
		}
		if codec.ErrorCode(call.Error) != codec.CodeTimeout {
			t.Fatalf("got %v, want a timeout", call.Error)
		}
		srv.reply(r, `"late"`)
		next := client.Go("User.Get", "y", new(string), nil)
		srv.reply(srv.next(), `"on time"`)
		<-next.Done
		if next.Error != nil || *next.Reply.(*string) != "on time" {
			t.Fatalf("next call: got %q, %v", *next.Reply.(*string), next.Error)
		}
		if got := cc.Stats().LateReplies; got != 1 {
			t.Fatalf("late replies: got %d, want 1", got)
		}
	})
}

// A negative timeout disables it.
func TestNoTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, _, srv := newClient(t, &codec.ClientOptions{Timeout: -1})
		call := client.Go("User.Get", "x", new(string), nil)
		srv.next()
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		select {
		case <-call.Done:
			t.Fatal("the call ended without a timeout")
		default:
		}
		client.Close()
		<-call.Done
	})
}

// When the connection closes, every pending call fails at once, the stock
// ones and those of Call alike; none waits for its timeout.
func TestDisconnectFailsPendingAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, cc, srv := newClient(t, nil)
		defer client.Close()
		start := time.Now()
		stock := client.Go("User.Get", "x", new(string), nil)
		direct := make(chan error, 1)
		go func() { direct <- cc.Call(context.Background(), "User.Get", "y", new(string)) }()
		srv.next()
		srv.next()
		srv.conn.Close()
		<-stock.Done
		err := <-direct
		if time.Since(start) != 0 {
			t.Errorf("calls failed after %v, want at once", time.Since(start))
		}
		for _, err := range []error{stock.Error, err} {
			if !errors.Is(err, codec.ErrDisconnected) {
				t.Errorf("got %v, want Disconnected", err)
			}
		}
		if err := client.Call("User.Get", "z", new(string)); !errors.Is(err, rpc.ErrShutdown) {
			t.Errorf("call after the disconnect: got %v, want rpc.ErrShutdown", err)
		}
	})
}

// Call returns when its context ends; the reply that comes later is dropped.
func TestCallContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, cc, srv := newClient(t, nil)
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		reply := "untouched"
		done := make(chan error, 1)
		go func() { done <- cc.Call(ctx, "User.Get", "x", &reply) }()
		r := srv.next()
		err := <-done
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
		srv.reply(r, `"late"`)
		synctest.Wait()
		if reply != "untouched" {
			t.Fatalf("reply: got %q after the call ended", reply)
		}
		if got := cc.Stats().LateReplies; got != 1 {
			t.Fatalf("late replies: got %d, want 1", got)
		}
	})
}

// The client's timeout and a context's deadline are one verdict: both
// errors match ErrTimeout and context.DeadlineExceeded, with code Timeout and
// the lesson's text. (They were told apart while a timeout could come in a
// context value.)
func TestCallTimeoutAndDeadlineAlike(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, cc, srv := newClient(t, &codec.ClientOptions{Timeout: time.Second})
		defer cc.Close()
		go drain(srv.conn)
		err := cc.Call(context.Background(), "User.Get", "x", nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second/2)
		defer cancel()
		err2 := cc.Call(ctx, "User.Get", "x", nil)
		for _, err := range []error{err, err2} {
			if !errors.Is(err, codec.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) ||
				codec.ErrorCode(err) != codec.CodeTimeout || err.Error() != "timeout: user.get" {
				t.Errorf("got %v, want a timeout matching ErrTimeout and context.DeadlineExceeded", err)
			}
		}
	})
}

// A context's deadline bounds a call in place of the client's timeout,
// whether it is later or earlier. Each call ends exactly when its own limit
// passes, with a timeout.
func TestCallDeadlines(t *testing.T) {
	const clientTimeout = 300 * time.Millisecond
	tests := []struct {
		name     string
		deadline time.Duration // of the call's context; 0: none
		want     time.Duration // when the call ends
	}{
		{name: "client's timeout", want: clientTimeout},
		{name: "later deadline", deadline: 3 * time.Second, want: 3 * time.Second},
		{name: "earlier deadline", deadline: 100 * time.Millisecond, want: 100 * time.Millisecond},
		{name: "deadline equal to the client's timeout", deadline: clientTimeout, want: clientTimeout},
		{name: "far deadline", deadline: time.Hour, want: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, cc, srv := newClient(t, &codec.ClientOptions{Timeout: clientTimeout})
				defer cc.Close()
				go drain(srv.conn)
				ctx := context.Background()
				if tt.deadline != 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				start := time.Now()
				err := cc.Call(ctx, "User.Get", "x", nil)
				if got := time.Since(start); got != tt.want {
					t.Errorf("the call ended after %v, want %v", got, tt.want)
				}
				if !errors.Is(err, codec.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("got %v, want a timeout", err)
				}
			})
		})
	}
}

// A client without a timeout leaves a call without a deadline waiting for
// its reply however long that takes.
func TestCallWithoutTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, cc, srv := newClient(t, &codec.ClientOptions{Timeout: -1})
		defer cc.Close()
		done := make(chan error, 1)
		var reply string
		go func() { done <- cc.Call(context.Background(), "User.Get", "x", &reply) }()
		r := srv.next()
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("the call ended without a timeout: %v", err)
		default:
		}
		srv.reply(r, `"at last"`)
		if err := <-done; err != nil || reply != "at last" {
			t.Fatalf("got %q, %v; want at last", reply, err)
		}
	})
}

// Calls with deadlines of their own, sent in any order and mixed with calls
// of the client's timeout and of the stock client, each end exactly at
// their own time; those answered in time are not timed out.
func TestCallTimeoutsMixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const clientTimeout = 4500 * time.Millisecond
		client, cc, srv := newClient(t, &codec.ClientOptions{Timeout: clientTimeout})
		defer client.Close()
		answered := make(chan request, 100)
		go collectAnswered(srv, answered)
		start := time.Now()
		type result struct {
			timeout, took time.Duration
			err           error
		}
		results := make(chan result, 100)
		timeouts := []time.Duration{7, 1, 5, 2, 9, 3, 8, 4, 6, 2, 1, 7}
		for i, s := range timeouts {
			d := s * time.Second
			go func() {
				data := "x"
				if i%4 == 3 {
					data = "answer"
				}
				ctx, cancel := context.WithTimeout(context.Background(), d)
				defer cancel()
				err := cc.Call(ctx, "User.Get", data, nil)
				results <- result{d, time.Since(start), err}
			}()
		}
		stock := make([]*rpc.Call, 3)
		for i := range stock {
			stock[i] = client.Go("User.Get", "x", nil, nil)
		}
		synctest.Wait()
		for len(answered) > 0 {
			srv.reply(<-answered, "null")
		}
		for range timeouts {
			r := <-results
			switch {
			case r.err == nil && r.took != 0:
				t.Errorf("an answered call ended after %v", r.took)
			case r.err != nil && (r.took != r.timeout || !errors.Is(r.err, codec.ErrTimeout)):
				t.Errorf("a call with timeout %v ended after %v with %v", r.timeout, r.took, r.err)
			}
		}
		for _, call := range stock {
			<-call.Done
			if codec.ErrorCode(call.Error) != codec.CodeTimeout {
				t.Errorf("stock call: got %v, want a timeout", call.Error)
			}
		}
		if got := time.Since(start); got != 9*time.Second {
			t.Errorf("last call ended after %v, want 9s", got)
		}
	})
}

// collectAnswered reads every request until the connection closes, and
// sends those whose data is "answer" on answered, for the test to answer.
func collectAnswered(srv fakeServer, answered chan<- request) {
	for {
		frame, err := srv.conn.ReadFrame(context.Background(), nil)
		if err != nil {
			return
		}
		var r request
		json.Unmarshal(frame, &r)
		if string(r.Data) == `"answer"` {
			answered <- r
		}
	}
}

// drain reads and drops every frame from conn until it closes: a server that
// never answers.
func drain(conn codec.Conn) {
	for {
		if _, err := conn.ReadFrame(context.Background(), nil); err != nil {
			return
		}
	}
}

// Cancelling calls races with their replies: a call that returned an error
// never has its reply written afterwards. Run with -race.
func TestCancelRacesReply(t *testing.T) {
	t.Parallel()
	_, cc, srv := newClient(t, nil)
	defer cc.Close()
	go func() { // an echo server
		for {
			frame, err := srv.conn.ReadFrame(context.Background(), nil)
			if err != nil {
				return
			}
			var r request
			json.Unmarshal(frame, &r)
			srv.conn.WriteFrame(context.Background(), fmt.Appendf(nil, `{"id":%s,"type":%q,"data":%s}`, r.ID, r.Type+".response", r.Data))
		}
	}()
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			reply := -1
			go cancel()
			err := cc.Call(ctx, "X.Echo", i, &reply)
			switch {
			case err == nil && reply != i:
				t.Errorf("call %d: got %d", i, reply)
			case err != nil && reply != -1:
				t.Errorf("call %d failed (%v) but its reply was written", i, err)
			case err != nil && !errors.Is(err, context.Canceled):
				t.Errorf("call %d: got %v, want context.Canceled", i, err)
			}
		})
	}
	wg.Wait()
}

// Events reach OnEvent in order, one call at a time, and a slow OnEvent
// does not hold up replies.
func TestEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []int
		var running atomic.Int32
		unblock := make(chan struct{})
		opts := &codec.ClientOptions{OnEvent: func(typ string, data json.RawMessage) {
			if running.Add(1) != 1 {
				t.Error("OnEvent called concurrently")
			}
			defer running.Add(-1)
			var n int
			json.Unmarshal(data, &n)
			if n == 1 {
				<-unblock
			}
			got = append(got, n)
		}}
		client, _, srv := newClient(t, opts)
		defer client.Close()
		for n := 1; n <= 5; n++ {
			srv.send(`{"type":"tick","data":%d}`, n)
		}
		call := client.Go("User.Get", "x", new(string), nil)
		srv.reply(srv.next(), `"reply"`)
		<-call.Done // while OnEvent is blocked on the first event
		if call.Error != nil {
			t.Fatal(call.Error)
		}
		close(unblock)
		synctest.Wait()
		if fmt.Sprint(got) != "[1 2 3 4 5]" {
			t.Fatalf("events: got %v, want [1 2 3 4 5]", got)
		}
	})
}

// Events beyond MaxQueuedEventBytes are dropped and counted: a hostile
// server that floods a client whose OnEvent is slow pins at most the budget
// plus one frame. The budget counts bytes, not events: small events fit by
// the thousand where large ones fit by the few.
func TestEventQueueBytes(t *testing.T) {
	const kb = 1 << 10
	tests := []struct {
		name     string
		budget   int // MaxQueuedEventBytes
		size     int // bytes of data per event
		sent     int
		min, max int // events that fit in the budget while OnEvent holds the first
	}{
		// 1 MiB by default: of 1 MB events, one waits.
		{name: "default, 1 MB events", size: 1_000_000, sent: 20, min: 1, max: 1},
		{name: "256 KiB, 60 KB events", budget: 256 * kb, size: 60_000, sent: 100, min: 4, max: 4},
		// Empty events cost something too: a flood of them is bounded.
		{name: "64 KiB, empty events", budget: 64 * kb, size: 0, sent: 5000, min: 64 * kb / 256, max: 64 * kb / 16},
		// One event always fits an empty queue, whatever its size.
		{name: "100 B, 10 KB events", budget: 100, size: 10_000, sent: 10, min: 1, max: 1},
		{name: "no cap", budget: -1, size: 10_000, sent: 200, min: 199, max: 199},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				unblock := make(chan struct{})
				var delivered atomic.Int32
				opts := &codec.ClientOptions{MaxQueuedEventBytes: tt.budget, OnEvent: func(_ string, data json.RawMessage) {
					<-unblock
					if len(data) != tt.size+2 {
						t.Errorf("event of %d bytes, want %d", len(data), tt.size+2)
					}
					delivered.Add(1)
				}}
				client, cc, srv := newClient(t, opts)
				defer client.Close()
				frame := fmt.Appendf(nil, `{"type":"tick","data":"%s"}`, strings.Repeat("x", tt.size))
				srv.conn.WriteFrame(context.Background(), frame)
				synctest.Wait() // OnEvent holds the first
				for range tt.sent - 1 {
					srv.conn.WriteFrame(context.Background(), frame)
				}
				synctest.Wait() // the client has read every event
				close(unblock)
				synctest.Wait()
				// One was in OnEvent, some waited, the rest were dropped.
				queued := int(delivered.Load()) - 1
				if queued < tt.min || queued > tt.max {
					t.Errorf("queued: got %d, want %d to %d", queued, tt.min, tt.max)
				}
				if got, want := cc.Stats().DroppedEvents, uint64(tt.sent-1-queued); got != want {
					t.Errorf("dropped: got %d, want %d", got, want)
				}
			})
		})
	}
}

// Error frames become *Error values, with codes of any shape a foreign
// server sends; frames that are not messages are counted and dropped.
func TestErrorRepliesAndBadFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, cc, srv := newClient(t, nil)
		defer cc.Close()
		tests := []struct {
			reply string
			want  codec.Error
		}{
			{`{"id":%s,"type":"error","code":"NotFound","message":"no"}`, codec.Error{Code: "NotFound", Message: "no"}},
			{`{"id":%s,"type":"error","code":-32601,"message":"numeric"}`, codec.Error{Code: "-32601", Message: "numeric"}},
			{`{"id":%s,"type":"error"}`, codec.Error{Code: codec.CodeServerError}},
			{`{"type":"error","message":"no id"} {"id":%s,"type":"error","code":"Late","message":""}`, codec.Error{}},
		}
		for _, tt := range tests {
			done := make(chan error, 1)
			go func() { done <- cc.Call(context.Background(), "X.Y", nil, nil) }()
			r := srv.next()
			srv.send(tt.reply, r.ID)
			if tt.want.Code == "" { // not a message: the call stays pending
				synctest.Wait()
				select {
				case err := <-done:
					t.Fatalf("%s: call ended with %v", tt.reply, err)
				default:
				}
				srv.reply(r, "null")
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				continue
			}
			var e *codec.Error
			if err := <-done; !errors.As(err, &e) || *e != tt.want {
				t.Errorf("%s: got %v, want %+v", tt.reply, err, tt.want)
			}
		}
		srv.send(`{"type":"error","code":"Oops","message":"no id"}`)
		srv.send(`garbage`)
		synctest.Wait()
		if got := cc.Stats().BadFrames; got != 2 {
			t.Errorf("bad frames: got %d, want 2", got)
		}
	})
}

// A reply that breaks the protocol fails its call with BadReply, never
// with success, and is counted; the connection serves on. (A reply whose
// type was a number or another request's was taken as success, with an
// empty result.)
func TestMalformedReplies(t *testing.T) {
	tests := []struct {
		name  string
		reply string // %[1]s is the request's id
	}{
		{"type is a number", `{"id":%[1]s,"type":5}`},
		{"type missing", `{"id":%[1]s,"data":7}`},
		{"type null", `{"id":%[1]s,"type":null,"data":7}`},
		{"another request's type", `{"id":%[1]s,"type":"user.put.response","data":7}`},
		{"type in another case", `{"id":%[1]s,"type":"User.Get.response","data":7}`},
		{"request's type, no suffix", `{"id":%[1]s,"type":"user.get","data":7}`},
		{"an event's shape", `{"id":%[1]s,"type":"user.get.responsex","data":7}`},
		{"error code an object", `{"id":%[1]s,"type":"error","code":{"x":1},"message":"m"}`},
		{"error code a bool", `{"id":%[1]s,"type":"error","code":true,"message":"m"}`},
		{"error message a number", `{"id":%[1]s,"type":"error","code":"NotFound","message":5}`},
		{"error with data, message an array", `{"id":%[1]s,"type":"error","data":{},"code":"X","message":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client, cc, srv := newClient(t, nil)
				defer client.Close()
				reply := 0
				done := make(chan error, 1)
				go func() { done <- cc.Call(context.Background(), "User.Get", "x", &reply) }()
				srv.send(tt.reply, srv.next().ID)
				err := <-done
				if !errors.Is(err, codec.ErrBadReply) || codec.ErrorCode(err) != codec.CodeBadReply || reply != 0 {
					t.Errorf("got %d, %v; want a BadReply error", reply, err)
				}
				stock := client.Go("User.Get", "x", &reply, nil)
				srv.send(tt.reply, srv.next().ID)
				if err := (<-stock.Done).Error; codec.ErrorCode(err) != codec.CodeBadReply {
					t.Errorf("net/rpc's client: got %v, want a BadReply error", err)
				}
				if got := cc.Stats().BadReplies; got != 2 {
					t.Errorf("bad replies: got %d, want 2", got)
				}
				go func() { done <- cc.Call(context.Background(), "User.Get", "x", &reply) }()
				srv.reply(srv.next(), "42")
				if err := <-done; err != nil || reply != 42 {
					t.Errorf("the next call: got %d, %v; want 42, nil", reply, err)
				}
			})
		})
	}
}

// A reply whose id is not a string names no call of this client: it is
// counted, and the call waits for its own reply.
func TestReplyIDNotAString(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, cc, srv := newClient(t, nil)
		defer cc.Close()
		var reply int
		done := make(chan error, 1)
		go func() { done <- cc.Call(context.Background(), "User.Get", "x", &reply) }()
		r := srv.next()
		srv.send(`{"id":5,"type":"user.get.response","data":1}`)
		srv.send(`{"id":{"id":%s},"type":"user.get.response","data":2}`, r.ID)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("the call ended: %v", err)
		default:
		}
		srv.reply(r, "3")
		if err := <-done; err != nil || reply != 3 {
			t.Fatalf("got %d, %v; want 3, nil", reply, err)
		}
		if got := cc.Stats(); got.BadReplies != 2 || got.LateReplies != 0 {
			t.Fatalf("stats: got %+v, want 2 bad replies", got)
		}
	})
}
