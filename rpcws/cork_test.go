package rpcws

import (
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	deadlines []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.deadlines = append(c.deadlines, t)
	return nil
}

func (c *deadlineConn) Write(p []byte) (int, error) { return len(p), nil }

// A send moves the write deadline only once it has run down by a 64th of
// the timeout, so that every send is bounded by between 63/64 of the
// timeout and all of it.
func TestCorkConnRenewsDeadlineLazily(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 64 * time.Second
		dc := &deadlineConn{}
		c := &corkConn{Conn: dc, timeout: timeout}
		start := time.Now()

		c.Write([]byte("a"))
		time.Sleep(timeout / 64) // not past a 64th
		c.Write([]byte("b"))
		if len(dc.deadlines) != 1 || !dc.deadlines[0].Equal(start.Add(timeout)) {
			t.Fatalf("deadlines after two sends a 64th of the timeout apart: %v, want one, the timeout after the first", dc.deadlines)
		}

		time.Sleep(time.Second) // now past
		c.Write([]byte("c"))
		if want := time.Now().Add(timeout); len(dc.deadlines) != 2 || !dc.deadlines[1].Equal(want) {
			t.Fatalf("deadlines after a send past a 64th of the timeout: %v, want a second at %v", dc.deadlines, want)
		}
	})
}
