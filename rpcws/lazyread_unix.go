//go:build unix

package rpcws

import "syscall"

// canReadSocket says that readSocket reads a socket's descriptor here.
const canReadSocket = true

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
