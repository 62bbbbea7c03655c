package codec_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcws/rpcws/codec"
)

// acquire runs Acquire on a goroutine of its own; its result comes on the
// channel.
func acquire(a *codec.Admission, cost int64) chan error {
	done := make(chan error, 1)
	go func() { done <- a.Acquire(cost) }()
	return done
}

// waiting reports whether an acquire is still waiting, once every goroutine
// of the bubble is blocked.
func waiting(t *testing.T, done chan error) bool {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		return false
	default:
		return true
	}
}

// At MaxInFlight, Acquire waits (the connection is paused) until a request
// is done.
func TestAdmissionSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := codec.NewAdmission(&codec.AdmissionOptions{MaxInFlight: 2})
		for range 2 {
			if err := a.Acquire(10); err != nil {
				t.Fatal(err)
			}
		}
		third := acquire(a, 10)
		if !waiting(t, third) || !a.Paused() {
			t.Fatal("a third request was taken at MaxInFlight 2")
		}
		a.Done(10)
		if waiting(t, third) {
			t.Fatal("Done freed no slot")
		}
		if a.Paused() || a.InFlight() != 2 {
			t.Errorf("paused %v, in flight %d; want false, 2", a.Paused(), a.InFlight())
		}
	})
}

// While the connection's bytes are at MaxConnBytes, or the shared budget is
// spent, Acquire waits until they fall.
func TestAdmissionBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := codec.NewBudget(1000)
		a := codec.NewAdmission(&codec.AdmissionOptions{MaxConnBytes: 100, Budget: budget})
		a.Charge(100) // a frame queued, say
		next := acquire(a, 10)
		if !waiting(t, next) {
			t.Fatal("a request was taken with the connection's bytes spent")
		}
		a.Charge(-100)
		if waiting(t, next) {
			t.Fatal("freeing the bytes did not let the request in")
		}
		if got := budget.InUse(); got != 10 {
			t.Errorf("the shared budget holds %d bytes, want the request's 10", got)
		}

		other := codec.NewAdmission(&codec.AdmissionOptions{Budget: budget})
		other.Charge(990) // the budget is spent
		blocked := acquire(a, 10)
		if !waiting(t, blocked) {
			t.Fatal("a request was taken with the shared budget spent")
		}
		if a.Hold(100) {
			t.Error("Hold took bytes the shared budget has no room for")
		}
		other.Charge(-990)
		if waiting(t, blocked) {
			t.Fatal("freeing the shared budget did not let the request in")
		}
	})
}

// A Share bounds the requests of several connections together, and a ping
// waits its turn in it.
func TestAdmissionShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		share := codec.NewShare(1)
		a := codec.NewAdmission(&codec.AdmissionOptions{Share: share})
		b := codec.NewAdmission(&codec.AdmissionOptions{Share: share})
		if err := a.Acquire(1); err != nil {
			t.Fatal(err)
		}
		other := acquire(b, 1)
		if !waiting(t, other) {
			t.Fatal("a second connection took a request beyond the share")
		}
		pinged := make(chan error, 1)
		go func() { pinged <- share.Turn(context.Background()) }()
		synctest.Wait()
		select {
		case <-pinged:
			t.Fatal("a ping got a turn with the share taken")
		default:
		}
		a.Done(1)
		if waiting(t, other) {
			t.Fatal("the share's slot did not pass on")
		}
		b.Done(1)
		if err := <-pinged; err != nil {
			t.Fatal(err)
		}
	})
}

// Draining refuses new requests, waiting ones included, and waits for those
// in flight; closing ends every wait.
func TestAdmissionDrainAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := codec.NewAdmission(&codec.AdmissionOptions{MaxInFlight: 1})
		if err := a.Acquire(1); err != nil {
			t.Fatal(err)
		}
		queued := acquire(a, 1)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := a.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Drain with a request in flight: got %v, want its context's end", err)
		}
		if err := <-queued; !errors.Is(err, codec.ErrDraining) {
			t.Fatalf("a request waiting at the drain: got %v, want ErrDraining", err)
		}
		drained := make(chan error, 1)
		go func() { drained <- a.Drain(context.Background()) }()
		synctest.Wait()
		a.Done(1)
		if err := <-drained; err != nil {
			t.Fatal(err)
		}

		c := codec.NewAdmission(&codec.AdmissionOptions{MaxInFlight: 1})
		c.Acquire(1)
		blocked := acquire(c, 1)
		synctest.Wait()
		c.Close()
		if err := <-blocked; !errors.Is(err, codec.ErrClosed) {
			t.Fatalf("a request waiting at Close: got %v, want ErrClosed", err)
		}
		if c.Context().Err() == nil {
			t.Error("the context did not end at Close")
		}
	})
}
