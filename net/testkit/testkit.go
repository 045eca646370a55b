// Package testkit holds what the tests of several packages share and is
// not about any one of them: a buffer that goroutines may write while a
// test reads it, and a bounded wait on a condition (tests wait on
// conditions, never on bare sleeps). Only tests import it.
//
// It lives under net/ because the top-level folders are fixed and every
// package whose tests need it (commands, repl, net/...) may import a
// package there; an internal/ folder would not be visible from all of them.
package testkit

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent use: loggers, servers and
// child processes write it while the test reads it. The zero value is an
// empty buffer ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitTimeout is how long Eventually and WaitFor wait: generous, since the
// machines that run the tests may be loaded; a condition that holds
// returns at once.
const WaitTimeout = 30 * time.Second

// pollInterval is how often a condition is checked.
const pollInterval = 5 * time.Millisecond

// Eventually reports whether cond holds within WaitTimeout, checking it
// every few milliseconds (first at once).
func Eventually(cond func() bool) bool {
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

// WaitFor returns once cond holds, or fails the test ("timed out waiting
// for what") after WaitTimeout. Call it from the test's goroutine.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Eventually(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
