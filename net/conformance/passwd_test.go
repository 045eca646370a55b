package conformance

import (
	"testing"
)

// TestPasswd: a user changes their own password (3.8). The answer has
// exactly op, re and password; the session stays logged in; the user's
// other session ends at its next request; the old password is refused at
// login and the new one accepted; the same request again with the same
// id, on a resumed connection, gets the same answer, its password field
// unchecked.
func TestPasswd(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	other := connect(t, s, "alice")
	m := a.doOK(obj{"op": "passwd", "password": pw("alice")})
	wantKeys(t, m, "op", "re", "password")
	next := m.body.str("password")
	if m.body.str("op") != "passwd" || len(next) < 16 || next == pw("alice") {
		t.Fatalf("passwd: %s", m.bodyRaw)
	}
	id, _ := m.body.intField("re")

	a.doOK(obj{"op": "salons"})
	other.doErr(obj{"op": "salons"}, "auth")

	// The answer was lost with the connection: resume, send it again.
	r := a.resumeConn()
	r.doOK(obj{"op": "resume"})
	again := r.doOK(obj{"op": "passwd", "id": id, "password": "not checked on a retry"})
	if again.body.str("password") != next {
		t.Fatalf("retry of id %d: %s, want password %q", id, again.bodyRaw, next)
	}
	r.doOK(obj{"op": "who", "salon": "general"})

	old := dial(t, s)
	old.hello()
	old.doErr(obj{"op": "login", "password": pw("alice")}, "auth")
	fresh := dial(t, s)
	fresh.hello()
	if m := fresh.doOK(obj{"op": "login", "password": next}); m.body.str("pseudo") != "alice" {
		t.Fatalf("login with the new password: %s", m.bodyRaw)
	}
}

// TestPasswdWrongPassword: a wrong current password is auth and the
// session stays logged in; it counts as a failed login of the source
// (3.1), so past the limit passwd and login from that address are
// rate_limited, the right password included. A passwd without its
// password, or before login, is bad_request.
func TestPasswdWrongPassword(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--login-limit", "2", "--login-window", "1h"}})
	a := connect(t, s, "alice")
	a.doErr(obj{"op": "passwd"}, "bad_request")
	a.doErr(obj{"op": "passwd", "password": 12}, "bad_request")
	for range 2 {
		a.doErr(obj{"op": "passwd", "password": "wrong-password-x"}, "auth")
		a.doOK(obj{"op": "salons"})
	}
	a.doErr(obj{"op": "passwd", "password": pw("alice")}, "rate_limited")
	b := dial(t, s)
	b.hello()
	b.doErr(obj{"op": "login", "password": pw("bob")}, "rate_limited")
	b.doErr(obj{"op": "passwd", "password": pw("bob")}, "bad_request")
	a.doOK(obj{"op": "salons"})
	// Nothing changed: alice's password still opens a session from
	// another address.
	o := dialFrom(t, s, "127.0.0.2")
	o.hello()
	o.doOK(obj{"op": "login", "password": pw("alice")})
}
