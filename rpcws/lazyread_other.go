//go:build !unix

package rpcws

// canReadSocket says that readSocket cannot read a socket's descriptor
// here: a lazyReader reads the connection itself.
const canReadSocket = false

func readSocket(fd uintptr, p []byte) (n int, wait bool, err error) {
	panic("rpcws: readSocket is not available on this platform")
}
