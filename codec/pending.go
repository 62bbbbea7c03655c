package codec

import (
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

// idKey is a request id of this client: a UUID in its 36-byte text form.
// Used as a map key, it costs no allocation per call, and a reply's id is
// looked up without one.
type idKey [36]byte

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

// pendingSet holds the calls waiting for their replies: by id, and in a list
// in the order they were sent. Every call of a codec has the same timeout,
// so that is also the order in which they fall due, and one timer, armed for
// the oldest call, times them all out: a call costs no timer of its own.
// The codec's mutex guards it.
type pendingSet struct {
	byID       map[idKey]*clientCall
	head, tail *clientCall // oldest first

	timeout time.Duration // <= 0: calls never time out
	timer   *time.Timer   // fires expire; nil until the first call
	armed   bool          // timer is set to fire
	expire  func()
}

func (p *pendingSet) add(call *clientCall) {
	p.byID[call.id] = call
	if p.timeout <= 0 {
		return
	}
	call.deadline = time.Now().Add(p.timeout)
	call.prev = p.tail
	if p.tail != nil {
		p.tail.next = call
	} else {
		p.head = call
	}
	p.tail = call
	if !p.armed {
		p.arm(p.timeout)
	}
}

func (p *pendingSet) arm(d time.Duration) {
	p.armed = true
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.expire)
	} else {
		p.timer.Reset(d)
	}
}

func (p *pendingSet) remove(call *clientCall) {
	delete(p.byID, call.id)
	if p.timeout <= 0 {
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
	call.prev, call.next = nil, nil
}

// takeDue removes and returns the calls due by now, and re-arms the timer
// for the oldest call left. It is called when the timer fires.
func (p *pendingSet) takeDue(now time.Time) []*clientCall {
	p.armed = false
	var due []*clientCall
	for p.head != nil && !p.head.deadline.After(now) {
		call := p.head
		p.remove(call)
		due = append(due, call)
	}
	if p.head != nil {
		p.arm(p.head.deadline.Sub(now))
	}
	return due
}

// takeAll empties the set and returns what it held.
func (p *pendingSet) takeAll() []*clientCall {
	all := make([]*clientCall, 0, len(p.byID))
	for _, call := range p.byID {
		all = append(all, call)
	}
	clear(p.byID)
	p.head, p.tail = nil, nil
	if p.timer != nil {
		p.timer.Stop()
	}
	return all
}
