package rpcws_test

import (
	"testing"

	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

// The handler recovers sessions end to end on the in-process broker, its
// replicas sharing one bus as they would one engine.
func TestMemoryBusRecovery(t *testing.T) {
	t.Parallel()
	bus := new(rpcws.MemoryBus)
	brokertest.RunRecovery(t, func(*testing.T) rpcws.Broker { return bus.NewBroker() })
}
