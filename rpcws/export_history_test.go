package rpcws

import "github.com/coder/websocket"

// DeliverAt hands the handler an event published to topic as its broker
// would, at pos: a test's way to show it an epoch change or a duplicate.
func (h *Handler) DeliverAt(topic string, pos Position, eventType string, data []byte) {
	msg := appendBrokerEnvelope(nil, "", "")
	msg = append(msg, `{"type":"`+eventType+`","data":`+string(data)+`}`...)
	h.cluster.ReceiveAt(Topic(topic).mustSubject(), pos, msg)
}

// Cut closes the connection from the server's side, as a takeover does,
// and returns once nothing more can be written to it.
func (p *Peer) Cut() {
	go p.conn.closeWith(websocket.StatusGoingAway, "cut")
	<-p.Context().Done()
}
