package server_test

import (
	"errors"
	"fmt"
	stdnet "net"
	"testing"
	"time"

	"librecord/net/server"
	"librecord/net/testkit"
)

// answersUntilClosed reads every envelope until the server closes the
// connection.
func (c *client) answersUntilClosed() []answer {
	c.t.Helper()
	var got []answer
	for {
		a, err := c.tryRead(20 * time.Second)
		if err == nil {
			got = append(got, a)
			continue
		}
		var ne stdnet.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %d answers", len(got))
		}
		return got
	}
}

// A connection not logged in that sends logins as fast as it can gets no
// more answers than its pauses allow before its login deadline: here the
// pause outlasts the deadline, so of 20 logins sent at once one is
// answered (auth, the source's one allowed failure), and the 19 that
// would be refused unchecked (rate_limited) are never read. The paused
// connection goes away with its deadline.
func TestRefusedLoginsPauseReads(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.Chat.LoginLimit = 1
		c.LoginPause = time.Hour
		c.LoginTimeout = 5 * time.Second
	})
	c := dial(t, f.addr)
	c.hello()
	for i := range 20 {
		c.request("login", map[string]any{"password": fmt.Sprintf("guess-%d", i)})
	}
	got := c.answersUntilClosed()
	if len(got) != 1 {
		t.Fatalf("%d answers before the login deadline, want 1: %v", len(got), got)
	}
	wantError(t, got[0], 'S', "auth", 1)
	testkit.WaitFor(t, "the paused connection to go", func() bool { return f.srv.Conns() == 0 })
}

// The pause changes no answer (PROTOCOL.md 3.1): a wrong password is
// auth, then rate_limited without checking, on a connection that stays
// open; and after a failed login the right password still logs in.
func TestRefusedLoginAnswers(t *testing.T) {
	pause := func(limit int) func(*server.Config) {
		return func(c *server.Config) { c.Chat.LoginLimit, c.LoginPause = limit, time.Millisecond }
	}
	t.Run("RateLimited", func(t *testing.T) {
		f := newFixture(t, pause(2))
		c := dial(t, f.addr)
		c.hello()
		for range 2 {
			wantError(t, c.call("login", map[string]any{"password": "not the password"}), 'S', "auth", c.nextID)
		}
		for range 3 {
			wantError(t, c.call("login", map[string]any{"password": passwords["alice"]}), 'S', "rate_limited", c.nextID)
		}
	})
	t.Run("LoginAfterFailure", func(t *testing.T) {
		f := newFixture(t, pause(5))
		c := dial(t, f.addr)
		c.hello()
		wantError(t, c.call("login", map[string]any{"password": "not the password"}), 'S', "auth", c.nextID)
		if a := c.call("login", map[string]any{"password": passwords["alice"]}); a.str("op") != "connected" {
			t.Fatalf("login after a failure: %v", a)
		}
		if a := c.call("salons", nil); a.str("op") != "salons" {
			t.Fatalf("salons: %v", a)
		}
	})
}

// Shutdown does not wait out a connection's pause (nor its login
// deadline, which would end the pause too).
func TestShutdownDuringLoginPause(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.Chat.LoginLimit, c.LoginPause, c.LoginTimeout = 0, time.Hour, time.Hour
	})
	c := dial(t, f.addr)
	c.hello()
	wantError(t, c.call("login", map[string]any{"password": "not the password"}), 'S', "auth", c.nextID)
	c.request("login", map[string]any{"password": "nor this one"})
	f.stop() // fails the test if Shutdown runs out of time
	c.expectClosed()
}
