package server_test

import (
	"context"
	"testing"
	"time"

	"librecord/db"
	"librecord/net/server/servertest"
)

// TestCachedChecksSeeOtherProcess: the server keeps access and
// credentials in memory between requests (chat's cache, tied to the
// database's change counter). Each change an admin command makes, here
// through a second handle on the file (its own connections, as another
// process), takes effect on the session's next request although the
// session's checks were just served from the cache.
func TestCachedChecksSeeOtherProcess(t *testing.T) {
	ctx := context.Background()
	// warm logs bob in and makes the requests that fill the cache for
	// him: access to dev (send, fetch) and his credential.
	warm := func(t *testing.T, f *fixture) *client {
		bob := login(t, f.addr, "bob")
		bob.send("dev", "warm")
		for range 2 {
			if ms := messages(t, bob.call("fetch", map[string]any{"salon": "dev"})); len(ms) == 0 {
				t.Fatal("no message in dev")
			}
		}
		return bob
	}
	other := func(t *testing.T, f *fixture) *db.DB {
		d := servertest.NewDB(t, f.path)
		t.Cleanup(func() { d.Close() })
		return d
	}
	forbidden := func(t *testing.T, bob *client, salon string) {
		t.Helper()
		wantError(t, bob.call("fetch", map[string]any{"salon": salon}), 'S', "forbidden", bob.nextID)
		wantError(t, bob.call("send", map[string]any{"salon": salon, "text": "x", "cid": "after-" + salon}), 'S', "forbidden", bob.nextID)
		wantError(t, bob.call("who", map[string]any{"salon": salon}), 'S', "forbidden", bob.nextID)
	}
	ended := func(t *testing.T, bob *client) {
		t.Helper()
		wantError(t, bob.call("salons", nil), 'S', "auth", bob.nextID)
		bob.expectClosed()
	}

	t.Run("Revoke", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		if _, err := other(t, f).Revoke(ctx, "dev", []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		forbidden(t, bob, "dev")
		// Refusals are not cached: a grant opens the salon again at once.
		if _, err := other(t, f).Grant(ctx, "dev", []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		messages(t, bob.call("fetch", map[string]any{"salon": "dev"}))
	})
	// A long-poll that the server parks from memory (access, credential
	// and the salon's window as of its last counter read) still checks
	// access when it answers: woken by a message, or at the end of its
	// wait, a revoked user gets forbidden, never the message.
	t.Run("RevokeUnderLongPoll", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		last := bob.send("dev", "before")
		if ms := messages(t, bob.call("fetch", map[string]any{"salon": "dev", "after": last, "wait_ms": 1})); len(ms) != 0 {
			t.Fatalf("warming long-poll: %v", ms)
		}
		if _, err := other(t, f).Revoke(ctx, "dev", []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		// Woken by alice's message.
		woken := make(chan answer, 1)
		go func() { woken <- bob.call("fetch", map[string]any{"salon": "dev", "after": last, "wait_ms": 20000}) }()
		alice := login(t, f.addr, "alice")
		alice.send("dev", "after the revoke")
		wantError(t, <-woken, 'S', "forbidden", bob.nextID)
		// At the end of its wait, with no message.
		wantError(t, bob.call("fetch", map[string]any{"salon": "dev", "after": last + 1, "wait_ms": 200}), 'S', "forbidden", bob.nextID)
	})
	t.Run("SalonRename", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		if _, _, err := other(t, f).RenameSalon(ctx, "dev", "ops"); err != nil {
			t.Fatal(err)
		}
		forbidden(t, bob, "dev")
		if a := bob.call("fetch", map[string]any{"salon": "ops"}); a.str("salon") != "ops" {
			t.Fatalf("fetch under the new name: %v", a)
		}
	})
	t.Run("SalonRemove", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		if err := other(t, f).RemoveSalon(ctx, "dev", true); err != nil {
			t.Fatal(err)
		}
		forbidden(t, bob, "dev")
	})
	t.Run("UserDisable", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		if _, _, err := other(t, f).SetDisabled(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		ended(t, bob)
	})
	t.Run("UserRemove", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		if err := other(t, f).RemoveUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		ended(t, bob)
	})
	t.Run("ResetPassword", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		if err := other(t, f).ResetPassword(ctx, "bob", "a brand new password"); err != nil {
			t.Fatal(err)
		}
		ended(t, bob)
	})
	// Removed messages leave the salon's window of recent messages too:
	// a fetch after a cursor the window covers no longer returns them.
	removed := func(t *testing.T, f *fixture, remove func(d *db.DB, ids []int64) error) {
		bob := warm(t, f)
		first := bob.send("dev", "one")
		second := bob.send("dev", "two")
		for range 2 { // from the window
			if ms := messages(t, bob.call("fetch", map[string]any{"salon": "dev", "after": first})); len(ms) != 1 || ms[0].ID != second {
				t.Fatalf("before the removal: %v", ms)
			}
		}
		if err := remove(other(t, f), []int64{first, second}); err != nil {
			t.Fatal(err)
		}
		if ms := messages(t, bob.call("fetch", map[string]any{"salon": "dev", "after": first})); len(ms) != 0 {
			t.Fatalf("after the removal: %v", ms)
		}
		// The window is rebuilt by the next message.
		third := bob.send("dev", "three")
		for range 2 {
			if ms := messages(t, bob.call("fetch", map[string]any{"salon": "dev", "after": first})); len(ms) != 1 || ms[0].ID != third {
				t.Fatalf("after the next message: %v", ms)
			}
		}
	}
	t.Run("MessageRemove", func(t *testing.T) {
		f := newFixture(t, nil)
		removed(t, f, func(d *db.DB, ids []int64) error {
			_, err := d.RemoveMessages(ctx, "dev", ids)
			return err
		})
	})
	t.Run("Prune", func(t *testing.T) {
		f := newFixture(t, nil)
		// Set before the messages (setting it moves the counter too).
		if _, err := f.db.SetRetention(ctx, "dev", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		removed(t, f, func(d *db.DB, _ []int64) error {
			n, err := d.Prune(ctx, time.Now().Add(time.Hour), 0)
			if err == nil && n < 2 {
				t.Fatalf("pruned %d", n)
			}
			return err
		})
	})
	t.Run("PasswdOfAnotherSession", func(t *testing.T) {
		f := newFixture(t, nil)
		bob := warm(t, f)
		again := warm(t, f)
		if a := again.call("passwd", map[string]any{"password": passwords["bob"]}); a.str("op") != "passwd" {
			t.Fatalf("passwd: %v", a)
		}
		messages(t, again.call("fetch", map[string]any{"salon": "dev"}))
		ended(t, bob)
	})
}
