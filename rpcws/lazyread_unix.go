//go:build unix

package rpcws

import "syscall"

// canPeek says that a socket's descriptor can be peeked at and read here.
const canPeek = true

// peekSocket is the callback of a wait for the socket fd to have bytes: it
// reports whether it has some, or has failed, without taking any.
func peekSocket(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err != syscall.EINTR {
			return err != syscall.EAGAIN
		}
	}
}

// readSocket reads the socket fd into p, without blocking: wait reports
// that it has nothing to read yet.
func readSocket(fd uintptr, p []byte) (n int, wait bool, err error) {
	for {
		n, err = syscall.Read(int(fd), p)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		return 0, true, nil
	}
	return n, false, err
}
