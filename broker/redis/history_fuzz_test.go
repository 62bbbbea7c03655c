package redis

import (
	"bytes"
	"strconv"
	"testing"
)

// parseHistoryMessage never panics; what it accepts is exactly what
// publishScript writes for that position and message.
func FuzzParseHistoryMessage(f *testing.F) {
	for _, s := range []string{"", "\x01plain", historyMagic, historyMagic + "e\x001\x00m", historyMagic + "e\x000\x00m",
		historyMagic + "e\x0018446744073709551616\x00m", historyMagic + "\x001\x00", historyMagic + "e\x001"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		pos, msg, ok, forged := parseHistoryMessage(payload)
		if ok && forged {
			t.Fatal("both accepted and forged")
		}
		if !bytes.HasPrefix(payload, []byte(historyMagic)) && (ok || forged) {
			t.Fatal("a plain message taken for one with history")
		}
		if ok {
			again := historyMagic + pos.Epoch + "\x00" + strconv.FormatUint(pos.Offset, 10) + "\x00" + string(msg)
			if again != string(payload) || pos.Offset == 0 || len(pos.Epoch) > maxEpoch {
				t.Fatalf("accepted %q as %+v %q", payload, pos, msg)
			}
		}
	})
}
