package server_test

import (
	"strings"
	"testing"

	"librecord/net/server"
)

// TestPasswd changes alice's password over the wire (PROTOCOL.md 3.8):
// the new password is answered, the old one is refused at login and the
// new one accepted, this session keeps working, her other session ends
// at its next request, a retry of the same id (after a resume) gets the
// same answer, and no password reaches the log.
func TestPasswd(t *testing.T) {
	f := newFixture(t, nil)
	alice := login(t, f.addr, "alice")
	other := login(t, f.addr, "alice")
	id := alice.request("passwd", map[string]any{"password": passwords["alice"]})
	a := alice.await(id)
	next := a.str("password")
	if a.kind != 'S' || a.str("op") != "passwd" || len(next) != 34 || len(a.body) != 3 {
		t.Fatalf("passwd: %v", a)
	}
	if a = alice.call("salons", nil); a.str("op") != "salons" {
		t.Fatalf("this session after passwd: %v", a)
	}
	wantError(t, other.call("salons", nil), 'S', "auth", other.nextID)
	other.expectClosed()

	// The answer lost: resume on a new connection, send the same id again.
	alice = alice.redial(f.addr)
	if a = alice.resume(); a.str("op") != "resumed" {
		t.Fatalf("resume: %v", a)
	}
	alice.nextID = id - 1
	if a = alice.call("passwd", map[string]any{"password": "anything"}); a.str("password") != next || a.num("re") != id {
		t.Fatalf("retry of id %d: %v, want the same password", id, a)
	}

	old := dial(t, f.addr)
	old.hello()
	wantError(t, old.call("login", map[string]any{"password": passwords["alice"]}), 'S', "auth", old.nextID)
	fresh := dial(t, f.addr)
	fresh.hello()
	if a = fresh.call("login", map[string]any{"password": next}); a.str("op") != "connected" || a.str("pseudo") != "alice" {
		t.Fatalf("login with the new password: %v", a)
	}
	if logs := f.logs.String(); strings.Contains(logs, next) || strings.Contains(logs, passwords["alice"]) || strings.Contains(logs, "anything") {
		t.Fatalf("a password reached the log:\n%s", logs)
	}
}

// TestPasswdWrongPassword: auth, counted as a failed login of the source
// (past the budget: rate_limited, for passwd and login alike), the
// session still logged in.
func TestPasswdWrongPassword(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.Chat.LoginLimit = 2 })
	alice := login(t, f.addr, "alice")
	for range 2 {
		wantError(t, alice.call("passwd", map[string]any{"password": "not her password"}), 'S', "auth", alice.nextID)
		if a := alice.call("salons", nil); a.str("op") != "salons" {
			t.Fatalf("session after a wrong passwd: %v", a)
		}
	}
	wantError(t, alice.call("passwd", map[string]any{"password": passwords["alice"]}), 'S', "rate_limited", alice.nextID)
	bob := dial(t, f.addr)
	bob.hello()
	wantError(t, bob.call("login", map[string]any{"password": passwords["bob"]}), 'S', "rate_limited", bob.nextID)
	wantError(t, alice.call("passwd", nil), 'S', "bad_request", alice.nextID)
}
