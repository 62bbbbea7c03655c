package codec

// BusyAfterBatch is busyAfterBatch, for the external tests of the Outbox.
const BusyAfterBatch = busyAfterBatch

// SetYield makes o call yield where it would yield its processor (see
// Outbox.drain), for the external tests of the Outbox.
func SetYield(o *Outbox, yield func()) { o.yield = yield }
