package nats

import (
	"slices"
	"testing"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// ev is the event at offset off of epoch "e", stored at stream sequence
// seq after the one at prev.
func ev(off, seq, prev uint64) positioned {
	return positioned{subject: "t.a", pos: rpcws.Position{Epoch: "e", Offset: off}, seq: seq, prev: prev}
}

func offsetsOf(ps []positioned) []uint64 {
	var out []uint64
	for _, p := range ps {
		out = append(out, p.pos.Offset)
	}
	return out
}

// Events that arrive the wrong way round are delivered in offset order;
// one that never arrives is reported lost after reorderWait, and one that
// arrives after a later one was delivered is dropped and reported lost.
func TestOrderer(t *testing.T) {
	var o orderer
	now := time.Unix(1000, 0)
	var got []uint64
	add := func(p positioned) (lost, waiting bool) {
		out, lost, waiting := o.add(p, now)
		got = append(got, offsetsOf(out)...)
		return lost, waiting
	}
	// Sequences interleave with other topics': 10, 12, 15, 17, 20, 22.
	if lost, _ := add(ev(1, 10, 0)); lost {
		t.Fatal("the first event lost")
	}
	if _, waiting := add(ev(3, 15, 12)); !waiting {
		t.Fatal("an event ahead of its predecessor does not wait")
	}
	add(ev(4, 17, 15))
	add(ev(2, 12, 10))
	if !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("delivered %v, want 1 to 4", got)
	}
	// 5 (seq 20) never arrives: 6 waits, then goes with a loss.
	if _, waiting := add(ev(6, 22, 20)); !waiting {
		t.Fatal("6 does not wait for 5")
	}
	if next := o.expire(now.Add(reorderWait/2), func(string, []positioned) { t.Fatal("released early") }); !next.Equal(now.Add(reorderWait)) {
		t.Fatalf("next release at %v", next)
	}
	var released []uint64
	o.expire(now.Add(reorderWait), func(subject string, out []positioned) { released = offsetsOf(out) })
	if !slices.Equal(released, []uint64{6}) {
		t.Fatalf("released %v, want 6", released)
	}
	if lost, _ := add(ev(5, 20, 17)); !lost {
		t.Fatal("5, after 6 was delivered, not reported lost")
	}
	// A new epoch starts a new order, whatever its sequences.
	p := ev(1, 3, 0)
	p.pos.Epoch = "f"
	got = nil
	if lost, _ := add(p); lost || !slices.Equal(got, []uint64{1}) {
		t.Fatalf("a new epoch: %v, lost %v", got, lost)
	}
	o.forget(nil)
	if len(o.topics) != 0 {
		t.Fatal("forget(nil) kept topics")
	}
}

// A topic that holds more than maxHeld events gives up waiting at once.
func TestOrdererBound(t *testing.T) {
	var o orderer
	now := time.Unix(1000, 0)
	o.add(ev(1, 1, 0), now)
	for i := range uint64(maxHeld) {
		if _, lost, _ := o.add(ev(3+i, 3+i, 2+i), now); lost {
			t.Fatalf("lost after %d held", i)
		}
	}
	out, lost, waiting := o.add(ev(3+maxHeld, 3+maxHeld, 2+maxHeld), now)
	if !lost || waiting || len(out) != maxHeld+1 {
		t.Fatalf("past the bound: %d out, lost %v, waiting %v", len(out), lost, waiting)
	}
}
