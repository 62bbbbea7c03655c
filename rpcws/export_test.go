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

// Watched reports how many connections the handler's watch holds, and
// whether its timer is set (inline.go).
func (h *Handler) Watched() (conns int, ticking bool) {
	h.watch.mu.Lock()
	defer h.watch.mu.Unlock()
	return len(h.watch.conns), h.watch.running
}

// QuietLooks and WatchIdleTicks are how long the watch keeps a connection
// that stopped calling, and itself without one (inline.go).
const (
	QuietLooks     = quietLooks
	WatchIdleTicks = watchIdleTicks
)
