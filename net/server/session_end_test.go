package server_test

import (
	"context"
	"testing"
	"time"
)

// TestEndAfterResumeClosesNewConnection: a request handled on the old
// connection just after a resume moved its session to a new one ends
// the session (the password changed meanwhile): the new connection, where
// the session now lives, closes too instead of staying open with an
// ended session that answers nothing.
func TestEndAfterResumeClosesNewConnection(t *testing.T) {
	f := newFixture(t, nil)
	alice := login(t, f.addr, "alice")
	alice.send("general", "before the change")

	// A change elsewhere, so that the next check misses the server's
	// cache and asks the database.
	if _, err := f.db.Grant(context.Background(), "dev", []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	entered, release := f.store.holdNextValid()
	alice.request("salons", nil)
	select {
	case <-entered: // the old connection checks the credential
	case <-time.After(10 * time.Second):
		t.Fatal("salons never checked the credential")
	}
	c := alice.redial(f.addr)
	if a := c.call("resume", nil); a.str("op") != "resumed" {
		release()
		t.Fatalf("resume: %v", a)
	}
	if err := f.db.ResetPassword(context.Background(), "alice", "a brand new password"); err != nil {
		release()
		t.Fatal(err)
	}
	release() // the old connection's request now ends the session
	c.expectClosed()
	d := alice.redial(f.addr)
	wantError(t, d.resume(), 'E', "unknown_session", 0)
}
