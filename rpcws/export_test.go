package rpcws

import "maps"

// ClientPlaces returns the places, reserved or connected, that each client
// address holds: a test checks with it that no entry outlives its
// connections.
func (h *Handler) ClientPlaces() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.clients.n)
}

// PausedReaders returns how many connections the handler has stopped
// reading for now (at the in-flight cap or a byte budget).
func (h *Handler) PausedReaders() int {
	n := 0
	for _, p := range h.Peers() {
		if p.codec.ReadPaused() {
			n++
		}
	}
	return n
}

// HandOffTick is how often the handler looks for methods that run long
// (inline.go).
const HandOffTick = handOffTick
