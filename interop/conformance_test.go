package interop_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/engines"
	"github.com/rpcws/rpcws/internal/testutil"
)

// conformance runs `node conformance.mjs args...` and returns its standard output and
// exit code. It does not fail the test on a non-zero exit: callers decide.
func conformance(t *testing.T, args ...string) (string, int) {
	t.Helper()
	node := needNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := command(ctx, jsDir, node, append([]string{"conformance.mjs"}, args...)...)
	cmd.Env = os.Environ()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("node conformance.mjs %s\n%s%s", strings.Join(args, " "), out, stderr.String())
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

// A record is one line of `conformance.mjs --json`.
type record struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Rule    rule   `json:"rule"`
	Verdict string `json:"verdict"`
	Detail  string `json:"detail"`
}

// A rule is a rule of PROTOCOL.md as a record names it.
type rule struct {
	Name    string `json:"name"`
	Section string `json:"section"`
	Text    string `json:"text"`
}

// records runs conformance.mjs --json with args and returns its records by check
// name, and its exit code.
func records(t *testing.T, args ...string) (map[string]record, int) {
	t.Helper()
	out, code := conformance(t, append([]string{"--json"}, args...)...)
	recs := make(map[string]record)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("--json wrote a line that is not a record: %q: %v", sc.Text(), err)
		}
		if r.Name == "" || r.Rule.Section == "" || r.Rule.Text == "" || r.Verdict == "" {
			t.Errorf("record without name, rule or verdict: %s", sc.Text())
		}
		if _, dup := recs[r.Name]; dup {
			t.Errorf("check %s reported twice", r.Name)
		}
		recs[r.Name] = r
	}
	return recs, code
}

// wantAllPass fails the test unless every check passed, or was skipped for one of the
// reasons that allowed accepts (a substring of the detail).
func wantAllPass(t *testing.T, recs map[string]record, code int, allowed ...string) {
	t.Helper()
	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	for name, r := range recs {
		switch r.Verdict {
		case "pass":
		case "skip":
			ok := false
			for _, a := range allowed {
				ok = ok || strings.Contains(r.Detail, a)
			}
			if !ok {
				t.Errorf("%s: skipped (%s), want pass", name, r.Detail)
			}
		default:
			t.Errorf("%s: %s, want pass\n  rule: %s: %s\n  %s", name, r.Verdict, r.Rule.Section, r.Rule.Text, r.Detail)
		}
	}
	for _, name := range transcriptFiles(t) {
		check := "transcript/" + strings.TrimSuffix(name, ".txt")
		if _, ok := recs[check]; !ok {
			t.Errorf("%s: not reported", check)
		}
	}
	if n := len(recs); n < 30 {
		t.Errorf("%d checks reported, want the whole suite (30 or more)", n)
	}
}

// deviation checks that check failed on rule with a detail that contains why, a
// foreign server's known deviation from PROTOCOL.md, and takes it out of recs. It
// returns the exit code the run would have had without it.
func deviation(t *testing.T, recs map[string]record, code int, check, rule, why string) int {
	t.Helper()
	r, ok := recs[check]
	if !ok || r.Verdict != "fail" || r.Rule.Name != rule || !strings.Contains(r.Detail, why) {
		t.Errorf("%s: %s on rule %s (%s); want the known failure on rule %s: %s", check, r.Verdict, r.Rule.Name, r.Detail, rule, why)
	}
	delete(recs, check)
	for _, r := range recs {
		if r.Verdict == "fail" {
			return code
		}
	}
	if code == 1 {
		return 0
	}
	return code
}

// The reference server passes every check at both levels, the slow one too unless
// -short.
func TestConformanceReferenceServer(t *testing.T) {
	t.Parallel()
	_, hs := startRef(t, nil)
	url := wsURL(hs, "/rpc")
	for _, level := range []string{"default", "strict"} {
		t.Run(level, func(t *testing.T) {
			args := []string{url}
			if level == "strict" {
				args = append([]string{"--strict"}, args...)
			}
			if testing.Short() || level == "strict" { // the slow check once is enough
				args = append([]string{"--quick"}, args...)
			}
			recs, code := records(t, args...)
			wantAllPass(t, recs, code, "slow", noHistory)
			wantHistorySkipped(t, recs)
		})
	}
}

