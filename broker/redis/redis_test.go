package redis_test

import (
	"testing"

	"github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
	"github.com/rpcws/rpcws/rpcws/brokertest"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestConformance(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.Run(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func TestRestart(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.Restart(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, srv.RestartT)
}

func TestHistory(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.RunHistory(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func TestHistoryRestart(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.HistoryRestart(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) }, srv.RestartT)
}

func TestSessions(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.RunSessions(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func TestPresence(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.RunPresence(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}

func newBroker(t *testing.T, url string) rpcws.Broker {
	b, err := redis.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecovery(t *testing.T) {
	srv := engines.StartT(t, engines.Redis)
	brokertest.RunRecovery(t, func(t *testing.T) rpcws.Broker { return newBroker(t, srv.URL()) })
}
