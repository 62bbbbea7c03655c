package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/interop/refserver"
)

// The interop suite in headless Chromium and Firefox ESR: a page served beside the
// reference server runs the scenarios and transcripts with the JavaScript client and
// POSTs its results to /report, which the test reads. Each browser is a subtest of its
// own; the pages are the same.

// openPage opens page in a browser and returns the first report POSTed to reports,
// within timeout. The browser and all its processes are gone before it returns.
type openPage func(t *testing.T, page string, reports <-chan []byte, timeout time.Duration) []byte

// browsers are the browsers every browser test runs in: Debian's chromium, started
// with the page's URL, and Debian's firefox-esr, driven over WebDriver BiDi.
var browsers = []struct {
	name string
	open openPage
}{
	{"chromium", runChromium},
	{"firefox", runFirefox},
}

// eachBrowser runs test once per browser, each in a subtest named after it. The
// subtests run one after the other: a browser is heavy, and the machine is small.
func eachBrowser(t *testing.T, test func(t *testing.T, open openPage)) {
	for _, b := range browsers {
		t.Run(b.name, func(t *testing.T) { test(t, b.open) })
	}
}

// chromiumFlags are the flags every run needs here: as root there is no sandbox, and
// with no network Chromium must not try to reach its own services.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
	"--disable-breakpad", "--enable-logging=stderr", "--v=0",
}

// pageHost is the name under which the browsers load the suite page; it resolves to
// 127.0.0.1 but, not being localhost or a loopback address, it is not a secure
// context: crypto.randomUUID is missing there, as on a page served over plain http
// from a LAN address, and the client must fall back to crypto.getRandomValues.
const pageHost = "rpcws.test"

// checkResult is one check in a page's report.
type checkResult struct {
	Kind, Name, Status, Reason string
	Ms                         float64
}

// suiteReport is what test/browser.html POSTs.
type suiteReport struct {
	Fatal string
	Env   struct {
		UserAgent     string
		SecureContext bool
		RandomUUID    bool
	}
	Results    []checkResult
	PageErrors []string
}

// reportHandler passes the body of the first POST to ch.
func reportHandler(ch chan<- []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case ch <- body:
		default: // a report is already in
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// transcriptsHandler serves the golden transcripts as JSON: [{name, text}].
func transcriptsHandler(t *testing.T) http.HandlerFunc {
	type transcript struct {
		Name string `json:"name"`
		Text string `json:"text"`
	}
	var list []transcript
	for _, name := range transcriptFiles(t) {
		b, err := os.ReadFile(filepath.Join(transcriptsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, transcript{name, string(b)})
	}
	body, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
}

// runChromium opens page in headless Chromium and returns the first report POSTed to
// reports, within timeout. Chromium and all its processes are killed before it returns.
func runChromium(t *testing.T, page string, reports <-chan []byte, timeout time.Duration) []byte {
	t.Helper()
	chromium := need(t, "chromium", "apt-get install -y chromium")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append(append([]string{}, chromiumFlags...),
		"--user-data-dir="+t.TempDir(),
		"--host-resolver-rules=MAP "+pageHost+" 127.0.0.1",
		page)
	cmd := command(ctx, "", chromium, args...)
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel() // kills the process group
		<-exited
	}()
	return awaitReport(t, "chromium", page, reports, exited, ctx, timeout, &logs)
}

// awaitReport waits for the first report, for the browser to exit, or for ctx to end.
func awaitReport(t *testing.T, name, page string, reports <-chan []byte, exited <-chan error, ctx context.Context, timeout time.Duration, logs *testutil.SyncBuffer) []byte {
	t.Helper()
	start := time.Now()
	select {
	case body := <-reports:
		t.Logf("%s reported after %v", name, time.Since(start).Round(time.Millisecond))
		return body
	case err := <-exited:
		t.Fatalf("%s exited before the page reported: %v\n%s", name, err, browserLog(name, logs.String()))
	case <-ctx.Done():
		t.Fatalf("no report from %s in %s within %v\n%s", page, name, timeout, browserLog(name, logs.String()))
	}
	return nil
}

// runFirefox opens page in Debian's headless Firefox ESR and returns the first report
// POSTed to reports, within timeout. suite/browse.mjs drives it over WebDriver BiDi
// with puppeteer-core (which needs no patched Firefox build), maps pageHost to
// 127.0.0.1 and prints the page's console. Firefox is closed before it returns.
func runFirefox(t *testing.T, page string, reports <-chan []byte, timeout time.Duration) []byte {
	t.Helper()
	firefox := need(t, "firefox-esr", "apt-get install -y firefox-esr")
	node := needNode(t)
	needNodePackage(t, "puppeteer-core")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := command(ctx, jsDir, node, "suite/browse.mjs", "firefox", firefox, page, pageHost)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir()) // Firefox's profile goes there, and with the test
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s suite/browse.mjs: %v", node, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		stdin.Close() // browse.mjs closes Firefox, then exits
		var err error
		select {
		case err = <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("suite/browse.mjs did not close firefox within 30 s; killing both\n%s", browserLog("firefox", logs.String()))
			cancel()
			err = <-exited
		}
		if err != nil {
			// Killed, or it failed: Firefox, in a process group of its own, may be left.
			killBrowser(logs.String())
		}
	}()
	return awaitReport(t, "firefox", page, reports, exited, ctx, timeout, &logs)
}

// killBrowser kills the process group of the browser that suite/browse.mjs started,
// whose id it printed as "PID <n>".
func killBrowser(log string) {
	for _, l := range strings.Split(log, "\n") {
		var pid int
		if _, err := fmt.Sscanf(l, "PID %d", &pid); err == nil && pid > 0 {
			killGroup(pid)
		}
	}
}

