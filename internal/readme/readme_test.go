package readme_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rpcws/rpcws/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// root is the repository's root, from this package's directory.
const root = "../.."

// A README block of Go is preceded by a marker naming its mirror:
//
//	<!-- snippet: internal/readme/client_test.go Example_client -->
//	```go
//
// The mirror is a function of that file (or, when no function is named, the
// whole file: for blocks of declarations), whose source holds the block's
// lines in a row. Lines are compared without their leading and trailing
// white space, and with runs of inner white space as one space, so that
// gofmt's alignment of comments does not count; everything else does.
var markerRE = regexp.MustCompile(`^<!-- snippet: (\S+)(?: (\S+))? -->$`)

// block is a fenced code block of a Markdown file.
type block struct {
	line   int    // of the opening fence, 1-based
	lang   string // after the fence: "go", "js", ""
	text   string // the lines between the fences
	marker string // the line before the fence
}

func fencedBlocks(t *testing.T, md string) []block {
	t.Helper()
	lines := strings.Split(md, "\n")
	var blocks []block
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		b := block{line: i + 1, lang: strings.TrimPrefix(lines[i], "```")}
		if i > 0 {
			b.marker = lines[i-1]
		}
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("line %d: the block never closes", b.line)
		}
		b.text = strings.Join(body, "\n")
		blocks = append(blocks, b)
	}
	return blocks
}

