package readme_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildProgram builds the program in dir (relative to this package) into a
// temporary directory and returns its path.
func buildProgram(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./%s: %v\n%s", dir, err, out)
	}
	return bin
}

var servingRE = regexp.MustCompile(`serving (\S+)`)

// startProgram starts bin in dir with args and returns the address it logs
// in its "serving URL" line; the process is killed at cleanup.
func startProgram(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		io.Copy(io.Discard, stderr)
		close(found)
	}()
	select {
	case url, ok := <-found:
		if !ok {
			t.Fatalf("%s exited without a serving line", bin)
		}
		return url
	case <-time.After(30 * time.Second):
		t.Fatalf("%s logged no serving line in 30 s", bin)
		return ""
	}
}

func get(t *testing.T, url string) (string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp.Header.Get("Content-Type"), string(body)
}

// The README's server, built as pasted, serves its page and the JavaScript
// client, and the README's Go client, run against it, prints what its
// comments say.
func TestServerAndClientPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the build of the README's programs")
	}
	server := buildProgram(t, "server")
	client := buildProgram(t, "client")
	base := startProgram(t, server, "server", "-addr", "127.0.0.1:0") // http://127.0.0.1:PORT/

	if _, page := get(t, base); !strings.Contains(page, `import { connect } from "/rpcws.js";`) {
		t.Errorf("GET / is not the page of server/index.html:\n%s", page)
	}
	if ctype, src := get(t, base+"rpcws.js"); !strings.HasPrefix(ctype, "text/javascript") || !strings.Contains(src, "export async function connect(") {
		t.Errorf("GET /rpcws.js: %s, not the client", ctype)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, client, "-url", "ws"+strings.TrimPrefix(base, "http")+"rpc")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the client: %v\n%s", err, out)
	}
	if want := "Ada Lovelace <nil>\nNotFound no user with id \"7\"\n"; string(out) != want {
		t.Errorf("the client printed\n%s\nwant\n%s", out, want)
	}
	t.Run("page", func(t *testing.T) { runPage(t, base) })
}

var moduleRE = regexp.MustCompile(`(?s)<script type="module">(.*)</script>`)

// runPage runs the module script of server/index.html in Node against the
// server at base, with the page's document and location stood in for, and
// checks what it writes into the page.
func runPage(t *testing.T, base string) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not found, and CI is set: apt-get install -y nodejs")
		}
		t.Skip("node not found; skipping the page's script (apt-get install -y nodejs)")
	}
	html, err := os.ReadFile(filepath.Join("server", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	m := moduleRE.FindSubmatch(html)
	if m == nil {
		t.Fatal("server/index.html has no module script")
	}
	client, err := filepath.Abs(filepath.Join(root, "interop", "js", "rpcws.js"))
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Replace(string(m[1]), `"/rpcws.js"`, strconv.Quote("file://"+filepath.ToSlash(client)), 1)
	dir := t.TempDir()
	page := filepath.Join(dir, "page.mjs")
	if err := os.WriteFile(page, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	runner := `globalThis.location = { host: process.argv[1] };
const out = { textContent: "" };
globalThis.document = { getElementById: (id) => (id === "out" ? out : null) };
await import(process.argv[2]);
process.stdout.write(out.textContent);
process.exit(0);`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	got, err := exec.CommandContext(ctx, node, "--experimental-websocket", "--input-type=module", "-e", runner, host, "file://"+filepath.ToSlash(page)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, got)
	}
	want := "user.get → {\"id\":\"123\",\"name\":\"Ada Lovelace\"}\nuser.get 7 → NotFound: no user with id \"7\"\n"
	if string(got) != want {
		t.Errorf("the page shows\n%s\nwant\n%s", got, want)
	}
}
