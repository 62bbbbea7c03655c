package redis

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
)

func TestReadPush(t *testing.T) {
	t.Parallel()
	in := "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhe\r\nl\r\n" +
		"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n" +
		"*2\r\n$4\r\npong\r\n$0\r\n\r\n" +
		"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n" +
		"-ERR wrong\r\n"
	r := &reader{br: bufio.NewReader(strings.NewReader(in))}
	for _, want := range []push{
		{"message", "ch", []byte("he\r\nl")},
		{"subscribe", "a", nil},
		{"pong", "", nil},
		{"unsubscribe", "a", nil},
	} {
		got, err := r.readPush()
		if err != nil || got.kind != want.kind || got.channel != want.channel || string(got.payload) != string(want.payload) {
			t.Fatalf("got %q %q %q, %v; want %q %q %q", got.kind, got.channel, got.payload, err, want.kind, want.channel, want.payload)
		}
	}
	if _, err := r.readPush(); err == nil || !strings.Contains(err.Error(), "ERR wrong") {
		t.Errorf("error reply: got %v", err)
	}
}

// A message larger than maxMessage is skipped, and the stream read on.
func TestReadPushTooLarge(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", maxMessage+1)
	in := "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$" + itoa(len(big)) + "\r\n" + big + "\r\n" +
		"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nok\r\n"
	r := &reader{br: bufio.NewReader(strings.NewReader(in))}
	if p, err := r.readPush(); err != errTooLarge || p.channel != "ch" {
		t.Fatalf("got %q, %v; want errTooLarge on ch", p.channel, err)
	}
	if p, err := r.readPush(); err != nil || string(p.payload) != "ok" {
		t.Fatalf("after the skipped message: got %q, %v", p.payload, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Whatever Redis sends, the reader returns or fails; it never panics.
func FuzzReadPush(f *testing.F) {
	f.Add([]byte("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"))
	f.Add([]byte("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"))
	f.Add([]byte("*2\r\n$-1\r\n$99999999999\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &reader{br: bufio.NewReaderSize(strings.NewReader(string(in)), 16)}
		for range 8 {
			if _, err := r.readPush(); err != nil && err != errTooLarge {
				return
			}
		}
	})
}