// normalize returns the lines of text as the comparison sees them.
func normalize(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

// contains reports whether the lines of want appear in a row in have.
func contains(have, want []string) bool {
	for i := 0; i+len(want) <= len(have); i++ {
		ok := true
		for j := range want {
			if have[i+j] != want[j] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// mirror returns the source of function fn of the file at path (relative
// to the repository's root), or the whole file when fn is "", and whether
// the block must be that whole file. Mirrors are test files of
// internal/readme, or the files of the programs in its subdirectories
// (server, client, shutdown: built and run by their tests), which a block
// shows whole, as a reader pastes them. A function's mirror in a test file
// must be run by go test: a Test, or an Example with output. One that is
// only compiled says so in its doc comment, with the words "compiled only",
// and why.
func mirror(t *testing.T, path, fn string) (src string, whole bool, err error) {
	t.Helper()
	clean := filepath.ToSlash(filepath.Clean(path))
	inPackage := filepath.Dir(clean) == "internal/readme" && strings.HasSuffix(clean, "_test.go")
	inProgram := strings.HasPrefix(clean, "internal/readme/") && strings.Count(clean, "/") == 3 && !strings.HasSuffix(clean, "_test.go")
	if !inPackage && !inProgram {
		return "", false, fmt.Errorf("mirror %s: mirrors are test files of internal/readme, or files of the programs in its subdirectories", path)
	}
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		return "", false, err
	}
	if fn == "" {
		return string(b), inProgram, nil
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, b, parser.ParseComments)
	if err != nil {
		return "", false, err
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != fn || fd.Recv != nil {
			continue
		}
		body := string(b[fset.Position(fd.Pos()).Offset:fset.Position(fd.End()).Offset])
		doc := fd.Doc.Text()
		switch {
		case inProgram:
		case strings.HasPrefix(fn, "Test"):
		case strings.HasPrefix(fn, "Example") && strings.Contains(body, "// Output:"):
		case strings.Contains(doc, "compiled only"):
		default:
			return "", false, fmt.Errorf("%s in %s neither runs (a Test, an Example with output) nor says why it is compiled only", fn, path)
		}
		return body, false, nil
	}
	return "", false, fmt.Errorf("no function %s in %s", fn, path)
}

// markdownFiles are the files whose blocks are checked: the README and the
// guides in docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join(root, "README.md")}, docs...)
}

// Every Go block of README.md and of the guides is mirrored, as its marker
// says; a block of another language may be too (a whole file: the page
// beside the server).
func TestREADMEBlocks(t *testing.T) {
	for _, path := range markdownFiles(t) {
		name, _ := filepath.Rel(root, path)
		t.Run(name, func(t *testing.T) { checkBlocks(t, path, name) })
	}
}

func checkBlocks(t *testing.T, path, name string) {
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range fencedBlocks(t, string(md)) {
		m := markerRE.FindStringSubmatch(b.marker)
		if m == nil {
			if b.lang == "go" {
				t.Errorf("%s:%d: a Go block without the marker <!-- snippet: internal/readme/FILE [FUNC] --> on the line before", name, b.line)
			}
			continue
		}
		src, whole, err := mirror(t, m[1], m[2])
		if err != nil {
			t.Errorf("%s:%d: %v", name, b.line, err)
			continue
		}
		if whole && !slices.Equal(trimBlank(normalize(src)), trimBlank(normalize(b.text))) {
			t.Errorf("%s:%d: the block is not the whole of %s; one of them changed without the other. The block:\n%s", name, b.line, m[1], b.text)
			continue
		}
		if !contains(normalize(src), normalize(b.text)) {
			t.Errorf("%s:%d: the block is not in %s %s; one of them changed without the other. The block:\n%s", name, b.line, m[1], m[2], b.text)
		}
		// The comparison sees a change of one character anywhere.
		for _, i := range []int{0, len(b.text) / 2, len(b.text) - 1} {
			drifted := b.text[:i] + "~" + b.text[i+1:]
			if b.text[i] != '~' && contains(normalize(src), normalize(drifted)) {
				t.Errorf("%s:%d: the block with character %d changed is still found in %s: the check proves nothing", name, b.line, i, m[1])
			}
		}
	}
}

// trimBlank drops the empty lines at the end of lines.
func trimBlank(lines []string) []string {
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// The package docs' code blocks (indented lines in a doc comment) that are
// Go are mirrored too; which mirror each has is listed here.
var packageDocMirrors = map[string][][2]string{
	"codec/doc.go": nil, // its one block shows frames, not Go
	"rpcws/doc.go": {{"internal/readme/docs_test.go", "rpcwsPackageDoc"}},
}

func TestPackageDocBlocks(t *testing.T) {
	for path, mirrors := range packageDocMirrors {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join(root, path), nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		var goBlocks []string
		for _, b := range docBlocks(f.Doc.Text()) {
			if isGo(b) {
				goBlocks = append(goBlocks, b)
			}
		}
		if len(goBlocks) != len(mirrors) {
			t.Errorf("%s: %d blocks of Go in the package doc, %d mirrors listed in packageDocMirrors", path, len(goBlocks), len(mirrors))
			continue
		}
		for i, b := range goBlocks {
			src, _, err := mirror(t, mirrors[i][0], mirrors[i][1])
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if !contains(normalize(src), normalize(b)) {
				t.Errorf("%s: block %d of the package doc is not in %s %s; one of them changed without the other. The block:\n%s", path, i+1, mirrors[i][0], mirrors[i][1], b)
			}
		}
	}
}

// docBlocks returns the code blocks of a doc comment's text: runs of lines
// indented by a tab (as (*ast.CommentGroup).Text gives them), blank lines
// within a run included.
func docBlocks(doc string) []string {
	var blocks []string
	var cur []string
	flush := func() {
		for len(cur) > 0 && cur[len(cur)-1] == "" {
			cur = cur[:len(cur)-1]
		}
		if len(cur) > 0 {
			blocks = append(blocks, strings.Join(cur, "\n"))
		}
		cur = nil
	}
	for _, l := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(l, "\t"):
			cur = append(cur, strings.TrimPrefix(l, "\t"))
		case l == "" && len(cur) > 0:
			cur = append(cur, "")
		default:
			flush()
		}
	}
	flush()
	return blocks
}

// isGo reports whether a block parses as Go: declarations, or statements.
func isGo(b string) bool {
	fset := token.NewFileSet()
	if _, err := parser.ParseFile(fset, "", "package p\n"+b, 0); err == nil {
		return true
	}
	_, err := parser.ParseFile(fset, "", "package p\nfunc _() {\n"+b+"\n}", 0)
	return err == nil
}
