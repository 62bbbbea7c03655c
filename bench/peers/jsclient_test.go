package main

import (
	"errors"
	"net/http"
	"net/rpc"
	"os"
	"strings"
	"testing"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// needJS returns the JavaScript subjects, or skips the test where Node 20
// or later is missing (fails it when CI is set).
func needJS(t *testing.T) []peer {
	t.Helper()
	subjects, err := jsSubjects(allPeers())
	if errors.Is(err, errNoNode) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v, and CI is set", err)
		}
		t.Skipf("skipping: the js workload %v", err)
	}
	if err != nil || len(subjects) != 2 {
		t.Fatalf("jsSubjects = %d subjects, %v; want rpcws.js and bare-ws.js", len(subjects), err)
	}
	return subjects
}

// Both JavaScript clients make their calls, each reply checked by the
// script, with as many requests waiting at once as asked for.
func TestJSWorkload(t *testing.T) {
	cfg := tinyConfig()
	outstanding := []int{1, 5}
	for _, p := range needJS(t) {
		t.Run(p.name(), func(t *testing.T) {
			base := testutil.CountGoroutines()
			b := newBench(cfg)
			var phases []jsPhase
			w := workload{"js", func(b *bench, c *cell) (map[string]float64, error) {
				var err error
				phases, err = b.jsRun(c, outstanding)
				return nil, err
			}}
			if _, err := b.runCell(w, p); err != nil {
				t.Fatalf("js: %v", err)
			}
			if len(phases) != len(outstanding) {
				t.Fatalf("got %d phases, want %d", len(phases), len(outstanding))
			}
			for i, ph := range phases {
				if ph.Outstanding != outstanding[i] || ph.Peak != outstanding[i] {
					t.Errorf("phase %d: %d outstanding, at most %d waiting at once; want %d", i, ph.Outstanding, ph.Peak, outstanding[i])
				}
				if ph.Calls < outstanding[i] || ph.Calls > cfg.MaxCalls || ph.Seconds <= 0 {
					t.Errorf("phase %d: %d calls in %v s; want %d to %d", i, ph.Calls, ph.Seconds, outstanding[i], cfg.MaxCalls)
				}
			}
			testutil.CheckGoroutines(t, base)
		})
	}
}

// wrongDemo answers demo.echo with something else than its data.
type wrongDemo struct{}

func (wrongDemo) Echo(args *Args, reply *Args) error {
	*reply = Args{A: args.A, B: args.B + 1}
	return nil
}

// A wrong reply fails the cell: the script checks every reply.
func TestJSWorkloadWrongReply(t *testing.T) {
	subjects := needJS(t)
	srv := rpc.NewServer()
	if err := srv.RegisterName("Demo", wrongDemo{}); err != nil {
		t.Fatal(err)
	}
	h := rpcws.NewHandler(srv, nil)
	mux := http.NewServeMux()
	mux.Handle("/rpc", h)
	addr, stop, err := serveHTTP(mux)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	b := newBench(tinyConfig())
	for _, p := range subjects {
		_, err := b.jsRun(&cell{p: p, addr: addr}, []int{1})
		if err == nil || !strings.Contains(err.Error(), "wrong reply") {
			t.Errorf("%s against a wrong server: %v; want the script's wrong reply", p.name(), err)
		}
	}
}

// Without Node, the js workload is skipped, and the report says why.
func TestJSWorkloadWithoutNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	js := []workload{{"js", (*bench).jsClient}}
	by, extra, skipped := pickSubjects(js, allPeers())
	if len(by["js"]) != 0 || len(extra) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0].About, "Node 20") {
		t.Errorf("pickSubjects without node = %d subjects, %d extra, skipped %v; want the js workload skipped for want of Node", len(by["js"]), len(extra), skipped)
	}
}
