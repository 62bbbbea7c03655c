//go:build !unix

package interop_test

import "os/exec"

// ownGroup is a no-op where there are no process groups: cancelling cmd kills the
// process itself only.
func ownGroup(cmd *exec.Cmd) {}

// killGroup is a no-op where there are no process groups.
func killGroup(pid int) {}
