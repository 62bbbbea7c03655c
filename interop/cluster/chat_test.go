package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpcws/rpcws/internal/testutil"
	"github.com/rpcws/rpcws/rpcws"
)

// chatCheck is a page that loads the chat (/chat/) in a frame, uses it as a
// person would, and POSTs what it shows to /report: once the page's own
// message is in the room ("ready"), once the messages the test sent while
// the replica was down are in too ("done"), and once, the room lost, it
// joined again and its new message came back ("rejoined").
const chatCheck = `<!doctype html>
<meta charset="utf-8">
<title>chat check</title>
<iframe id="chat" src="/chat/?user=page&room=r" width="1100" height="700"></iframe>
<script type="module">
  const report = (body) => fetch('/report', { method: 'POST', body: JSON.stringify(body) });
  const frame = document.getElementById('chat');
  const errors = [];
  const until = (doc, check) => new Promise((resolve) => {
    if (check()) return resolve();
    const mo = new MutationObserver(() => { if (check()) { mo.disconnect(); resolve(); } });
    mo.observe(doc.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  try {
    await new Promise((resolve) => frame.addEventListener('load', resolve, { once: true }));
    const win = frame.contentWindow, doc = frame.contentDocument;
    win.addEventListener('error', (e) => errors.push(e.message));
    win.addEventListener('unhandledrejection', (e) => errors.push(String(e.reason)));
    const $ = (id) => doc.getElementById(id);
    const texts = () => [...doc.querySelectorAll('#messages .message .text')].map((e) => e.textContent);
    const state = () => ({ state: $('conn').dataset.state, conn: $('conn-text').textContent, members: $('member-count').textContent });

    await until(doc, () => $('conn').dataset.state === 'open');
    $('text').value = 'hello from the page';
    $('send').requestSubmit();
    await until(doc, () => texts().includes('hello from the page'));
    await report({ stage: 'ready', messages: texts(), ...state(), errors });

    await until(doc, () => texts().includes('missed 5') && $('conn').dataset.state === 'open');
    await report({ stage: 'done', messages: texts(), ...state(), errors });

    // The replica comes back with nothing of the room: the page joins again.
    const logs = () => [...$('log').children].map((e) => e.textContent);
    await until(doc, () => logs().some((l) => l.endsWith('joining again')) && $('conn').dataset.state === 'open');
    $('text').value = 'hello again';
    $('send').requestSubmit();
    await until(doc, () => texts().includes('hello again'));
    await report({ stage: 'rejoined', messages: texts(), ...state(), errors });
  } catch (err) {
    await report({ stage: 'failed', errors: [...errors, String(err)] });
  }
</script>
`

// chatReport is what the check page POSTs.
type chatReport struct {
	Stage    string
	Messages []string
	State    string
	Conn     string
	Members  string
	Errors   []string
}

// The chat page, in headless Chromium and Firefox ESR, survives the
// restart of the replica it is on: it shows the room's scrollback, sends a
// message, loses its replica while another replica's client sends five
// more, and once its replica is back shows all of them, in order, once
// each, recovered by the JS client alone. When its replica comes back with
// nothing of the room, the page joins it again.
func TestChatSurvivesRestart(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t *testing.T, page string)
	}{{"chromium", runChromium}, {"firefox", runFirefox}} {
		t.Run(b.name, func(t *testing.T) { chatSurvivesRestart(t, b.open) })
	}
}

