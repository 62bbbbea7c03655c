package interop_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rpcws/rpcws/interop/refserver"
)

// The reference server serves the client module, its types and the demo page from
// the embedded js.Files, with the content types browsers insist on for modules.
func TestServedFiles(t *testing.T) {
	t.Parallel()
	_, hs := startRef(t, nil)
	cases := []struct {
		path, file, contentType string
	}{
		{"/", "index.html", "text/html"},
		{"/rpcws.js", "rpcws.js", "text/javascript"},
		{"/rpcws.d.ts", "rpcws.d.ts", ""},
		{"/demo.js", "demo.js", "text/javascript"},
		{"/demo.css", "demo.css", "text/css"},
	}
	for _, tc := range cases {
		resp, err := http.Get(hs.URL + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, error %v", tc.path, resp.StatusCode, err)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.contentType)
		}
		want, err := os.ReadFile(filepath.Join(jsDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != string(want) {
			t.Errorf("GET %s: body differs from interop/js/%s", tc.path, tc.file)
		}
	}
}

// The demo page, used in each browser as a person would: it connects, runs the lesson's
// exercise (replies out of order, one timeout, its late reply marked as dropped),
// sends a request from the form and shows the events it pushes, and shows the error
// event of a bad frame.
func TestDemoPage(t *testing.T) {
	t.Parallel()
	ref := refserver.New(nil)
	reports := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.Handle("/test/", http.FileServerFS(os.DirFS(jsDir)))
	mux.Handle("POST /report", reportHandler(reports))
	mux.Handle("/", ref)
	hs := serveRPC(t, mux, ref.Shutdown)

	eachBrowser(t, func(t *testing.T, open openPage) {
		checkDemoReport(t, open(t, hs.URL+"/test/demo-check.html", reports, time.Minute), wsURL(hs, "/rpc"))
	})
}

// checkDemoReport checks what test/demo-check.html saw on the demo page that talks to
// the server at rpcURL.
func checkDemoReport(t *testing.T, body []byte, rpcURL string) {
	t.Helper()
	var rep struct {
		Fatal, ConnText, ErrorEvent, Pending string
		Lesson                               [][2]string
		Ticks, Errors                        []string
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("the check page's report: %v\n%s", err, body)
	}
	if rep.Fatal != "" {
		t.Fatalf("the check page failed: %s", rep.Fatal)
	}
	if want := "connected · " + rpcURL; rep.ConnText != want {
		t.Errorf("connection badge = %q, want %q", rep.ConnText, want)
	}
	// demo.sleep 700, 100, 4000 (3 s timeout), 500, 300: replies arrive by duration.
	wantLesson := [][2]string{
		{"ok", "✓ arrived 4th"}, {"ok", "✓ arrived 1st"}, {"timeout", "timed out"},
		{"ok", "✓ arrived 3rd"}, {"ok", "✓ arrived 2nd"},
	}
	if !reflect.DeepEqual(rep.Lesson, wantLesson) {
		t.Errorf("lesson rows = %q, want %q", rep.Lesson, wantLesson)
	}
	wantTicks := []string{`{"n":5}`, `{"n":4}`, `{"n":3}`, `{"n":2}`, `{"n":1}`} // newest first
	if !reflect.DeepEqual(rep.Ticks, wantTicks) {
		t.Errorf("events = %q, want %q", rep.Ticks, wantTicks)
	}
	if rep.ErrorEvent != "ParseError" {
		t.Errorf("error event = %q, want ParseError", rep.ErrorEvent)
	}
	if rep.Pending != "0 pending" {
		t.Errorf("pending count = %q, want 0 pending", rep.Pending)
	}
	for _, e := range rep.Errors {
		t.Errorf("page error: %s", e)
	}
}
