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
// read of crypto/rand per sixteen calls, and no allocation per id. The
// codec's write mutex guards it.
type idSource struct {
	pool [16 * 16]byte
	used int // bytes of pool taken; len(pool) when it must be refilled
}

func (s *idSource) next() (uuid.UUID, error) {
	var u uuid.UUID
	if s.used == 0 || s.used == len(s.pool) {
		if _, err := rand.Read(s.pool[:]); err != nil {
			return u, err
		}
		s.used = 0
	}
	copy(u[:], s.pool[s.used:])
	s.used += len(u)
	u[6] = (u[6] & 0x0f) | 0x40 // version 4
	u[8] = (u[8] & 0x3f) | 0x80 // variant RFC 4122
	return u, nil
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

// Where a pending call waits for its timeout.
const (
	untimed uint8 = iota // no timeout: a context, or nothing, bounds the call
	listed               // the client's timeout: in the list
	inHeap               // a timeout of its own: in the heap
)

// pendingSet holds the calls waiting for their replies, by id, and times
// them out with one timer, armed for the call that falls due first: a call
// costs no timer of its own.
//
// Most calls have the client's timeout. They sit in a list in the order they
// were sent, which is also the order in which they fall due: adding and
// removing one is O(1). Calls with a timeout of their own ([WithTimeout])
// sit in a min-heap by deadline instead, O(log n). Calls bounded only by
// their context, or by nothing, are in neither.
//
// The codec's mutex guards it.
type pendingSet struct {
	byID       map[idKey]*clientCall
	head, tail *clientCall   // calls with the client's timeout, oldest first
	own        []*clientCall // calls with a timeout of their own, a min-heap by deadline

	timeout time.Duration // the client's; <= 0: its calls never time out
	timer   *time.Timer   // fires expire; nil until the first timed call
	armed   bool          // timer is set to fire at when
	when    int64         // deadline of the timer
	epoch   time.Time     // deadlines count nanoseconds from it, on the monotonic clock
	expire  func()
}

// now is the time as a deadline.
func (p *pendingSet) now() int64 { return int64(time.Since(p.epoch)) }

// after returns the deadline d from now, at most the largest one.
func (p *pendingSet) after(d time.Duration) int64 {
	now := p.now()
	if int64(d) > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + int64(d)
}

// add registers call. timeout is its own: zero means the client's, negative
// means none.
func (p *pendingSet) add(call *clientCall, timeout time.Duration) {
	p.byID[call.id] = call
	switch {
	case timeout == 0 || timeout == p.timeout:
		if p.timeout <= 0 {
			return
		}
		call.where = listed
		call.deadline = p.after(p.timeout)
		call.prev = p.tail
		if p.tail != nil {
			p.tail.next = call
		} else {
			p.head = call
		}
		p.tail = call
	case timeout < 0:
		return
	default:
		call.where = inHeap
		call.deadline = p.after(timeout)
		call.slot = int32(len(p.own))
		p.own = append(p.own, call)
		p.up(len(p.own) - 1)
	}
	if !p.armed || call.deadline < p.when {
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
	switch call.where {
	case listed:
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
		call.prev, call.next = nil, nil
	case inHeap:
		i, last := int(call.slot), len(p.own)-1
		if i != last {
			p.swap(i, last)
		}
		p.own[last] = nil
		p.own = p.own[:last]
		if i != last {
			p.down(i)
			p.up(i)
		}
	}
	call.where = untimed
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
	for len(p.own) > 0 && p.own[0].deadline <= now {
		call := p.own[0]
		p.remove(call)
		due = append(due, call)
	}
	switch {
	case p.head != nil && (len(p.own) == 0 || p.head.deadline <= p.own[0].deadline):
		p.arm(p.head.deadline)
	case len(p.own) > 0:
		p.arm(p.own[0].deadline)
	}
	return due
}

// takeAll empties the set and returns what it held.
func (p *pendingSet) takeAll() []*clientCall {
	all := make([]*clientCall, 0, len(p.byID))
	for _, call := range p.byID {
		call.prev, call.next, call.where = nil, nil, untimed
		all = append(all, call)
	}
	clear(p.byID)
	p.head, p.tail = nil, nil
	clear(p.own)
	p.own = nil
	if p.timer != nil {
		p.timer.Stop()
	}
	p.armed = false
	return all
}

// The heap of calls with a timeout of their own, by deadline; each call
// knows its slot.

func (p *pendingSet) less(i, j int) bool { return p.own[i].deadline < p.own[j].deadline }

func (p *pendingSet) swap(i, j int) {
	p.own[i], p.own[j] = p.own[j], p.own[i]
	p.own[i].slot, p.own[j].slot = int32(i), int32(j)
}

func (p *pendingSet) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !p.less(i, parent) {
			return
		}
		p.swap(i, parent)
		i = parent
	}
}

func (p *pendingSet) down(i int) {
	for {
		least := i
		if l := 2*i + 1; l < len(p.own) && p.less(l, least) {
			least = l
		}
		if r := 2*i + 2; r < len(p.own) && p.less(r, least) {
			least = r
		}
		if least == i {
			return
		}
		p.swap(i, least)
		i = least
	}
}
