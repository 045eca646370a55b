package conformance

import (
	"testing"
	"time"
)

// TestPendingPerSource (section 4): one source holding all the
// connections not logged in it may does not lock others out. Past its
// cap, a new connection from it is decided at its first envelope: a hello
// gets a plain unavailable and the connection closes; a valid resume
// proceeds; a connection that sends nothing is closed by the login
// deadline. Another source logs in meanwhile.
func TestPendingPerSource(t *testing.T) {
	t.Parallel()
	const loginTimeout = 3 * time.Second
	s := newServer(t, serverConfig{flags: []string{
		"--max-pending-per-source", "2", "--login-timeout", loginTimeout.String()}})
	const full, other = "127.0.0.2", "127.0.0.3"
	for range 2 {
		c := dialFrom(t, s, full)
		c.hello()
	}
	refused := dialFrom(t, s, full)
	refused.sendFrame(clientHello(newKeys(t)))
	m := refused.expectPlainError("unavailable")
	noRe(t, m)
	refused.expectClosed(5 * time.Second)

	// Another source: hello and login as usual.
	alice := dialFrom(t, s, other)
	alice.hello()
	alice.login("alice")
	alice.send("general", "from another source")

	// Her connection drops; she resumes from the full source.
	alice.close()
	moved := dialFrom(t, s, full)
	moved.sess = alice.sess
	r := moved.doOK(obj{"op": "resume"})
	if r.body.str("op") != "resumed" || r.body.str("status") != "CONNECTÉ" {
		t.Fatalf("resume from a full source: %s", r.bodyRaw)
	}
	msgs, _, _ := moved.fetch(obj{"salon": "general"})
	if len(msgs) == 0 || msgs[len(msgs)-1].Text != "from another source" {
		t.Fatalf("after resume: %+v", msgs)
	}

	// A silent connection from the full source is closed by the login
	// deadline (or sooner).
	silent := dialFrom(t, s, full)
	silent.expectClosed(loginTimeout + 10*time.Second)
}
