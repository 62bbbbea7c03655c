//go:build !race

package rpcws_test

const raceEnabled = false
