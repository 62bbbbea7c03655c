//go:build unix

package interop_test

import (
	"os/exec"
	"syscall"
)

// ownGroup puts cmd in a process group of its own and makes cancelling it kill the
// whole group: chromium and node start children that must not outlive the test.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// killGroup kills the process group whose leader is pid: a browser that puppeteer
// started detached, in a group of its own.
func killGroup(pid int) {
	syscall.Kill(-pid, syscall.SIGKILL)
}
