package main

import (
	"strings"
	"testing"

	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/internal/testutil"
)

// The routing test again, through nginx in front of the three replicas:
// nginx spreads the 30 clients over them, and the broker joins them.
func TestBehindNginx(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, kind, 3)
			var addrs []string
			for _, r := range c.replicas {
				addrs = append(addrs, strings.TrimPrefix(r.hs.URL, "http://"))
			}
			p := startProxy(t, addrs)
			routing(t, []string{"ws://" + p + "/rpc"})
			for i, r := range c.replicas {
				if n := r.srv.rpc.NumConns(); n == 0 {
					t.Errorf("replica %d served no connection: nginx did not spread them", i)
				}
			}
		})
	}
}

// startProxy starts nginx with nginx.conf.tmpl in front of the replicas,
// stops it at cleanup, and returns its address.
func startProxy(t *testing.T, replicas []string) string {
	t.Helper()
	return testutil.StartNginx(t, "nginx.conf.tmpl", map[string]any{"Replicas": replicas}).Addr
}

// The recovery test through nginx: the 30 clients dial nginx, which spreads
// them over three replicas on one broker; one replica is killed (or
// restarted gracefully) while the events go out, and its clients,
// redialling nginx, land on another (or on it, back again) and recover
// every event they missed, exactly once, in order.
func TestRecoveryBehindNginx(t *testing.T) {
	binDir := t.TempDir()
	for _, kind := range []string{"redis", "nats"} {
		for _, kill := range []bool{true, false} {
			t.Run(kind+"/"+map[bool]string{true: "kill", false: "term"}[kill], func(t *testing.T) {
				engine := engines.StartT(t, kind)
				bin := buildServer(t, binDir)
				var nodes []node
				var addrs []string
				for range 3 {
					p := startProc(t, bin, replicaFlags(engine.URL())...)
					nodes = append(nodes, p)
					addrs = append(addrs, p.addr)
				}
				entry := "ws://" + startProxy(t, addrs) + "/rpc"
				runRecovery(t, scenario{nodes: nodes, entry: []string{entry}, kill: kill})
			})
		}
	}
}
