package testutil

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A Step is one line of a golden transcript.
type Step struct {
	Line   int    // line number in the file, for messages
	Send   bool   // a frame the client sends; false: a frame the server must send
	Binary bool   // a binary frame (only when Send)
	Frame  string // the frame's exact bytes
}

// A Transcript is a golden wire exchange: what a client sends and what the
// server must send back, byte for byte.
//
// The file format, one frame a line:
//
//	// a comment
//	--> {"id":"a1","type":"demo.echo","data":1}
//	<-- {"id":"a1","type":"demo.echo.response","data":1}
//	-->binary some bytes
//
// A replayer sends each "-->" frame in order and, after each, reads the
// "<--" frames that follow it, in order, before sending the next. Blank lines
// and comments are ignored. The same files are replayed by the Go tests and
// by the JavaScript suite.
type Transcript struct {
	Name  string // the file name without its extension
	Steps []Step
}

// ReadTranscripts reads every *.txt transcript in dir, sorted by name.
func ReadTranscripts(dir string) ([]Transcript, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no transcripts in %s", dir)
	}
	var out []Transcript
	for _, f := range files {
		t, err := ReadTranscript(f)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ReadTranscript reads one transcript file.
func ReadTranscript(path string) (Transcript, error) {
	f, err := os.Open(path)
	if err != nil {
		return Transcript{}, err
	}
	defer f.Close()
	t := Transcript{Name: strings.TrimSuffix(filepath.Base(path), ".txt")}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "//"):
		case strings.HasPrefix(line, "-->binary "):
			t.Steps = append(t.Steps, Step{Line: n, Send: true, Binary: true, Frame: line[len("-->binary "):]})
		case strings.HasPrefix(line, "--> "):
			t.Steps = append(t.Steps, Step{Line: n, Send: true, Frame: line[len("--> "):]})
		case strings.HasPrefix(line, "<-- "):
			t.Steps = append(t.Steps, Step{Line: n, Frame: line[len("<-- "):]})
		default:
			return t, fmt.Errorf("%s:%d: a line must start with -->, -->binary, <-- or //", path, n)
		}
	}
	return t, sc.Err()
}
