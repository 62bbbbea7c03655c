package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine describes where a run took place.
type machine struct {
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPU        string `json:"cpu,omitempty"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
}

func describeMachine() machine {
	return machine{
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		CPU:        cpuModel(),
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go:         runtime.Version(),
	}
}

// cpuModel returns the processor's name from /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage returns the 1-minute load average, or -1 where the system does
// not tell.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// cpuClock is a reading of the CPU time spent by the whole machine and by
// this process, to tell how much of the machine other processes took during
// a run.
type cpuClock struct {
	wall    time.Time
	busy    time.Duration // all CPUs, all processes (from /proc/stat)
	self    time.Duration // this process, user + system
	hasBusy bool
}

// userHz is the unit of /proc/stat: 1/100 s on every Linux of note.
const userHz = 100

func readCPUClock() cpuClock {
	c := cpuClock{wall: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return c
	}
	// user nice system idle iowait irq softirq steal: all but idle and
	// iowait are busy.
	var ticks int64
	for i, s := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return c
		}
		ticks += v
	}
	c.busy = time.Duration(ticks) * time.Second / userHz
	c.hasBusy = true
	return c
}

// othersShare returns the share of the machine's CPU time (0..1) that other
// processes used between a and b, or -1 if it cannot be told.
func othersShare(a, b cpuClock) float64 {
	if !a.hasBusy || !b.hasBusy {
		return -1
	}
	wall := b.wall.Sub(a.wall)
	if wall <= 0 {
		return -1
	}
	others := (b.busy - a.busy) - (b.self - a.self)
	share := others.Seconds() / (wall.Seconds() * float64(runtime.NumCPU()))
	return max(share, 0)
}

// raiseFileLimit makes room for n open files, raising the hard limit too
// where the process may. It returns the limit in force afterwards.
func raiseFileLimit(n uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= n {
		return lim.Cur, nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return n, nil
	}
	want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return lim.Cur, err
	}
	return lim.Max, nil
}
