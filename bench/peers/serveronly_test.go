package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the server child of the
// server-only cells, as the command does.
func TestMain(m *testing.M) {
	if name, ok := childPeer(os.Args[1:]); ok {
		os.Exit(serveChild(name))
	}
	os.Exit(m.Run())
}

// TestServerOnlyCell runs one server-only cell against a server child,
// bounded by its count of calls, and checks that it measured something.
func TestServerOnlyCell(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: the server-only cells read the server's CPU time there")
	}
	// 3,000 calls of some tens of µs each are far above the 10 ms
	// resolution of the CPU times of /proc.
	o := soOptions{Warmup: 20 * time.Millisecond, Duration: 20 * time.Second, MaxCalls: 3000, Payload: 1024}
	res, err := measureCell(soTarget{Label: "rpcws", Peer: "rpcws"}, soCell{Key: "multiply/64", Conns: 64}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls < int64(o.MaxCalls) || res.CPU <= 0 || res.Wall <= 0 {
		t.Errorf("calls %d, server CPU %v, wall %v: want %d calls and some CPU and time", res.Calls, res.CPU, res.Wall, o.MaxCalls)
	}
	if res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("p50 %v, p99 %v", res.P50, res.P99)
	}
}

// TestServerOnlyFrames sends each peer's request frames of each cell, by
// hand, to the peer's server in this process, and checks the replies.
func TestServerOnlyFrames(t *testing.T) {
	for name, start := range serverOnlyPeers {
		for _, c := range []soCell{{Key: "multiply", Conns: 1}, {Key: "echo", Conns: 1, Echo: true}} {
			t.Run(name+"/"+c.Key, func(t *testing.T) {
				addr, stop, err := start()
				if err != nil {
					t.Fatal(err)
				}
				defer stop()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				prefix, suffix, want := soFrame(name, c, 300)
				rc, err := dialRaw(ctx, addr, prefix, suffix)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.close()
				rc.c.SetDeadline(time.Now().Add(10 * time.Second))
				for _, id := range []uint64{idBase, idBase + 98_765} {
					reply, err := rc.call(id)
					if err != nil {
						t.Fatalf("call %d: %v", id, err)
					}
					if !bytes.Contains(reply, []byte(want)) {
						t.Errorf("call %d: reply %q lacks %q", id, reply, want)
					}
				}
			})
		}
	}
}

// TestMaskedFrame unmasks the request frame after setID and compares it
// with the request meant, for a short and a 2-byte length.
func TestMaskedFrame(t *testing.T) {
	for _, n := range []int{10, 1000} {
		prefix, suffix := `{"id":`, `,"data":"`+strings.Repeat("x", n)+`"}`
		f, body, _ := maskedFrame(prefix, suffix)
		rc := &rawConn{out: f, body: body, id: body + len(prefix)}
		rc.setID(idBase + 42)
		got := make([]byte, len(f)-body)
		for i := range got {
			got[i] = f[body+i] ^ frameMask[i%4]
		}
		if want := prefix + "100000000042" + suffix; string(got) != want {
			t.Errorf("payload %q, want %q", got, want)
		}
		if f[0] != 0x81 || f[1]&0x80 == 0 {
			t.Errorf("header % x: want a final, masked text frame", f[:2])
		}
	}
}

func TestReplyID(t *testing.T) {
	for _, tc := range []struct {
		msg, id string
		ok      bool
	}{
		{`{"id":"6ba7b810-9dad-41d1-80b4-100000000001","type":"x.response","data":42}`, "6ba7b810-9dad-41d1-80b4-100000000001", true},
		{`{"id":100000000001,"result":42,"error":null}`, "100000000001", true},
		{`{"id":7}`, "7", true},
		{`{"id":null,"result":1}`, "", false},
		{`{"type":"event","data":1}`, "", false},
		{`{"id":`, "", false},
	} {
		id, ok := replyID([]byte(tc.msg))
		if ok != tc.ok || (ok && string(id) != tc.id) {
			t.Errorf("replyID(%s) = %q, %v; want %q, %v", tc.msg, id, ok, tc.id, tc.ok)
		}
	}
}

func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// Spend CPU time until the reading grows, within a bound.
	d0, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	d := d0
	for deadline := time.Now().Add(10 * time.Second); d <= d0 && time.Now().Before(deadline); {
		for x := range 100_000 {
			_ = strings.Repeat("x", x%64)
		}
		if d, err = procCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if d <= d0 {
		t.Errorf("procCPU stayed at %v after 10 s of work", d0)
	}
	if _, err := procCPU(-1); err == nil {
		t.Error("procCPU(-1): no error")
	}
}
