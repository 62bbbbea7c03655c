package nats_test

import (
	"testing"

	"github.com/rpcws/rpcws/broker/nats"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestConformance(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.Run(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func TestRestart(t *testing.T) {
	srv := engines.StartT(t, engines.NATS)
	brokertest.Restart(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, srv.RestartT)
}

func newBroker(t *testing.T, url string) rpcws.Broker {
	b, err := nats.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
