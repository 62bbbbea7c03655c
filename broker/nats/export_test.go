package nats

// OutMsgs is the number of messages b sent to NATS (publishes and
// requests): a publish's round trips, in the benchmarks.
func (b *Broker) OutMsgs() uint64 { return b.nc.Stats().OutMsgs }
