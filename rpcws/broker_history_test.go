package rpcws_test

import (
	"testing"

	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// The in-process broker passes the suites of history, sessions and
// presence, its brokers sharing one bus as replicas would one engine.
func TestMemoryBusHistory(t *testing.T) {
	bus := new(rpcws.MemoryBus)
	newBroker := func(*testing.T) rpcws.Broker { return bus.NewBroker() }
	t.Run("History", func(t *testing.T) { brokertest.RunHistory(t, newBroker) })
	t.Run("Sessions", func(t *testing.T) { brokertest.RunSessions(t, newBroker) })
	t.Run("Presence", func(t *testing.T) { brokertest.RunPresence(t, newBroker) })
	t.Run("Restart", func(t *testing.T) {
		brokertest.HistoryRestart(t, newBroker, func(*testing.T) { *bus = rpcws.MemoryBus{} })
	})
}
