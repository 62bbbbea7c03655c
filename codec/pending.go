package codec

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"time"

	"github.com/google/uuid"
)

// idKey is a request id of this client: a UUID in its 36-byte text form.
// Used as a map key, it costs no allocation per call, and a reply's id is
// looked up without one.
type idKey [36]byte

// idSource makes random (version 4) UUIDs for request ids, as
// uuid.NewRandom does, from random bytes read sixteen ids at a time: one
// read of crypto/rand (which never fails) per sixteen calls, and no
// allocation per id. The codec's write mutex guards it.
type idSource struct {
	pool [16 * 16]byte
	used int // bytes of pool taken; len(pool) when it must be refilled
}

func (s *idSource) next() uuid.UUID {
	var u uuid.UUID
	if s.used == 0 || s.used == len(s.pool) {
		rand.Read(s.pool[:])
		s.used = 0
	}
	copy(u[:], s.pool[s.used:])
	s.used += len(u)
	u[6] = (u[6] & 0x0f) | 0x40 // version 4
	u[8] = (u[8] & 0x3f) | 0x80 // variant RFC 4122
	return u
}

// encodeUUID writes u's text form to dst[:36].
func encodeUUID(dst []byte, u uuid.UUID) {
	hex.Encode(dst[0:8], u[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], u[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], u[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], u[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:], u[10:])
}

// pendingSet holds the calls waiting for their replies, by id, and times
// out those with the client's timeout with one timer, armed for the call
// that falls due first: a call costs no timer of its own. They sit in a list
// in the order they were sent, which is also the order in which they fall
// due: adding and removing one is O(1). Calls bounded by their context's
// deadline, or by nothing, are in the map only.
//
// The codec's mutex guards it.
type pendingSet struct {
	byID       map[idKey]*clientCall
	head, tail *clientCall // calls with the client's timeout, oldest first

	timeout time.Duration // the client's; <= 0: its calls never time out
	timer   *time.Timer   // fires expire; nil until the first timed call
	armed   bool          // timer is set to fire at when
	when    int64         // deadline of the timer
	epoch   time.Time     // deadlines count nanoseconds from it, on the monotonic clock
	expire  func()
}

// now is the time as a deadline.
func (p *pendingSet) now() int64 { return int64(time.Since(p.epoch)) }

// add registers call; timed puts it under the client's timeout, if any.
func (p *pendingSet) add(call *clientCall, timed bool) {
	p.byID[call.id] = call
	if !timed || p.timeout <= 0 {
		return
	}
	call.timed = true
	now := p.now()
	call.deadline = math.MaxInt64
	if int64(p.timeout) <= math.MaxInt64-now {
		call.deadline = now + int64(p.timeout)
	}
	call.prev = p.tail
	if p.tail != nil {
		p.tail.next = call
	} else {
		p.head = call
	}
	p.tail = call
	if !p.armed {
		p.arm(call.deadline)
	}
}

// arm sets the timer to fire at deadline t.
func (p *pendingSet) arm(t int64) {
	p.armed, p.when = true, t
	d := time.Duration(t - p.now())
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.expire)
	} else {
		p.timer.Reset(d)
	}
}

// remove takes call out of the set. A timer armed for it is left to fire:
// takeDue then finds nothing due and re-arms for the next call.
func (p *pendingSet) remove(call *clientCall) {
	delete(p.byID, call.id)
	if !call.timed {
		return
	}
	if call.prev != nil {
		call.prev.next = call.next
	} else {
		p.head = call.next
	}
	if call.next != nil {
		call.next.prev = call.prev
	} else {
		p.tail = call.prev
	}
	call.prev, call.next, call.timed = nil, nil, false
}

// takeDue removes and returns the calls due by now, and re-arms the timer
// for the first call left to fall due. It is called when the timer fires.
func (p *pendingSet) takeDue() []*clientCall {
	p.armed = false
	now := p.now()
	var due []*clientCall
	for p.head != nil && p.head.deadline <= now {
		call := p.head
		p.remove(call)
		due = append(due, call)
	}
	if p.head != nil {
		p.arm(p.head.deadline)
	}
	return due
}

// takeAll empties the set and returns what it held.
func (p *pendingSet) takeAll() []*clientCall {
	all := make([]*clientCall, 0, len(p.byID))
	for _, call := range p.byID {
		call.prev, call.next, call.timed = nil, nil, false
		all = append(all, call)
	}
	clear(p.byID)
	p.head, p.tail = nil, nil
	if p.timer != nil {
		p.timer.Stop()
	}
	p.armed = false
	return all
}