// noHistory is the reason the history level gives for skipping a server that keeps no
// history.
const noHistory = "the target keeps no history: its first frame is not rpcws.session"

// wantHistorySkipped fails the test unless every check of the history level was
// reported, and skipped for want of history.
func wantHistorySkipped(t *testing.T, recs map[string]record) {
	t.Helper()
	var n int
	for name, r := range recs {
		if !strings.HasPrefix(name, "history/") {
			continue
		}
		n++
		if r.Verdict != "skip" || r.Detail != noHistory {
			t.Errorf("%s: %s (%s); want skip: %s", name, r.Verdict, r.Detail, noHistory)
		}
	}
	if n < 10 {
		t.Errorf("%d checks of the history level reported, want them all (10 or more)", n)
	}
}

// The plain output: one line per check naming it, the rule of each failure, and a
// closing count; the exit code says whether anything failed.
func TestConformanceOutput(t *testing.T) {
	t.Parallel()
	url := startForeign(t)
	out, code := conformance(t, "--only", "request-reply,ticks", "--only", "transcript/id_*", url)
	for _, want := range []string{
		"\nPASS  request-reply  request and reply: user.get, user.save, demo.echo (",
		"\nSKIP  ticks  events: demo.ticks pushes its reply, then N demo.tick events in order\n      target lacks demo.ticks\n",
		"\nPASS  transcript/id_kinds  transcript id_kinds.txt (",
		"\nconformance: 2 passed, 0 failed, 1 skipped\n",
	} {
		if !strings.Contains("\n"+out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != 0 {
		t.Errorf("exit code = %d, want 0 (nothing failed)", code)
	}

	// --skip leaves out what --only lets in; a failure shows its rule and makes the exit
	// code 1 (the Node server writes its own bytes: the strict level fails it).
	out, code = conformance(t, "--strict", "--only", "transcript/*", "--skip", "transcript/id_kinds", url)
	if !regexp.MustCompile(`(?m)^FAIL  transcript/bad_request  transcript bad_request.txt \(\d+ ms\)\n      rule: strict level`).MatchString(out) {
		t.Errorf("--strict against the Node server: want transcript/bad_request to fail on the strict level")
	}
	if n := len(regexp.MustCompile(`(?m)^(PASS|FAIL|SKIP)  `).FindAllString(out, -1)); n != 12 {
		t.Errorf("--only transcript/* --skip transcript/id_kinds: %d checks ran, want 12", n)
	}
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}

	if _, code := conformance(t, "--only", "no-such-check", url); code != 1 {
		t.Errorf("no check matched: exit code = %d, want 1", code)
	}
	if _, code := conformance(t, "--no-such-flag", url); code != 2 {
		t.Errorf("unknown flag: exit code = %d, want 2", code)
	}

	// --list names every check and its rule without running any.
	out, code = conformance(t, "--list", "--json")
	var n int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Name == "" || r.Rule.Text == "" {
			t.Errorf("--list --json line %q: %v", line, err)
		}
		n++
	}
	if code != 0 || n < 30 {
		t.Errorf("--list: %d checks, exit code %d; want 30 or more, 0", n, code)
	}
}

