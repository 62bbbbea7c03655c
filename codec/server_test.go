package codec_test

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// Svc is a service whose methods the server tests steer.
type Svc struct {
	release chan struct{} // Wait returns when it closes
	started chan int      // Wait announces itself
	ran     chan string   // Note records its argument
}

func (s *Svc) Wait(n int, reply *int) error {
	s.started <- n
	<-s.release
	*reply = n
	return nil
}

func (s *Svc) Plain(_ int, _ *int) error { return errors.New("disk full") }

// Verdict fails with the verdict of a call the method made itself.
func (s *Svc) Verdict(_ int, _ *int) error {
	return fmt.Errorf("calling the store: %w", &codec.Error{Code: codec.CodeDisconnected, Message: "connection closed"})
}

func (s *Svc) Note(text string, _ *struct{}) error {
	s.ran <- text
	return nil
}

// rawClient is the client's end of a pipe to a served codec.
type rawClient struct{ fakeServer }

func serve(t *testing.T, opts *codec.ServerOptions) (*Svc, *codec.ServerCodec, rawClient) {
	svc := &Svc{release: make(chan struct{}), started: make(chan int, 100), ran: make(chan string, 100)}
	srv := rpc.NewServer()
	if err := srv.Register(svc); err != nil {
		t.Fatal(err)
	}
	serverEnd, clientEnd := codec.Pipe()
	sc := codec.NewServerCodec(serverEnd, opts)
	go srv.ServeCodec(sc)
	return svc, sc, rawClient{fakeServer{t, clientEnd}}
}

func (c rawClient) expect(want string) {
	c.t.Helper()
	got, err := c.conn.ReadFrame(context.Background(), nil)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", want, err)
	}
	if string(got) != want {
		c.t.Fatalf("\ngot  %s\nwant %s", got, want)
	}
}

// A plain Go error is a ServerError with its text.
func TestPlainError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, sc, c := serve(t, nil)
		defer sc.Close()
		c.send(`{"id":1,"type":"svc.plain","data":0}`)
		c.expect(`{"id":1,"type":"error","code":"ServerError","message":"disk full"}`)
	})
}

// A client's verdict that a method got from a call of its own is no code a
// server sends: it travels as a plain ServerError, with its text.
func TestClientVerdictIsNoServerCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, sc, c := serve(t, nil)
		defer sc.Close()
		c.send(`{"id":1,"type":"svc.verdict","data":0}`)
		c.expect(`{"id":1,"type":"error","code":"ServerError","message":"calling the store: [Disconnected] connection closed"}`)
	})
}

// Notifications run, and get no reply even when they fail.
func TestNotificationsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc, sc, c := serve(t, nil)
		defer sc.Close()
		c.send(`{"type":"svc.note","data":"one"}`)
		c.send(`{"id":null,"type":"svc.note","data":"two"}`)
		c.send(`{"type":"svc.plain","data":0}`)
		got := map[string]bool{<-svc.ran: true, <-svc.ran: true}
		if !got["one"] || !got["two"] {
			t.Fatalf("notifications ran: got %v, want one and two", got)
		}
		c.send(`{"id":"x","type":"svc.note","data":"three"}`)
		<-svc.ran
		c.expect(`{"id":"x","type":"svc.note.response","data":{}}`)
	})
}

// At MaxInFlight the codec stops reading; one reply frees one place.
func TestMaxInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		adm := codec.NewAdmission(&codec.AdmissionOptions{MaxInFlight: 2})
		svc, sc, c := serve(t, &codec.ServerOptions{Admission: adm})
		defer sc.Close()
		for i := range 3 {
			c.send(`{"id":%d,"type":"svc.wait","data":%d}`, i, i)
		}
		synctest.Wait()
		if got := len(svc.started); got != 2 {
			t.Fatalf("methods running: got %d, want 2", got)
		}
		if got := adm.InFlight(); got != 2 {
			t.Fatalf("InFlight: got %d, want 2", got)
		}
		close(svc.release)
		synctest.Wait()
		if got := len(svc.started); got != 3 {
			t.Fatalf("methods run after the release: got %d, want 3", got)
		}
	})
}

// Drain waits for the requests in flight, answers later ones Unavailable,
// and lets the replies be written.
func TestDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		adm := codec.NewAdmission(nil)
		svc, sc, c := serve(t, &codec.ServerOptions{Admission: adm})
		defer sc.Close()
		c.send(`{"id":1,"type":"svc.wait","data":1}`)
		<-svc.started
		drained := make(chan error, 1)
		go func() { drained <- adm.Drain(context.Background()) }()
		synctest.Wait()
		c.send(`{"id":2,"type":"svc.wait","data":2}`)
		c.expect(`{"id":2,"type":"error","code":"Unavailable","message":"server is shutting down"}`)
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v with a request in flight", err)
		default:
		}
		close(svc.release)
		c.expect(`{"id":1,"type":"svc.wait.response","data":1}`)
		if err := <-drained; err != nil {
			t.Fatal(err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := adm.Drain(ctx); err != nil {
			t.Fatalf("second Drain: %v", err)
		}
	})
}

// Drain gives up when its context ends.
func TestDrainDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		adm := codec.NewAdmission(nil)
		svc, sc, c := serve(t, &codec.ServerOptions{Admission: adm})
		c.send(`{"id":1,"type":"svc.wait","data":1}`)
		<-svc.started
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := adm.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
		close(svc.release)
		sc.Close()
	})
}

// OnCall sees every served request.
func TestOnCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []codec.CallInfo
		svc, sc, c := serve(t, &codec.ServerOptions{OnCall: func(ci codec.CallInfo) {
			mu.Lock()
			got = append(got, ci)
			mu.Unlock()
		}})
		defer sc.Close()
		close(svc.release)
		c.send(`{"id":1,"type":"svc.wait","data":1}`)
		c.expect(`{"id":1,"type":"svc.wait.response","data":1}`)
		c.send(`{"type":"svc.plain","data":1}`)
		c.send(`{"id":2,"type":"svc.nope"}`)
		c.expect(`{"id":2,"type":"error","code":"MethodNotFound","message":"method not found: svc.nope"}`)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		want := []codec.CallInfo{ // sorted by type: calls run concurrently
			{Type: "svc.nope", Code: "MethodNotFound"},
			{Type: "svc.plain", Notification: true, Code: "ServerError"},
			{Type: "svc.wait"},
		}
		slices.SortFunc(got, func(a, b codec.CallInfo) int { return strings.Compare(a.Type, b.Type) })
		if len(got) != len(want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		for i := range want {
			got[i].Duration = 0 // no time passes in the bubble anyway
			if got[i] != want[i] {
				t.Errorf("call %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}
