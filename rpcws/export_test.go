package rpcws

// ClientPlaces returns the places, reserved or connected, that each client
// address holds: a test checks with it that no entry outlives its
// connections.
func (h *Handler) ClientPlaces() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	places := make(map[string]int, len(h.clients.n))
	for client, e := range h.clients.n {
		places[client] = e.places
	}
	return places
}

// PausedReaders returns how many connections the handler has stopped
// reading for now (at the in-flight cap or a byte budget).
func (h *Handler) PausedReaders() int {
	n := 0
	for _, p := range h.Peers() {
		if p.adm.Paused() {
			n++
		}
	}
	return n
}