// Every rule a check names is quoted from PROTOCOL.md.
func TestConformanceRulesQuotePROTOCOL(t *testing.T) {
	t.Parallel()
	out, _ := conformance(t, "--list", "--json")
	src, err := os.ReadFile(filepath.Join("..", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	space := regexp.MustCompile(`\s+`)
	protocol := space.ReplaceAllString(string(src), " ")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(protocol, space.ReplaceAllString(r.Rule.Text, " ")) {
			t.Errorf("%s: rule %s is not quoted from PROTOCOL.md: %q", r.Name, r.Rule.Name, r.Rule.Text)
		}
		if !strings.Contains(protocol, "## "+r.Rule.Section+" ") {
			t.Errorf("%s: rule %s names section %q, which PROTOCOL.md does not have", r.Name, r.Rule.Name, r.Rule.Section)
		}
	}
}

// The foreign servers, written from the lesson in Node and in Python, pass the default
// level; what they lack is skipped, not failed.
func TestConformanceForeignServers(t *testing.T) {
	t.Parallel()
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		recs, code := records(t, "--quick", startForeign(t))
		wantAllPass(t, recs, code, "slow", "target lacks", noHistory)
		wantHistorySkipped(t, recs)
		for _, check := range []string{"ticks", "invalid-params", "transcript/ticks"} {
			if r := recs[check]; r.Verdict != "skip" || !strings.Contains(r.Detail, "target lacks demo.") {
				t.Errorf("%s: %s (%s), want skip: the Node server lacks the service", check, r.Verdict, r.Detail)
			}
		}
	})
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		url := startPython(t, pythonServer)
		recs, code := records(t, "--quick", url)
		// aiohttp fails a connection whose text frame is not UTF-8 (1007) before the
		// server's code sees the frame: a known deviation, kept known.
		code = deviation(t, recs, code, "utf8", "utf8", "closed the connection (1007)")
		wantAllPass(t, recs, code, "slow", noHistory)
		wantHistorySkipped(t, recs)

		// Its frames are spelled in Python's words (", " and ": " between fields,
		// non-ASCII escaped): the strict level, for this project's servers, says so.
		recs, code = records(t, "--strict", "--only", "transcript/echo_values", url)
		if r := recs["transcript/echo_values"]; code != 1 || r.Verdict != "fail" || r.Rule.Name != "strict" {
			t.Errorf("--strict against the Python server: %+v, exit code %d; want a failure of the strict level", r, code)
		}
	})
}

// The history level against the reference cluster server (interop/cluster, built
// from this tree): with history, its default, the whole suite passes, the history
// level included, with the in-process broker, and the level passes through Redis and
// NATS; with -history-size 0 the level is skipped, saying why, and fails when
// --history requires it.
func TestConformanceHistoryLevel(t *testing.T) {
	t.Parallel()
	needNode(t)
	bin := buildCluster(t)
	t.Run("history", func(t *testing.T) {
		t.Parallel()
		url := startCluster(t, bin)
		recs, code := records(t, "--quick", "--history", url)
		wantAllPass(t, recs, code, "slow")
		wantHistoryPass(t, recs, code)
	})
	// History in the engines: the level through the Redis and NATS brokers.
	for _, kind := range []string{engines.Redis, engines.NATS} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			url := startCluster(t, bin, "-broker", engines.StartT(t, kind).URL())
			recs, code := records(t, "--history", "--only", "history/*", url)
			wantHistoryPass(t, recs, code)
		})
	}
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		url := startCluster(t, bin, "-history-size", "0")
		recs, code := records(t, "--only", "history/*", url)
		if code != 0 {
			t.Errorf("exit code = %d, want 0 (a skipped level fails nothing)", code)
		}
		wantHistorySkipped(t, recs)

		recs, code = records(t, "--history", "--only", "history/*", url)
		if code != 1 {
			t.Errorf("--history: exit code = %d, want 1", code)
		}
		for name, r := range recs {
			if r.Verdict != "fail" || r.Rule.Name != "session" {
				t.Errorf("--history: %s: %s on rule %s (%s), want a failure on rule session", name, r.Verdict, r.Rule.Name, r.Detail)
			}
		}
	})
}

// wantHistoryPass fails the test unless the run exited 0 and every check of the
// history level, all of them reported, passed.
func wantHistoryPass(t *testing.T, recs map[string]record, code int) {
	t.Helper()
	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	var n int
	for name, r := range recs {
		if !strings.HasPrefix(name, "history/") {
			continue
		}
		n++
		if r.Verdict != "pass" {
			t.Errorf("%s: %s, want pass\n  rule: %s: %s\n  %s", name, r.Verdict, r.Rule.Section, r.Rule.Text, r.Detail)
		}
	}
	if n < 10 {
		t.Errorf("%d checks of the history level reported, want them all (10 or more)", n)
	}
}

