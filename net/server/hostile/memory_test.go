package hostile

import (
	"fmt"
	"testing"
)

// TestMemoryPerSessionAtCaps measures the server's resident memory per
// logged-in session when every session holds as much as the caps allow
// (--max-parked 16 parked fetches), over 100 sessions (10 users at
// --max-sessions-per-user 10), and checks it stays under 384 KiB (measured: about 150, most of
// it the goroutine stacks of the parked fetches).
func TestMemoryPerSessionAtCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 sessions")
	}
	const users, perUser, parked = 10, 10, 16
	var names []string
	for i := range users {
		names = append(names, fmt.Sprintf("user%d", i))
	}
	db := newDB(t, true, names...)
	srv := serve(t, db, "--max-sessions-per-user", fmt.Sprint(perUser), "--max-parked", fmt.Sprint(parked))
	// Warm up: one session, then measure from there.
	warm := mustDial(t, srv.addr, "127.0.3.1")
	if err := warm.hello(); err != nil {
		t.Fatal(err)
	}
	if a, err := warm.login(password(names[0])); err != nil || a.str("op") != "connected" {
		t.Fatalf("login: %v %v", a, err)
	}
	before, err := srv.memKiB("VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for u := range users {
		for s := range perUser {
			if u == 0 && s == 0 {
				continue // the warm-up session
			}
			p := mustDial(t, srv.addr, fmt.Sprintf("127.0.3.%d", 2+n%200))
			if err := p.hello(); err != nil {
				t.Fatal(err)
			}
			if a, err := p.login(password(names[u])); err != nil || a.str("op") != "connected" {
				t.Fatalf("login %s #%d: %v %v", names[u], s, a, err)
			}
			for range parked {
				if _, err := p.request("fetch", map[string]any{"salon": "general", "after": 1 << 40, "wait_ms": 25000}); err != nil {
					t.Fatal(err)
				}
			}
			// The fetches are parked once a request sent after them is answered.
			if a, err := p.call("salons", nil); err != nil || a.str("op") != "salons" {
				t.Fatalf("salons: %v %v", a, err)
			}
			n++
		}
	}
	after, err := srv.memKiB("VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	per := float64(after-before) / float64(n)
	t.Logf("%d sessions with %d parked fetches each: VmRSS %d -> %d KiB, %.1f KiB a session", n, parked, before, after, per)
	if per > 384 {
		t.Errorf("%.1f KiB a session at the caps, bound 384", per)
	}
}