func chatSurvivesRestart(t *testing.T, open func(t *testing.T, page string)) {
	reports := make(chan chatReport, 4)
	wrap := func(next http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/", next)
		mux.HandleFunc("GET /chat-check.html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, chatCheck)
		})
		mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
			var rep chatReport
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rep); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			select {
			case reports <- rep:
			default:
			}
			w.WriteHeader(http.StatusNoContent)
		})
		return mux
	}
	var bus rpcws.MemoryBus
	page := startMemNodeWrapped(t, &bus, memOptions(), wrap)
	other := startMemNode(t, &bus, memOptions())
	bob := dialPublisher(t, other.URL()+"?user=bob")
	say := func(text string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		args := map[string]any{"topic": "r", "data": map[string]string{"user": "bob", "text": text}}
		if err := bob.CallContext(ctx, "Topic.Publish", args, new(json.RawMessage)); err != nil {
			t.Fatal(err)
		}
	}
	say("before")

	open(t, "http://"+hostOf(page.URL())+"/chat-check.html")
	rep := awaitReport(t, reports, "ready")
	if want := []string{"before", "hello from the page"}; !slices.Equal(rep.Messages, want) {
		t.Fatalf("the page shows %q, want %q", rep.Messages, want)
	}
	if rep.Members != "1" {
		t.Errorf("the page shows %s members, want 1", rep.Members)
	}

	page.Term(t)
	for i := 1; i <= 5; i++ {
		say(fmt.Sprintf("missed %d", i))
	}
	page.Start(t)
	rep = awaitReport(t, reports, "done")
	want := []string{"before", "hello from the page", "missed 1", "missed 2", "missed 3", "missed 4", "missed 5"}
	if !slices.Equal(rep.Messages, want) || len(rep.Errors) > 0 {
		t.Errorf("after the restart the page shows %q, errors %q; want %q", rep.Messages, rep.Errors, want)
	}
	if !strings.Contains(rep.Conn, "recovered") {
		t.Errorf("the page's connection says %q, want it recovered", rep.Conn)
	}

	// Its replica restarts on a bus of its own: the session and the room's
	// history are gone, and the page, told so, joins the room again.
	page.Term(t)
	page.bus = new(rpcws.MemoryBus)
	page.Start(t)
	rep = awaitReport(t, reports, "rejoined")
	if want := append(want, "hello again"); !slices.Equal(rep.Messages, want) || len(rep.Errors) > 0 {
		t.Errorf("after a restart that lost the room the page shows %q, errors %q; want %q", rep.Messages, rep.Errors, want)
	}
}

// awaitReport waits for the check page's report of stage.
func awaitReport(t *testing.T, reports <-chan chatReport, stage string) chatReport {
	t.Helper()
	select {
	case rep := <-reports:
		if rep.Stage != stage {
			t.Fatalf("the check page reports %+v, want stage %s", rep, stage)
		}
		return rep
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s report from the check page within 30 s", stage)
	}
	return chatReport{}
}

// runChromium opens page in headless Chromium, in a process group of its
// own that is killed at cleanup.
func runChromium(t *testing.T, page string) {
	t.Helper()
	chromium := needProgram(t, "chromium")
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-quic", "--no-first-run", "--disable-breakpad", "--enable-logging=stderr", "--v=0", "--user-data-dir="+t.TempDir(), page)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("chromium's output:\n%s", logs.String())
		}
	})
}

// needProgram returns the path of a program the test needs, or skips the
// test without it (fails it when CI is set).
func needProgram(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI needs it (Debian: apt-get install %s)", name, name)
	}
	t.Skipf("%s is not installed (Debian: apt-get install %s); set CI to make this a failure", name, name)
	return ""
}

// runFirefox opens page in headless Firefox ESR, driven over WebDriver BiDi
// by interop/js's suite/browse.mjs (puppeteer-core, which npm ci installs
// there), and closes it at cleanup.
func runFirefox(t *testing.T, page string) {
	t.Helper()
	firefox := needProgram(t, "firefox-esr")
	node := needProgram(t, "node")
	const jsDir = "../js"
	if _, err := os.Stat(jsDir + "/node_modules/puppeteer-core/package.json"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("interop/js/node_modules/puppeteer-core is missing, and CI needs it: npm ci --prefix interop/js")
		}
		t.Skipf("interop/js/node_modules/puppeteer-core is missing (npm ci --prefix interop/js); set CI to make this a failure")
	}
	cmd := exec.Command(node, "suite/browse.mjs", "firefox", firefox, page)
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir()) // the profile goes there
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting suite/browse.mjs: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		stdin.Close() // browse.mjs closes Firefox, then exits
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("suite/browse.mjs did not close Firefox within 30 s: killing both")
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			// Firefox runs in a process group of its own: browse.mjs told its pid.
			var pid int
			for _, line := range strings.Split(logs.String(), "\n") {
				if _, err := fmt.Sscanf(line, "PID %d", &pid); err == nil && pid > 0 {
					syscall.Kill(-pid, syscall.SIGKILL)
				}
			}
		}
		if t.Failed() {
			t.Logf("suite/browse.mjs's output:\n%s", logs.String())
		}
	})
}