// The history level against the scripted server of interop/js/test/history-server.mjs:
// it passes a server that keeps the rules and fails each of its faults on the rule the
// fault breaks.
func TestConformanceHistoryLevelScripted(t *testing.T) {
	t.Parallel()
	needNodeModules(t)
	nodeTest(t, 2*time.Minute, nil, "test/history.test.mjs")
}

// buildCluster builds the reference cluster server (interop/cluster, a nested module
// of the workspace) into a temporary directory and returns the binary's path.
func buildCluster(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := command(ctx, ".", "go", "build", "-o", bin, "./cluster").CombinedOutput(); err != nil {
		t.Fatalf("go build ./interop/cluster: %v\n%s", err, out)
	}
	return bin
}

// clusterListening is the line the cluster server logs once it listens.
var clusterListening = regexp.MustCompile(`websocket=(ws://127\.0\.0\.1:[0-9]+/rpc)`)

// startCluster starts the cluster server's binary with args on a free port for the
// length of the test, and returns its WebSocket URL.
func startCluster(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, kill := context.WithCancel(context.Background())
	cmd := command(ctx, ".", bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		kill()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatal(err)
	}
	var log testutil.SyncBuffer
	urls := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.Write(append(sc.Bytes(), '\n'))
			if m := clusterListening.FindSubmatch(sc.Bytes()); m != nil {
				select {
				case urls <- string(m[1]):
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		kill()
		<-done
		cmd.Wait()
		if t.Failed() {
			t.Logf("the cluster server's log:\n%s", log.String())
		}
	})
	select {
	case url := <-urls:
		return url
	case <-done:
		t.Fatalf("the cluster server exited before it listened:\n%s", log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the cluster server did not listen within 30 s:\n%s", log.String())
	}
	return ""
}

// A fault is one protocol fault injected into a copy of the Python server: the text
// to replace, what replaces it, and the rule that the default level must name.
type fault struct {
	name     string
	old, new string
	rule     string
}

var faults = []fault{
	{"reply type lower-cased",
		`"type": f"{typ}.response"`, `"type": f"{typ.lower()}.response"`, "typeAsSent"},
	{"numeric ids turned into strings",
		"            if rid == \"null\":\n",
		"            if rid is not None and rid[:1] in \"-0123456789\":\n                rid = json.dumps(rid)\n            if rid == \"null\":\n",
		"idEcho"},
	{"the connection closed on a parse error",
		`await conn.send_json({"type": "error", "code": "ParseError", "message": str(e)})` + "\n",
		`await conn.send_json({"type": "error", "code": "ParseError", "message": str(e)})` + "\n                await ws.close()\n",
		"staysOpen"},
	{"a reply sent to a notification",
		"            return  # a notification: nothing goes back\n", "            rid = \"null\"\n", "notification"},
	{"fields in the wrong order",
		`{"id": Raw(rid), "type": f"{typ}.response", "data": result}`, `{"type": f"{typ}.response", "id": Raw(rid), "data": result}`,
		"fieldOrder"},
	{"requests served one at a time",
		"spawn(handle(conn, msg, rid))", "await handle(conn, msg, rid)", "concurrent"},
	{"an error without a code",
		`"type": "error", "code": type(e).__name__, "message": str(e)}`, `"type": "error", "message": str(e)}`, "errorShape"},
	{"a reply id re-encoded",
		`return msg, raw_members(text).get("id")`, `return msg, json.dumps(msg["id"]) if "id" in msg else None`, "idEcho"},
}

// Each fault, injected alone into a copy of the Python server, fails the default level,
// and a failing check names the rule the fault breaks.
func TestConformanceCatchesFaults(t *testing.T) {
	t.Parallel()
	needPython(t)
	src, err := os.ReadFile(pythonServer)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			if n := strings.Count(string(src), f.old); n != 1 {
				t.Fatalf("the Python server has %d copies of %q, want 1: update the fault to the server's code", n, f.old)
			}
			path := filepath.Join(t.TempDir(), "server.py")
			if err := os.WriteFile(path, []byte(strings.Replace(string(src), f.old, f.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			// The slow checks are left out: they say nothing the others do not.
			recs, code := records(t, "--quick", "--skip", "lesson-exercise*,concurrent-1000", startPython(t, path))
			if code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			var named []string
			var failed int
			for name, r := range recs {
				if r.Verdict != "fail" {
					continue
				}
				failed++
				if r.Rule.Name == f.rule {
					named = append(named, name)
				}
			}
			if len(named) == 0 {
				t.Errorf("%d checks failed, none naming rule %s", failed, f.rule)
			} else {
				t.Logf("checks failing on rule %s: %s", f.rule, strings.Join(named, ", "))
			}
		})
	}
}

// The published package works as its README says: packed with npm pack (which
// bundles the transcripts), installed into an empty project without the network, its
// client imports as "rpcws" in Node, with its types beside it, and calls the reference
// server; and `npx rpcws-conformance` passes the reference server.
func TestConformancePackage(t *testing.T) {
	t.Parallel()
	needNode(t)
	npm := need(t, "npm", "apt-get install -y npm")
	// Pack a copy laid out as the repository is, so that packing leaves the tree alone.
	root := t.TempDir()
	copyTree(t, jsDir, filepath.Join(root, "interop", "js"), "node_modules", "transcripts")
	copyTree(t, transcriptsDir, filepath.Join(root, "testdata", "transcripts"))
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := command(ctx, dir, name, args...)
		cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_audit=false", "npm_config_fund=false")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	pkg := t.TempDir()
	run(filepath.Join(root, "interop", "js"), npm, "pack", "--silent", "--pack-destination", pkg)
	tarballs, _ := filepath.Glob(filepath.Join(pkg, "*.tgz"))
	if len(tarballs) != 1 {
		t.Fatalf("npm pack made %v, want one tarball", tarballs)
	}
	project := t.TempDir()
	run(project, npm, "install", "--offline", "--silent", tarballs[0])

	_, hs := startRef(t, nil)
	if _, err := os.Stat(filepath.Join(project, "node_modules", "rpcws", "rpcws.d.ts")); err != nil {
		t.Errorf("the installed package has no types: %v", err)
	}
	script := `import { connect, RpcError } from "rpcws";
const client = await connect(process.argv[1]);
const echoed = await client.request("demo.echo", { hello: "npm" });
const failed = await client.request("user.get", { id: "nobody" }).catch((e) => e);
console.log(JSON.stringify(echoed), failed instanceof RpcError, failed.code);
client.close();`
	got := run(project, "node", "--experimental-websocket", "--input-type=module", "-e", script, wsURL(hs, "/rpc"))
	if want := `{"hello":"npm"} true NotFound`; strings.TrimSpace(got) != want {
		t.Errorf("the installed client printed %q, want %q", got, want)
	}
	out := run(project, "npx", "--offline", "rpcws-conformance", "--quick", "--json", wsURL(hs, "/rpc"))
	var pass, transcripts int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r record
		if !strings.HasPrefix(line, "{") { // the closing count, on stderr
			continue
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not a record: %q", line)
		}
		switch {
		case r.Verdict == "fail":
			t.Errorf("%s: fail: %s", r.Name, r.Detail)
		case r.Verdict == "pass" && strings.HasPrefix(r.Name, "transcript/"):
			transcripts++
			fallthrough
		case r.Verdict == "pass":
			pass++
		}
	}
	if want := len(transcriptFiles(t)); transcripts != want || pass < 30 {
		t.Errorf("the installed tool passed %d checks, %d of them transcripts; want 30 or more, and all %d transcripts (bundled in the package)", pass, transcripts, want)
	}
}

// copyTree copies the regular files under src to dst, leaving out the top-level
// entries named in skip.
func copyTree(t *testing.T, src, dst string, skip ...string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		for _, s := range skip {
			if rel == s {
				return filepath.SkipDir
			}
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
