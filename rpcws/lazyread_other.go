//go:build !unix

package rpcws

const canReadSocket = false

func readSocket(uintptr, []byte) (int, bool, error) { return 0, false, nil }
