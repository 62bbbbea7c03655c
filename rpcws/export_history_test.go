package rpcws

// DeliverAt hands the handler an event published to topic as its broker
// would, at pos: a test's way to show it an epoch change or a duplicate.
func (h *Handler) DeliverAt(topic string, pos Position, eventType string, data []byte) {
	msg := appendBrokerEnvelope(nil, "", "")
	msg = append(msg, `{"type":"`+eventType+`","data":`+string(data)+`}`...)
	h.cluster.ReceiveAt(Topic(topic).mustSubject(), pos, msg)
}
