package conformance

import (
	"sort"
	"strings"
	"testing"
	"time"
)

func keysOf(o obj) []string {
	var ks []string
	for k := range o {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func wantKeys(t *testing.T, m *msg, keys ...string) {
	t.Helper()
	sort.Strings(keys)
	if got := keysOf(m.body); strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Errorf("body %s has keys %v, want %v", m.bodyRaw, got, keys)
	}
}

// TestLoginShape: exact connected body (3.1).
func TestLoginShape(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--session-timeout", "17s", "--poll", "1500ms"}})
	c := dial(t, s)
	c.hello()
	m := c.doOK(obj{"op": "login", "password": pw("alice"), "extra": "ignored"})
	wantKeys(t, m, "op", "re", "status", "pseudo", "salons", "session_timeout_ms", "poll_ms")
	if m.body.str("op") != "connected" || m.body.str("status") != "CONNECTÉ" || m.body.str("pseudo") != "alice" {
		t.Fatalf("login: %s", m.bodyRaw)
	}
	if v := m.body.num(t, "session_timeout_ms"); v != 17000 {
		t.Errorf("session_timeout_ms %d, want 17000", v)
	}
	if v := m.body.num(t, "poll_ms"); v != 1500 {
		t.Errorf("poll_ms %d, want 1500", v)
	}
	arr, _ := m.body["salons"].([]any)
	var names []string
	for _, a := range arr {
		names = append(names, a.(string))
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "dev,general" {
		t.Errorf("salons %v, want dev and general", names)
	}
	// bob sees only general
	mb := dial(t, s)
	mb.hello()
	r := mb.doOK(obj{"op": "login", "password": pw("bob")})
	arr, _ = r.body["salons"].([]any)
	if len(arr) != 1 || arr[0] != "general" {
		t.Errorf("bob's salons: %s", r.bodyRaw)
	}
}

// TestLoginRules: wrong password is auth with re and the connection stays
// open; anything but login before login is bad_request; login when logged in
// is bad_request.
func TestLoginRules(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := dial(t, s)
	c.hello()
	for _, op := range []obj{
		{"op": "fetch", "salon": "general"},
		{"op": "send", "salon": "general", "text": "x", "cid": "abc"},
		{"op": "salons"}, {"op": "who", "salon": "general"}, {"op": "bye"},
		{"op": "resume"},
	} {
		c.doErr(op, "bad_request")
	}
	m1 := c.doErr(obj{"op": "login", "password": "wrong-password-xx"}, "auth")
	m2 := c.doErr(obj{"op": "login", "password": pw("bob") + "x"}, "auth")
	if m1.body.str("message") != m2.body.str("message") {
		t.Errorf("auth messages differ: %q vs %q", m1.body.str("message"), m2.body.str("message"))
	}
	c.doErr(obj{"op": "login"}, "bad_request")
	c.doErr(obj{"op": "login", "password": 12345678901234}, "bad_request")
	c.login("alice")
	c.doErr(obj{"op": "login", "password": pw("alice")}, "bad_request")
	c.doErr(obj{"op": "login", "password": pw("bob")}, "bad_request")
	c.doOK(obj{"op": "salons"})
}

// TestIDs: ill-typed or non-positive ids are bad_request without re; ids
// need not increase; unknown op and missing fields are bad_request with re.
func TestIDs(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := connect(t, s, "alice")
	for _, b := range []string{
		`{"op":"salons","id":1.0}`, `{"op":"salons","id":"1"}`, `{"op":"salons","id":0}`,
		`{"op":"salons","id":-1}`, `{"op":"salons"}`, `{"op":"salons","id":null}`,
		`{"op":"salons","id":1e2}`, `{"op":"salons","id":true}`, `{"op":"salons","id":2.5}`,
	} {
		c.sendSealed([]byte(b))
		m := c.expectSealedError("bad_request")
		noRe(t, m)
	}
	// Not increasing: fine.
	c.doOK(obj{"op": "salons", "id": 50})
	c.doOK(obj{"op": "salons", "id": 3})
	c.doOK(obj{"op": "salons", "id": 3})
	// Unknown op / missing op / ill-typed op.
	c.doErr(obj{"op": "dance"}, "bad_request")
	c.doErr(obj{"id": 9}, "bad_request")
	c.doErr(obj{"op": 5}, "bad_request")
	// Missing or ill-typed required fields.
	c.doErr(obj{"op": "fetch"}, "bad_request")
	c.doErr(obj{"op": "fetch", "salon": 3}, "bad_request")
	c.doErr(obj{"op": "who"}, "bad_request")
	c.doErr(obj{"op": "send", "salon": "general", "text": "x"}, "bad_request")
	c.doErr(obj{"op": "send", "salon": "general", "cid": "abc"}, "bad_request")
	c.doErr(obj{"op": "send", "text": "x", "cid": "abc"}, "bad_request")
	c.doErr(obj{"op": "send", "salon": "general", "text": 1, "cid": "abc"}, "bad_request")
	c.doErr(obj{"op": "send", "salon": "general", "text": "x", "cid": 12}, "bad_request")
	// Unknown fields are ignored.
	c.doOK(obj{"op": "salons", "zzz": []int{1}})
}

// TestLoginRateLimit: after limit failures from one address within the
// window, attempts are refused unchecked (rate_limited, even the right
// password) until the oldest failure is window old; refused attempts do
// not count; other addresses are not affected.
func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	const window = 2 * time.Second
	s := newServer(t, serverConfig{flags: []string{"--login-limit", "2", "--login-window", window.String()}})
	a := dial(t, s)
	a.hello()
	t0 := time.Now()
	a.doErr(obj{"op": "login", "password": "wrong-password-1"}, "auth")
	// The second failure from another connection of the same address.
	b := dial(t, s)
	b.hello()
	b.doErr(obj{"op": "login", "password": "wrong-password-2"}, "auth")
	// Now refused, even with the right password.
	a.doErr(obj{"op": "login", "password": pw("alice")}, "rate_limited")
	b.doErr(obj{"op": "login", "password": "wrong-password-3"}, "rate_limited")

	// Another address is not limited.
	o := dialFrom(t, s, "127.0.0.2")
	o.hello()
	o.login("bob")

	// Keep trying (refused attempts do not count): success must come, and
	// not before the oldest failure is window old.
	deadline := time.Now().Add(window + 15*time.Second)
	for {
		m := a.do(obj{"op": "login", "password": pw("alice")})
		if m.body.str("op") == "connected" {
			if el := time.Since(t0); el < window {
				t.Fatalf("login accepted %v after the first failure, window %v", el, window)
			}
			break
		}
		checkError(t, m, "rate_limited")
		if time.Now().After(deadline) {
			t.Fatal("still rate_limited long after the window")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLoginTimeout: a connection not logged in is closed after the login
// timeout, with or without a hello; a logged-in one is not.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--login-timeout", "700ms"}})
	bare := dial(t, s)
	hello := dial(t, s)
	hello.hello()
	logged := connect(t, s, "alice")
	bare.expectClosed(readTimeout)
	hello.expectClosed(readTimeout)
	time.Sleep(300 * time.Millisecond)
	logged.doOK(obj{"op": "salons"})
	// A session that never logged in ends with its connection.
	hello.expectUnknownSession()
}

// TestSessionTimeoutNotBeforeLogin: the session clock does not run before
// login.
func TestSessionTimeoutNotBeforeLogin(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--session-timeout", "300ms", "--login-timeout", "20s"}})
	c := dial(t, s)
	c.hello()
	time.Sleep(1200 * time.Millisecond)
	c.login("alice")
	c.doOK(obj{"op": "salons"})
}

// TestMaxConns: a connection over the limit gets a plain unavailable.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--max-conns", "1"}})
	a := connect(t, s, "alice")
	b := dial(t, s)
	got := b.expectClosed(readTimeout)
	if len(got) != 1 || got[0].kind != 'E' {
		t.Fatalf("over-limit connection: want one plain error, got %d", len(got))
	}
	checkError(t, got[0], "unavailable")
	noRe(t, got[0])
	a.doOK(obj{"op": "salons"})
}
