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
