package server_test

import (
	"runtime"
	"testing"
	"time"

	"librecord/net/server"
	"librecord/net/testkit"
)

// A parked fetch is state, not a goroutine, and an idle connection has
// no writer: parking many fetches does not add a goroutine each, and a
// message still wakes them all.
func TestParkedFetchesHoldNoGoroutine(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.Chat.MaxParked = 0 })
	alice := login(t, f.addr, "alice")
	bob := login(t, f.addr, "bob")
	last := alice.send("general", "before")
	bob.call("salons", nil)
	// Let the goroutines of the requests above end.
	base := runtime.NumGoroutine()
	testkit.WaitFor(t, "goroutines to settle", func() bool {
		n := runtime.NumGoroutine()
		if n < base {
			base = n
		}
		return n <= base
	})
	const parkedN = 64
	ids := make([]int64, parkedN)
	for i := range ids {
		ids[i] = bob.request("fetch", map[string]any{"salon": "general", "after": last, "wait_ms": 20000})
	}
	// Answered after every fetch was read and parked (requests run in order).
	bob.call("salons", nil)
	testkit.WaitFor(t, "no goroutine per parked fetch", func() bool {
		return runtime.NumGoroutine() < base+parkedN/4
	})
	for _, id := range ids {
		if _, ok := bob.stash[id]; ok {
			t.Fatalf("a parked fetch answered before any message: %v", bob.stash[id])
		}
	}
	id := alice.send("general", "wake up")
	for _, p := range ids {
		if ms := messages(t, bob.await(p)); len(ms) != 1 || ms[0].ID != id {
			t.Fatalf("woken: %+v", ms)
		}
	}
}

// Parked fetches whose connection closes are dropped (PROTOCOL.md 3.3)
// and give back what they held: the session's clock, stopped while they
// were parked, runs again, so the dropped session times out and is
// announced; and Shutdown does not wait for them. (That no answer of
// theirs reaches a resumed connection: net/conformance
// TestParkedFetchDroppedOnClose; that each is dropped once, unanswered,
// even when a message comes: net/chat TestParkedFetchDroppedOnClose.)
func TestParkedFetchesOfClosedConnectionReleased(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.Chat.MaxParked = 0
		c.Chat.SessionTimeout = 3 * time.Second
	})
	alice := login(t, f.addr, "alice")
	// Parked, alice's own clock is stopped: she outlives bob.
	watch := alice.request("fetch", map[string]any{"salon": "general", "after": 0, "wait_ms": 8000})
	bob := login(t, f.addr, "bob")
	bob.call("fetch", map[string]any{"salon": "general"}) // his last active salon
	for range 4 {
		bob.request("fetch", map[string]any{"salon": "general", "after": 0, "wait_ms": 20000})
	}
	bob.call("salons", nil) // answered once the fetches before it are parked
	bob.nc.Close()
	ms := messages(t, alice.await(watch))
	if len(ms) != 1 || !ms[0].System || ms[0].Text != "bob disconnected" {
		t.Fatalf("want bob disconnected once his parked fetches were dropped, got %+v", ms)
	}
	f.stop() // fails the test if Shutdown runs out of time
}
