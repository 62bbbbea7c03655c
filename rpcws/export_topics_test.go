package rpcws

// LocalTopics returns the topics with members on this replica.
func (h *Handler) LocalTopics() int {
	h.cluster.mu.RLock()
	defer h.cluster.mu.RUnlock()
	return h.cluster.topics
}
