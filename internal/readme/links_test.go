package readme_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile("(?m)^#{1,6} +(.+)$")
)

// slug is GitHub's anchor for a heading: lower case, spaces to hyphens,
// punctuation dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Every relative link of the README and the guides names a file of the
// repository, and an anchor of a Markdown file names one of its headings.
func TestLinks(t *testing.T) {
	for _, path := range markdownFiles(t) {
		md, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, path)
		for _, m := range linkRE.FindAllStringSubmatch(string(md), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(link, "#")
			target := path
			if file != "" {
				target = filepath.Join(filepath.Dir(path), filepath.FromSlash(file))
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %s: %v", name, link, err)
				continue
			}
			if anchor == "" {
				continue
			}
			doc, err := os.ReadFile(target)
			if err != nil {
				t.Errorf("%s: link %s: %v", name, link, err)
				continue
			}
			found := false
			for _, h := range headingRE.FindAllStringSubmatch(string(doc), -1) {
				if slug(h[1]) == anchor {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: link %s: no heading with anchor #%s", name, link, anchor)
			}
		}
	}
}
