package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/rpcws/rpcws/rpcws"
)

// serveFlag makes the binary a server child of the server-only cells:
// `peers -serve-peer NAME` serves that peer on 127.0.0.1, prints the
// address on a line of its own, and stops when its stdin closes.
const serveFlag = "-serve-peer"

// serverProfileEnv, if set, is where a server child writes its CPU profile,
// with the peer's name appended.
const serverProfileEnv = "PEERS_SERVER_CPUPROFILE"

// serverOnlyPeers are the peers of the server-only cells, by name: the
// server each one starts in the child process.
var serverOnlyPeers = map[string]func() (string, func(), error){
	classicPeer: classicWS{}.start,
	ceilingPeer: ceilingWS{}.start,
	"rpcws":     startRPCWSUncapped,
}

// startRPCWSUncapped serves rpcws as rpcwsPeer does, with no cap on the
// connections of one address either: every connection of the load
// generator comes from 127.0.0.1, and a negative MaxConnsPerClient also
// lifts the per-address share of requests in flight, which 1,000
// connections with a request each would otherwise queue on.
func startRPCWSUncapped() (string, func(), error) {
	return startRPCWS(&rpcws.HandlerOptions{MaxConns: -1, MaxConnsPerClient: -1})
}

// childPeer tells whether args ask for a server child, and for which peer.
func childPeer(args []string) (string, bool) {
	if len(args) == 2 && args[0] == serveFlag {
		return args[1], true
	}
	return "", false
}

// serveChild serves the named peer until stdin closes; it returns the exit
// status.
func serveChild(name string) int {
	start, ok := serverOnlyPeers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "peers: %s: unknown peer %q\n", serveFlag, name)
		return 2
	}
	raiseFileLimit(8192)
	if path := os.Getenv(serverProfileEnv); path != "" {
		// A CPU profile of the server alone, for finding where its time
		// goes: PEERS_SERVER_CPUPROFILE=/tmp/rpcws.prof go run . -server-only -peers rpcws
		f, err := os.Create(fmt.Sprintf("%s.%s.%d", path, name, os.Getpid()))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	addr, stop, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		return 1
	}
	fmt.Println(addr)
	io.Copy(io.Discard, os.Stdin)
	stop()
	return 0
}

// serverProc is a running server child.
type serverProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

// A soTarget is a server of the server-only cells: peer Peer served by the
// binary Exe (this one if empty), labelled Label in the report.
type soTarget struct {
	Label, Peer, Exe string
}

// startServer starts a server child for t, pinned to CPU 0 by taskset if
// pin is set, and waits for its address.
func startServer(t soTarget, pin bool) (*serverProc, error) {
	exe, name := t.Exe, t.Peer
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	args := []string{exe, serveFlag, name}
	if pin {
		args = append([]string{"taskset", "-c", "0"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.addr = <-line:
	case <-time.After(30 * time.Second):
	}
	if !strings.HasPrefix(p.addr, "127.0.0.1:") {
		p.stop()
		return nil, fmt.Errorf("server child %s %s %s gave no address", exe, serveFlag, name)
	}
	return p, nil
}

// stop closes the child's stdin, which ends it, and kills it if it has not
// ended within 5 s.
func (p *serverProc) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// cpu returns the CPU time, user and system, that the child has used.
func (p *serverProc) cpu() (time.Duration, error) {
	return procCPU(p.cmd.Process.Pid)
}

// userHZ is the unit of the times in /proc/<pid>/stat: the kernel's
// USER_HZ, 100 on every Linux architecture Go supports.
const userHZ = 100

var errNoProc = errors.New("no /proc/<pid>/stat")

// procCPU returns utime+stime of process pid, all its threads together,
// from /proc/<pid>/stat (a resolution of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errNoProc, err)
	}
	// The command name, in parentheses, may hold spaces: the fields
	// counted are after its closing parenthesis, field 3 (state) first.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("%w: unexpected format", errNoProc)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%w: %w", errNoProc, err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}
