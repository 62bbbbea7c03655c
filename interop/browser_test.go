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

// The interop suite in headless Chromium: a page served beside the reference server
// runs the scenarios and transcripts with the JavaScript client and POSTs its results
// to /report, which the test reads.

// chromiumFlags are the flags every run needs here: as root there is no sandbox, and
// with no network Chromium must not try to reach its own services.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
	"--disable-breakpad", "--enable-logging=stderr", "--v=0",
}

// pageHost is the name under which Chromium loads the suite page; it resolves to
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
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel() // kills the process group
		<-exited
	}()
	select {
	case body := <-reports:
		t.Logf("chromium reported after %v", time.Since(start).Round(time.Millisecond))
		return body
	case err := <-exited:
		t.Fatalf("chromium exited before the page reported: %v\n%s", err, browserLog(logs.String()))
	case <-ctx.Done():
		t.Fatalf("no report from %s within %v\n%s", page, timeout, browserLog(logs.String()))
	}
	return nil
}

// browserLog keeps the page's console lines and Chromium's last words.
func browserLog(s string) string {
	var console []string
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines {
		if strings.Contains(l, "CONSOLE") {
			console = append(console, l)
		}
	}
	tail := lines[max(0, len(lines)-15):]
	return "console:\n" + strings.Join(console, "\n") + "\nlast lines of chromium's log:\n" + strings.Join(tail, "\n")
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
	var rep suiteReport
	body := runChromium(t, page, reports, timeout)
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
	body := runChromium(t, page, reports, time.Minute)
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
	if rep.Origin != pages.URL {
		t.Errorf("page origin = %q, want %q", rep.Origin, pages.URL)
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
