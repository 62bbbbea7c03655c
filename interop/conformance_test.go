package interop_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// conformance runs `node conformance.mjs args...` and returns its output and exit
// code. It does not fail the test on a non-zero exit: callers decide.
func conformance(t *testing.T, args ...string) (string, int) {
	t.Helper()
	node := needNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := command(ctx, jsDir, node, append([]string{"conformance.mjs"}, args...)...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	t.Logf("node conformance.mjs %s\n%s", strings.Join(args, " "), out)
	if ctx.Err() != nil {
		t.Fatalf("conformance.mjs did not finish within 2 minutes")
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("conformance.mjs: %v", err)
	}
	return string(out), 0
}

// checkLine matches one result line of conformance.mjs.
var checkLine = regexp.MustCompile(`(?m)^(PASS|FAIL|SKIP)  (scenario|transcript) (.+?)(?: \(\d+ ms\))?$`)

// verdicts maps "kind name" to PASS, FAIL or SKIP.
func verdicts(out string) map[string]string {
	v := make(map[string]string)
	for _, m := range checkLine.FindAllStringSubmatch(out, -1) {
		v[m[2]+" "+m[3]] = m[1]
	}
	return v
}

// The reference server passes every conformance check, the slow one too unless -short.
func TestConformanceReferenceServer(t *testing.T) {
	t.Parallel()
	_, hs := startRef(t, nil)
	args := []string{wsURL(hs, "/rpc")}
	if testing.Short() {
		args = append([]string{"--quick"}, args...)
	}
	out, code := conformance(t, args...)
	if code != 0 {
		t.Errorf("conformance.mjs exit code = %d, want 0", code)
	}
	v := verdicts(out)
	for check, verdict := range v {
		slow := strings.Contains(check, "15 s")
		switch {
		case verdict == "PASS":
		case verdict == "SKIP" && slow && testing.Short():
		default:
			t.Errorf("%s: %s, want PASS", check, verdict)
		}
	}
	for _, name := range transcriptFiles(t) {
		if v["transcript "+name] == "" {
			t.Errorf("transcript %s: not reported", name)
		}
	}
	if n := len(v); n < 20 {
		t.Errorf("%d checks reported, want the whole suite (20 or more)", n)
	}
	if !regexp.MustCompile(`(?m)^conformance: \d+ passed, 0 failed, \d+ skipped$`).MatchString(out) {
		t.Errorf("no closing count line with 0 failed")
	}
}

// Against a server that lacks some reference services (the foreign server has only
// user.get, user.save and demo.echo of them), checks that need the others are
// skipped, not passed; and a check that the server does not meet fails.
func TestConformanceSkipsAndFails(t *testing.T) {
	t.Parallel()
	url := startForeign(t)

	out, code := conformance(t, "--quick", "--filter", "request and reply|MethodNotFound|events: demo.ticks|transcript ticks", url)
	want := map[string]string{
		"scenario request and reply: user.get, user.save, demo.echo":                     "PASS",
		"scenario MethodNotFound: unknown services and methods, malformed types":         "PASS",
		"scenario events: demo.ticks pushes its reply, then N demo.tick events in order": "SKIP",
		"transcript ticks.txt": "SKIP",
	}
	got := verdicts(out)
	for check, verdict := range want {
		if got[check] != verdict {
			t.Errorf("%s: %q, want %s", check, got[check], verdict)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d checks, want %d: %v", len(got), len(want), got)
	}
	if !strings.Contains(out, "target lacks demo.ticks") {
		t.Errorf("the skips do not say what the target lacks")
	}
	if code != 0 {
		t.Errorf("exit code = %d, want 0 (nothing failed)", code)
	}

	// The lesson's server echoes a decoded id, not the raw text: "a\u0041" comes back
	// as "aA". The check catches it and the exit code says so.
	out, code = conformance(t, "--quick", "--filter", "ids are echoed", url)
	if v := verdicts(out); v["scenario ids are echoed as they were sent, whatever their JSON kind"] != "FAIL" {
		t.Errorf("id echo check against the foreign server: %v, want FAIL", v)
	}
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
}
