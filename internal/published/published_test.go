package published_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// root is the repository's root, from this package's directory.
const root = "../.."

const modulePath = "github.com/rpcws/rpcws"

// published are the modules the test publishes, by directory, and the
// program it builds from them in a module of its own.
var published = []string{".", "broker/redis", "broker/nats"}

const program = `package main

import (
	"fmt"
	"net/http"
	"net/rpc"

	"github.com/rpcws/rpcws/broker/nats"
	"github.com/rpcws/rpcws/broker/redis"
	"github.com/rpcws/rpcws/rpcws"
)

func main() {
	var _ rpcws.Broker = (*redis.Broker)(nil)
	var _ rpcws.Broker = (*nats.Broker)(nil)
	var _ func(string) (*redis.Broker, error) = redis.New
	var h http.Handler = rpcws.NewHandler(rpc.NewServer(), nil)
	fmt.Println("built", h != nil)
}
`

// TestInstallAsPublished publishes the modules at the version the nested
// modules require of the root, then, from an empty module outside the
// repository, runs go get for each and builds a program that imports them,
// and the README's server (internal/readme/server) as a reader pastes it.
// The third-party modules come from the local module cache, read as a
// second file:// proxy (filled first by go mod download where it lacks
// them), so that the install itself asks no server anything.
func TestInstallAsPublished(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the publish-and-install test (go get into a fresh module cache)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is needed to list the repository's files")
		}
		t.Skip("git not found: it lists the repository's files to publish")
	}
	version := requiredVersion(t, filepath.Join(root, "broker/redis/go.mod"))
	files := repoFiles(t)
	proxy := t.TempDir()
	for _, dir := range published {
		publish(t, proxy, dir, version, files)
	}

	cache := goEnv(t, "GOMODCACHE")
	app := t.TempDir()
	env := append(os.Environ(),
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GOFLAGS=-mod=mod -modcacherw",
		"GOMODCACHE="+filepath.Join(t.TempDir(), "modcache"),
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(cache, "cache", "download")),
		"GOSUMDB=off",
		"GONOSUMDB="+modulePath,
	)
	prefetch(t, filepath.Join(root, "broker/redis/go.mod"), filepath.Join(root, "broker/nats/go.mod"), filepath.Join(root, "go.mod"))

	run(t, app, env, "go", "mod", "init", "example.com/app")
	if err := os.WriteFile(filepath.Join(app, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{modulePath + "/rpcws", modulePath + "/broker/redis", modulePath + "/broker/nats"} {
		run(t, app, env, "go", "get", m+"@"+version)
	}
	// The README's server, pasted into the module as it stands, builds too.
	readmeServer, err := os.ReadFile(filepath.Join(root, "internal", "readme", "server", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(app, "server"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "server", "main.go"), readmeServer, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, app, env, "go", "build", "-o", os.DevNull, "./server")
	out := run(t, app, env, "go", "run", ".")
	if strings.TrimSpace(out) != "built true" {
		t.Fatalf("the program printed %q, want %q", out, "built true")
	}
	mod, err := os.ReadFile(filepath.Join(app, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{modulePath + " " + version, modulePath + "/broker/redis " + version} {
		if !strings.Contains(string(mod), want) {
			t.Errorf("the app's go.mod does not require %s:\n%s", want, mod)
		}
	}
}

var requireRE = regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/rpcws/rpcws (v\S+)`)

// requiredVersion returns the version of the root module that the go.mod at
// path requires.
func requiredVersion(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := requireRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s requires no version of %s", path, modulePath)
	}
	v := string(m[1])
	if strings.HasPrefix(v, "v0.0.0-") {
		t.Fatalf("%s requires %s %s, a pseudo-version that no tag publishes", path, modulePath, v)
	}
	return v
}

// repoFiles lists the files of the working tree that git would commit:
// tracked ones and new ones it does not ignore.
func repoFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout?)", err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(root, f)); err == nil { // not deleted
			files = append(files, f)
		}
	}
	return files
}

// moduleDirs returns the directories of files that hold a go.mod.
func moduleDirs(files []string) map[string]bool {
	dirs := map[string]bool{}
	for _, f := range files {
		if path.Base(f) == "go.mod" {
			dirs[path.Dir(f)] = true
		}
	}
	return dirs
}

// owner returns the directory of the module that file belongs to.
func owner(file string, mods map[string]bool) string {
	for d := path.Dir(file); ; d = path.Dir(d) {
		if mods[d] {
			return d
		}
		if d == "." {
			return "."
		}
	}
}

// publish writes the module in dir at version into the proxy at proxy:
// its list, .info, .mod and .zip, as `go help goproxy` lays them out.
func publish(t *testing.T, proxy, dir, version string, files []string) {
	t.Helper()
	mod := modulePath
	if dir != "." {
		mod += "/" + dir
	}
	at := filepath.Join(proxy, filepath.FromSlash(mod), "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	mods := moduleDirs(files)
	for _, f := range files {
		if owner(f, mods) != dir {
			continue
		}
		rel := f
		if dir != "." {
			rel = strings.TrimPrefix(f, dir+"/")
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(mod + "@" + version + "/" + rel)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(dir), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]any{"Version": version, "Time": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	for name, b := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": info,
		version + ".mod":  gomod,
		version + ".zip":  buf.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(at, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// prefetch makes sure that the local module cache holds every module the
// go.mod files at paths require, other than this repository's, so that the
// install can read them from there. It is the one step that may reach the
// network, through the machine's usual GOPROXY, and only for modules the
// cache lacks.
func prefetch(t *testing.T, paths ...string) {
	t.Helper()
	args := []string{"mod", "download"}
	line := regexp.MustCompile(`(?m)^\s*(?:require\s+)?([a-z0-9.\-]+\.[a-z]+/\S+) (v\S+)`)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range line.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasPrefix(m[1], modulePath) {
				args = append(args, m[1]+"@"+m[2])
			}
		}
	}
	run(t, t.TempDir(), append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod"), "go", args...)
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// run runs name with args in dir under env, for at most five minutes, and
// returns its standard output; a failure ends the test with its output.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return fmt.Sprint(stdout.String())
}
