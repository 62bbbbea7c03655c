package rpcws

import (
	"errors"

	"github.com/rpcws/rpcws/codec"
)

// SlowConsumerReason is the close reason, with status 1008 (policy
// violation), sent to a client that reads too slowly: it read nothing for
// the write timeout while a push waited for room, or its queue overflowed on
// a push that cannot wait (such as [Handler.Broadcast]).
const SlowConsumerReason = "rpcws: client reads too slowly"

// ErrSlowConsumer is the error of a push to a client that reads too slowly;
// its connection is closed with status 1008 and [SlowConsumerReason].
var ErrSlowConsumer = errors.New(SlowConsumerReason)

// ErrClosed is the error of a push to a connection that has closed. It is
// [codec.ErrClosed].
var ErrClosed = codec.ErrClosed

// ErrNoPeer is the error of a push through the nil [*Peer] that
// [Caller.Peer] returns when a method is served by another codec than
// rpcws's.
var ErrNoPeer = errors.New("rpcws: no peer: the method is not served by rpcws")
