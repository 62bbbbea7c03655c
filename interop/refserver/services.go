package refserver

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rpcws/rpcws/codec"
	"github.com/rpcws/rpcws/rpcws"
)

// User is the record of the user service.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserID is the argument of User.Get.
type UserID struct {
	ID string `json:"id"`
}

// Users is the user service: user.get and user.save, in memory.
type Users struct {
	mu    sync.Mutex
	users map[string]User
}

// NewUsers returns the user service with one user stored, "123".
func NewUsers() *Users {
	return &Users{users: map[string]User{"123": {ID: "123", Name: "Ada Lovelace"}}}
}

// Get returns the stored user; an unknown id fails with code NotFound.
func (s *Users) Get(args *UserID, reply *User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[args.ID]
	if !ok {
		return &codec.Error{Code: "NotFound", Message: fmt.Sprintf("no user with id %q", args.ID)}
	}
	*reply = u
	return nil
}

// Save stores a user and returns it as stored.
func (s *Users) Save(args *User, reply *User) error {
	if args.ID == "" {
		return invalidParams("id is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[args.ID] = *args
	*reply = *args
	return nil
}

// Demo is the demo service: echo, sleep, fail and ticks.
type Demo struct{}

// Echo returns its data unchanged.
func (Demo) Echo(args json.RawMessage, reply *json.RawMessage) error {
	*reply = args
	return nil
}

// SleepArgs is the argument and result of Demo.Sleep.
type SleepArgs struct {
	Ms int `json:"ms"`
	rpcws.Caller
}

// SleepReply is the result of Demo.Sleep.
type SleepReply struct {
	Ms int `json:"ms"`
}

// maxSleep bounds demo.sleep and the interval of demo.ticks.
const maxSleep = 60000

// Sleep replies after args.Ms milliseconds. When the connection closes first
// it stops, and fails: work cut short never reads as done.
func (Demo) Sleep(args *SleepArgs, reply *SleepReply) error {
	if args.Ms < 0 || args.Ms > maxSleep {
		return invalidParams(fmt.Sprintf("ms must be within 0..%d, got %d", maxSleep, args.Ms))
	}
	t := time.NewTimer(time.Duration(args.Ms) * time.Millisecond)
	defer t.Stop()
	var gone <-chan struct{}
	if p := args.Peer(); p != nil {
		gone = p.Context().Done()
	}
	select {
	case <-t.C:
	case <-gone:
		return &codec.Error{Code: codec.CodeUnavailable, Message: "the connection closed before the sleep ended"}
	}
	reply.Ms = args.Ms
	return nil
}

// FailArgs is the argument of Demo.Fail.
type FailArgs struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Fail fails with the code and message it is given.
func (Demo) Fail(args *FailArgs, reply *struct{}) error {
	if !codec.ValidCode(args.Code) {
		return invalidParams(fmt.Sprintf("code must be an UpperCamelCase word, got %q", args.Code))
	}
	return &codec.Error{Code: args.Code, Message: args.Message}
}

// TicksArgs is the argument of Demo.Ticks.
type TicksArgs struct {
	Count      int `json:"count"`
	IntervalMs int `json:"intervalMs"`
	rpcws.Caller
}

// TicksReply is the result of Demo.Ticks.
type TicksReply struct {
	Count int `json:"count"`
}

// Tick is the data of a demo.tick event.
type Tick struct {
	N int `json:"n"`
}

// maxTicks bounds demo.ticks.
const maxTicks = 1000

// Ticks replies {count: N}, then pushes N demo.tick events to the caller,
// the first IntervalMs after the reply and then IntervalMs apart.
func (Demo) Ticks(args *TicksArgs, reply *TicksReply) error {
	if args.Count < 0 || args.Count > maxTicks {
		return invalidParams(fmt.Sprintf("count must be within 0..%d, got %d", maxTicks, args.Count))
	}
	if args.IntervalMs < 0 || args.IntervalMs > maxSleep {
		return invalidParams(fmt.Sprintf("intervalMs must be within 0..%d, got %d", maxSleep, args.IntervalMs))
	}
	reply.Count = args.Count
	peer := args.Peer()
	if peer == nil || args.Count == 0 {
		return nil
	}
	count, interval := args.Count, time.Duration(args.IntervalMs)*time.Millisecond
	args.AfterReply(func() {
		ctx := peer.Context()
		t := time.NewTimer(interval)
		defer t.Stop()
		for n := 1; n <= count; n++ {
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			if peer.Notify(ctx, "demo.tick", Tick{N: n}) != nil {
				return
			}
			t.Reset(interval)
		}
	})
	return nil
}
