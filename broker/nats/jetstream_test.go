package nats_test

import (
	"testing"

	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

func TestHistory(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.RunHistory(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

// A restart that loses JetStream's store gives topics new epochs.
func TestHistoryRestart(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.HistoryRestart(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, srv.RestartEmptyT)
}

func TestSessions(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.RunSessions(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func TestPresence(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.RunPresence(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}
