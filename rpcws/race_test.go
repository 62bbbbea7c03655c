//go:build race

package rpcws_test

// raceEnabled tells that the race detector runs, slowing every goroutine
// several times: tests that bound latency allow for it.
const raceEnabled = true
