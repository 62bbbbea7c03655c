package main

// The js workload: the JavaScript reference client (interop/js/rpcws.js) in
// Node against the Go reference server, beside the same traffic from a bare
// WebSocket loop in Node that matches replies to requests by id by hand.

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	jsclient "github.com/rpcws/rpcws/interop/js"
	"github.com/rpcws/rpcws/interop/refserver"
)

// jsScript drives a JavaScript client; see its opening comment.
//
//go:embed jsclient.mjs
var jsScript []byte

// The subjects of the js workload.
const (
	jsRPCWSPeer = "rpcws.js"
	jsBarePeer  = "bare-ws.js" // the ceiling of the js metrics
)

// jsSubject is a JavaScript client in Node: mode "rpcws" (the reference
// client) or "bare" (a WebSocket and a Map by hand). Its server is the Go
// reference server, interop/refserver.
type jsSubject struct {
	mode  string
	node  string   // path of node
	flags []string // node's flags before the script
}

func (s jsSubject) name() string {
	if s.mode == "rpcws" {
		return jsRPCWSPeer
	}
	return jsBarePeer
}

func (s jsSubject) about() string {
	if s.mode == "rpcws" {
		return "interop/js/rpcws.js in Node against interop/refserver"
	}
	return "a bare WebSocket in Node, replies matched by id by hand, against interop/refserver"
}

func (jsSubject) start() (string, func(), error) {
	ref := refserver.New(nil)
	addr, stop, err := serveHTTP(ref)
	if err != nil {
		return "", nil, err
	}
	return addr, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ref.Shutdown(ctx)
		stop()
	}, nil
}

var errFromNode = errors.New("js: the JavaScript clients call from Node, not from Go")

func (jsSubject) dial(context.Context, string) (caller, error) { return nil, errFromNode }

// jsSubjects returns both JavaScript subjects when rpcws is selected, or
// why they cannot run: Node 20 or later is needed.
func jsSubjects(selected []peer) ([]peer, error) {
	if !slices.Contains(peerNames(selected), subjectPeer) {
		return nil, nil
	}
	node, flags, err := findNode()
	if err != nil {
		return nil, err
	}
	return []peer{
		jsSubject{mode: "rpcws", node: node, flags: flags},
		jsSubject{mode: "bare", node: node, flags: flags},
	}, nil
}

// errNoNode is the error of findNode where Node 20 or later is missing.
var errNoNode = errors.New("needs Node 20 or later (node on PATH; apt-get install nodejs)")

// findNode returns the path of node and the flags that give it a global
// WebSocket (Node 20 and 21 need one).
func findNode() (string, []string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", errNoNode, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s --version: %w", errNoNode, node, err)
	}
	version := strings.TrimSpace(string(out))
	var major int
	if _, err := fmt.Sscanf(version, "v%d.", &major); err != nil || major < 20 {
		return "", nil, fmt.Errorf("%w: %s is %s", errNoNode, node, version)
	}
	flags := []string{"--no-warnings"}
	if major < 22 {
		flags = append(flags, "--experimental-websocket")
	}
	return node, flags, nil
}

// jsPhase is what the script measured at one number of requests outstanding.
type jsPhase struct {
	Outstanding int     `json:"outstanding"`
	Calls       int     `json:"calls"`
	Seconds     float64 `json:"seconds"`
	Peak        int     `json:"peak"` // most requests waiting for their reply at once
}

// jsClient measures the js workload: one connection, 1 and then cfg.Callers
// requests outstanding.
func (b *bench) jsClient(c *cell) (map[string]float64, error) {
	phases, err := b.jsRun(c, []int{1, b.cfg.Callers})
	if err != nil {
		return nil, err
	}
	rates := make([]float64, len(phases))
	for i, p := range phases {
		if p.Calls < p.Outstanding || p.Seconds <= 0 {
			return nil, fmt.Errorf("js: %d calls in %.3f s with %d outstanding", p.Calls, p.Seconds, p.Outstanding)
		}
		rates[i] = float64(p.Calls) / p.Seconds
	}
	return map[string]float64{"js.serial.rate": rates[0], "js.shared.rate": rates[1]}, nil
}

// jsRun runs the script against the cell's server, with each number of
// requests outstanding in turn on one connection, and returns what it
// measured.
func (b *bench) jsRun(c *cell, outstanding []int) ([]jsPhase, error) {
	s, ok := c.p.(jsSubject)
	if !ok {
		return nil, fmt.Errorf("%s is no JavaScript subject", c.p.name())
	}
	dir, err := os.MkdirTemp("", "peers-js-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	client, err := jsclient.Files.ReadFile("rpcws.js")
	if err != nil {
		return nil, err
	}
	// .mjs: modules whatever package.json says, and there is none.
	if err := os.WriteFile(filepath.Join(dir, "rpcws.mjs"), client, 0o644); err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "jsclient.mjs")
	if err := os.WriteFile(script, jsScript, 0o644); err != nil {
		return nil, err
	}
	counts := make([]string, len(outstanding))
	for i, n := range outstanding {
		counts[i] = strconv.Itoa(n)
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	args := append(slices.Clone(s.flags), script, "ws://"+c.addr+"/rpc", s.mode,
		ms(b.cfg.Warmup), ms(b.cfg.Duration), strconv.Itoa(b.cfg.MaxCalls), strings.Join(counts, ","))
	// Bounded: the phases, Node's start, and room for a busy machine.
	limit := time.Duration(len(outstanding))*2*(b.cfg.Warmup+b.cfg.Duration) + 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.node, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("did not finish within %v: %w", limit, err)
		}
		return nil, fmt.Errorf("js: node %s: %w: %s", s.mode, err, lastLines(stderr.String(), 5))
	}
	var out struct {
		Results []jsPhase `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("js: node %s printed %q: %w", s.mode, stdout.String(), err)
	}
	if len(out.Results) != len(outstanding) {
		return nil, fmt.Errorf("js: node %s measured %d phases, want %d", s.mode, len(out.Results), len(outstanding))
	}
	return out.Results, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// jsMetrics returns the metrics of the js workload.
func jsMetrics(cfg config) []metric {
	what := "JavaScript client in Node, 1 connection, demo.echo"
	ceiling := " (×ceiling: ÷ " + jsBarePeer + ", the same traffic by hand)"
	return []metric{
		{Key: "js.serial.rate", Title: what + ", 1 request outstanding" + ceiling, Unit: "calls/s", Higher: true, Ceiling: jsBarePeer},
		{Key: "js.shared.rate", Title: fmt.Sprintf("%s, %d requests outstanding%s", what, cfg.Callers, ceiling), Unit: "calls/s", Higher: true, Ceiling: jsBarePeer},
	}
}