// browserLog keeps the page's console lines and the browser's last words.
func browserLog(name, s string) string {
	var console []string
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines {
		if strings.Contains(l, "CONSOLE") || strings.HasPrefix(l, "PAGEERROR") {
			console = append(console, l)
		}
	}
	tail := lines[max(0, len(lines)-15):]
	return "console:\n" + strings.Join(console, "\n") + "\nlast lines of " + name + "'s log:\n" + strings.Join(tail, "\n")
}

func TestBrowser(t *testing.T) {
	t.Parallel()
	ref := refserver.New(nil)
	tok := tokenHandler(t)
	reports := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.Handle("/rpc", ref)
	mux.Handle("/auth-rpc", tok)
	mux.Handle("GET /transcripts.json", transcriptsHandler(t))
	mux.Handle("POST /report", reportHandler(reports))
	mux.Handle("/", http.FileServerFS(os.DirFS(jsDir))) // the client, the suite, the page
	hs := serveRPC(t, mux, func(ctx context.Context) error {
		return errors.Join(ref.Shutdown(ctx), tok.Shutdown(ctx))
	})

	host := fmt.Sprintf("%s:%d", pageHost, hs.Listener.Addr().(*net.TCPAddr).Port)
	page := fmt.Sprintf("http://%s/test/browser.html?auth=%s", host, url.QueryEscape("ws://"+host+"/auth-rpc"))
	timeout := time.Minute
	if !testing.Short() {
		page += "&slow=1"
		timeout = 2 * time.Minute
	}
	eachBrowser(t, func(t *testing.T, open openPage) {
		checkSuiteReport(t, open(t, page, reports, timeout))
	})
}

// checkSuiteReport checks what test/browser.html reported: every check passed, in a
// page that is not a secure context.
func checkSuiteReport(t *testing.T, body []byte) {
	t.Helper()
	var rep suiteReport
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("the page's report: %v\n%s", err, body)
	}
	if rep.Fatal != "" {
		t.Fatalf("the page failed: %s", rep.Fatal)
	}
	t.Logf("browser: %s", rep.Env.UserAgent)

	// The page is not a secure context, so the client's ids came from the fallback.
	if rep.Env.SecureContext || rep.Env.RandomUUID {
		t.Errorf("page secure context = %v, crypto.randomUUID present = %v; want false, false (the getRandomValues fallback under test)",
			rep.Env.SecureContext, rep.Env.RandomUUID)
	}
	for _, e := range rep.PageErrors {
		t.Errorf("page error: %s", e)
	}

	seen := make(map[string]bool)
	for _, r := range rep.Results {
		seen[r.Kind+" "+r.Name] = true
		t.Run(r.Kind+" "+r.Name, func(t *testing.T) {
			switch r.Status {
			case "pass":
				t.Logf("%.0f ms", r.Ms)
			case "skip":
				if !testing.Short() || !strings.Contains(r.Name, "15 s") {
					t.Errorf("skipped (%s), want pass", r.Reason)
				}
				t.Skip(r.Reason)
			default:
				t.Errorf("%s: %s", r.Status, r.Reason)
			}
		})
	}
	for _, name := range transcriptFiles(t) {
		if !seen["transcript "+name] {
			t.Errorf("transcript %s: not reported by the page", name)
		}
	}
	if !seen["check a token travels in Sec-WebSocket-Protocol"] {
		t.Errorf("the token check was not reported by the page")
	}
	if n := len(rep.Results); n < 30 {
		t.Errorf("the page reported %d checks, want the whole suite (30 or more)", n)
	}
}

// A page from another origin may not connect, unless OriginPatterns lets it.
func TestBrowserOrigin(t *testing.T) {
	t.Parallel()
	reports := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.Handle("POST /report", reportHandler(reports))
	mux.Handle("/", http.FileServerFS(os.DirFS(jsDir)))
	pages := serve(t, mux)
	pageOrigin := pages.Listener.Addr().String() // 127.0.0.1:port

	_, refused := startRef(t, nil)
	_, allowed := startRef(t, &refserver.Options{OriginPatterns: []string{pageOrigin}})

	page := fmt.Sprintf("%s/test/origin.html?refused=%s&allowed=%s", pages.URL,
		url.QueryEscape(wsURL(refused, "/rpc")), url.QueryEscape(wsURL(allowed, "/rpc")))
	eachBrowser(t, func(t *testing.T, open openPage) {
		checkOriginReport(t, open(t, page, reports, time.Minute), pages.URL, pageOrigin)
	})
}

// checkOriginReport checks what test/origin.html, loaded from pageURL, reported.
func checkOriginReport(t *testing.T, body []byte, pageURL, pageOrigin string) {
	t.Helper()
	type attempt struct {
		Connected   bool
		Code, Error string
		User        struct{ ID, Name string }
	}
	var rep struct {
		Fatal, Origin    string
		Refused, Allowed attempt
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("the page's report: %v\n%s", err, body)
	}
	if rep.Fatal != "" {
		t.Fatalf("the page failed: %s", rep.Fatal)
	}
	if rep.Origin != pageURL {
		t.Errorf("page origin = %q, want %q", rep.Origin, pageURL)
	}
	if rep.Refused.Connected || rep.Refused.Code != "Disconnected" {
		t.Errorf("default server: connected = %v, code %q (%s); want refused, code Disconnected",
			rep.Refused.Connected, rep.Refused.Code, rep.Refused.Error)
	}
	if !rep.Allowed.Connected || rep.Allowed.User.ID != "123" {
		t.Errorf("server with OriginPatterns %q: connected = %v, user %+v (%s); want connected, user 123",
			pageOrigin, rep.Allowed.Connected, rep.Allowed.User, rep.Allowed.Error)
	}
}
