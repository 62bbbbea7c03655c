// Package interop_test runs the interop suite: the JavaScript reference client and
// the conformance checks in interop/js against the reference server, in Node and in
// headless Chromium and Firefox ESR, the client's types under tsc, and the Go client,
// the JavaScript client and the conformance checks against servers written from the
// lesson's shape in Node and in Python.
//
// The tests need node (20 or later) and, for the browsers, Debian's chromium and
// firefox-esr; Firefox (driven by puppeteer-core), the type test (typescript) and the
// Node foreign server (ws) need `npm ci` in interop/js, the Python one Debian's
// /usr/bin/python3 with python3-aiohttp. Where one is missing the test is
// skipped, unless the CI environment variable is set: then it fails. -short skips the
// lesson's 15 s exercise.
package interop_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcws/rpcws/interop/refserver"
)

// jsDir is interop/js, relative to this package's directory, where go test runs.
const jsDir = "js"

// transcriptsDir holds the golden transcripts.
var transcriptsDir = filepath.Join("..", "testdata", "transcripts")

// need returns the path of the program name, or skips the test (fails it under CI)
// with a message that says how to install it.
func need(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found, and CI is set: %s", name, install)
	}
	t.Skipf("%s not found; skipping (install it: %s)", name, install)
	return ""
}

// needNode returns the path of node, which must be Node 20 or later.
func needNode(t *testing.T) string {
	t.Helper()
	const install = "apt-get install -y nodejs (Node 20 or later)"
	node := need(t, "node", install)
	version, err := nodeVersion(node)
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	var major int
	if _, err := fmt.Sscanf(version, "v%d.", &major); err != nil || major < 20 {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is %s, want 20 or later: %s", version, install)
		}
		t.Skipf("node is %s, want 20 or later; skipping (%s)", version, install)
	}
	return node
}

// nodeVersion runs `node --version`, once per test binary.
func nodeVersion(node string) (string, error) {
	nodeVersionOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, node, "--version").Output()
		nodeVersionOnce.version, nodeVersionOnce.err = strings.TrimSpace(string(out)), err
	})
	return nodeVersionOnce.version, nodeVersionOnce.err
}

var nodeVersionOnce struct {
	sync.Once
	version string
	err     error
}

// needNodeModules checks that npm ci has run in interop/js: the foreign server
// needs the ws package.
func needNodeModules(t *testing.T) {
	t.Helper()
	needNodePackage(t, "ws")
}

// needNodePackage checks that the devDependency pkg of interop/js is installed, as
// npm ci does, and skips the test (fails it under CI) if not.
func needNodePackage(t *testing.T, pkg string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", pkg, "package.json")); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("interop/js/node_modules/%s is missing, and CI is set: run npm ci --prefix interop/js", pkg)
	}
	t.Skipf("interop/js/node_modules/%s is missing; skipping (run npm ci --prefix interop/js)", pkg)
}

// command returns a command bound to ctx whose whole process group is killed when
// ctx ends, and which gives up on its output pipes soon after.
func command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	ownGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runNode runs node in interop/js with args and the extra environment, bounded by
// timeout, and fails the test, showing Node's output, if it exits non-zero. It
// returns the output.
func runNode(t *testing.T, timeout time.Duration, env []string, args ...string) string {
	t.Helper()
	node := needNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := command(ctx, jsDir, node, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("node %s: %v\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
	if ctx.Err() != nil {
		t.Fatalf("node %s: did not finish within %v", strings.Join(args, " "), timeout)
	}
	if err != nil {
		t.Fatalf("node %s: %v (its output is above)", strings.Join(args, " "), err)
	}
	return string(out)
}

// nodeTest runs `node --test` on files in interop/js with the extra environment.
func nodeTest(t *testing.T, timeout time.Duration, env []string, files ...string) string {
	t.Helper()
	args := append([]string{"--experimental-websocket", "--no-warnings", "--test", "--test-reporter=spec"}, files...)
	return runNode(t, timeout, env, args...)
}

// startRef starts a reference server on 127.0.0.1 for the length of the test and
// returns it with its httptest wrapper.
func startRef(t *testing.T, opts *refserver.Options) (*refserver.Server, *httptest.Server) {
	t.Helper()
	ref := refserver.New(opts)
	return ref, serveRPC(t, ref, ref.Shutdown)
}

// serve serves h on 127.0.0.1 for the length of the test.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs
}

// serveRPC serves h, which holds WebSocket connections, on 127.0.0.1 for the length
// of the test. At the end it calls shutdown first, to close those connections, then
// closes the server, which waits for its handlers.
func serveRPC(t *testing.T, h http.Handler, shutdown func(context.Context) error) *httptest.Server {
	t.Helper()
	hs := serve(t, h)
	t.Cleanup(func() { // runs before hs.Close: cleanups run last-registered first
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("shutdown: %v", err)
		}
	})
	return hs
}

// wsURL turns an httptest server's http URL into the WebSocket URL of path.
func wsURL(hs *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(hs.URL, "http") + path
}

// transcriptFiles returns the names of the golden transcripts; a test that replays
// them fails if there are none.
func transcriptFiles(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(transcriptsDir, "*.txt"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no transcripts in %s (err %v)", transcriptsDir, err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}
