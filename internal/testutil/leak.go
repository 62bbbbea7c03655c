// Package testutil holds helpers shared by the tests of rpcws: a goroutine
// leak check and the reader of golden wire transcripts.
package testutil

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// VerifyNoLeaks runs the tests of a package and then fails the run if
// goroutines that the tests started are still running. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
//
// Goroutines get a few seconds to finish, since closing a connection ends its
// goroutines soon after, not at once.
func VerifyNoLeaks(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := WaitForGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// WaitForGoroutines waits up to d for every goroutine that is not part of the
// test framework or the runtime to end. It returns "" when none is left, or
// the stacks of those still running.
func WaitForGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaked := interesting()
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			sort.Strings(leaked)
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CheckGoroutines fails t if, within a few seconds, the goroutines that are
// not the test framework's have not come back to at most base. Take base
// from CountGoroutines before the work that should leave nothing behind.
func CheckGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := len(interesting())
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: got %d, want at most %d:\n%s", n, base, strings.Join(interesting(), "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CountGoroutines returns the number of goroutines that are not part of the
// test framework or the runtime.
func CountGoroutines() int { return len(interesting()) }

// interesting returns the stacks of the goroutines that a test may leak.
func interesting() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !ignored(g) {
			out = append(out, g)
		}
	}
	return out
}

// ignored reports whether goroutine stack g belongs to the test framework,
// the runtime, or the goroutine asking.
func ignored(g string) bool {
	if strings.Contains(g, "testutil.interesting") {
		return true
	}
	lines := strings.SplitN(g, "\n", 3)
	if len(lines) < 2 {
		return true
	}
	top := lines[1]
	for _, p := range []string{"testing.", "os/signal.", "runtime.", "internal/synctest."} {
		if strings.HasPrefix(top, p) && !strings.Contains(g, "rpcws") {
			return true
		}
	}
	return false
}
