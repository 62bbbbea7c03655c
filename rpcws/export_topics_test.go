package rpcws

// LocalTopics returns the topics with members on this replica.
func (h *Handler) LocalTopics() int {
	h.cluster.mu.RLock()
	defer h.cluster.mu.RUnlock()
	return h.cluster.topics
}

// PauseDetach has f called between the batches in which a closed
// connection leaves its topics, without the hub's lock held.
func (h *Handler) PauseDetach(f func()) { h.cluster.betweenBatches = f }
