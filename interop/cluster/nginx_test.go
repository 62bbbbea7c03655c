package main

import (
	"strings"
	"testing"

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
