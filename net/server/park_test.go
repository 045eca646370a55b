package server_test

import (
	"runtime"
	"testing"

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
