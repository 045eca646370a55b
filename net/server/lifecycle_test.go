package server_test

import (
	"strings"
	"testing"
	"time"

	"librecord/net/server"
	"librecord/net/testkit"
)

// A login still waiting for its password hash when the login timeout
// closes the connection is abandoned: it spends no hash, and no session
// logs in behind a closed connection (before, it did, and was listed by
// who until the session timeout although its client never saw
// "connected").
func TestLoginTimeoutDuringLogin(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.LoginTimeout = 500 * time.Millisecond })
	bob := login(t, f.addr, "bob")
	entered, release := f.store.holdLogins()
	alice := dial(t, f.addr)
	alice.hello()
	alice.request("login", map[string]any{"password": passwords["alice"]})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("login never reached the store")
	}
	alice.expectClosed()
	release()
	testkit.WaitFor(t, "alice's connection torn down", func() bool { return f.srv.Conns() == 1 })
	if a := bob.call("who", map[string]any{"salon": "general"}); strings.Contains(string(a.raw), "alice") {
		t.Fatalf("a login finished after its connection closed: %v", a)
	}
}
