package codec

// BusyAfterBatch is busyAfterBatch, for the external tests of the Outbox.
const BusyAfterBatch = busyAfterBatch
