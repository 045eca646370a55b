package conformance

import (
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSealedHeaderBoundary: a sealed envelope shorter than its header
// (42 bytes) is bad_request; one of exactly the header fails the checks
// (crypto); a sealed envelope of another version is frame.
func TestSealedHeaderBoundary(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := connect(t, s, "alice")
	full := c.sess.seal(marshal(obj{"op": "salons", "id": 1}), sealOpts{seq: c.sess.seq + 1})
	c.sendFrame(full[:41])
	noRe(t, c.expectSealedError("bad_request"))
	c.sendFrame(full[:42])
	noRe(t, c.expectSealedError("crypto"))
	v2 := append([]byte{}, full...)
	v2[1] = 2
	c.sendFrame(v2)
	noRe(t, c.expectSealedError("frame"))
	c.doOK(obj{"op": "salons"})

	// No session: the same, plain.
	d := dial(t, s)
	d.sendFrame(full[:41])
	noRe(t, d.expectPlainError("bad_request"))
	rid := make([]byte, 8)
	rand.Read(rid)
	d.sendFrame(c.sess.seal(marshal(obj{"op": "resume", "id": 1}), sealOpts{seq: c.sess.seq + 1, recipientID: rid}))
	noRe(t, d.expectPlainError("crypto"))
	c.doOK(obj{"op": "salons"})
}

// TestFetchLimitDefaultMax: the default max fetch limit is 500.
func TestFetchLimitDefaultMax(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	a.fetch(obj{"salon": "general", "limit": 500})
	a.doErr(obj{"op": "fetch", "salon": "general", "limit": 501}, "bad_request")
	a.doErr(obj{"op": "fetch", "salon": "general", "limit": 0}, "bad_request")
}

var atFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// TestMessageTime: `at` is written as in the example of 3.3
// (UTC, milliseconds), and close to now.
func TestMessageTime(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	before := time.Now().Add(-time.Minute)
	a.send("general", "x")
	msgs, _, _ := a.fetch(obj{"salon": "general"})
	if !atFormat.MatchString(msgs[0].At) {
		t.Fatalf("at %q is not like 2026-11-25T10:00:00.123Z", msgs[0].At)
	}
	at, _ := time.Parse(time.RFC3339Nano, msgs[0].At)
	if at.Before(before) || at.After(time.Now().Add(time.Minute)) {
		t.Fatalf("at %v is not now", at)
	}
}

// TestResumeKeepsLogin: a resumed connection is logged in (no login
// timeout); a session that never logged in ends with its connection; a
// resumed connection seals its errors.
func TestResumeKeepsLogin(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--login-timeout", "700ms"}})
	a := connect(t, s, "alice")
	a.close()
	r := a.resumeConn()
	r.doOK(obj{"op": "resume"})
	time.Sleep(1200 * time.Millisecond)
	r.doOK(obj{"op": "salons"})
	r.writeLines("(ENDMESS)")
	noRe(t, r.expectSealedError("frame"))
	r.doOK(obj{"op": "who", "salon": "general"})

	p := dial(t, s)
	p.hello()
	p.close()
	p.expectUnknownSession()
}

// TestRatePerSession: the send limit is per session, not per user.
func TestRatePerSession(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--send-rate", "1", "--send-burst", "1"}})
	a1 := connect(t, s, "alice")
	a2 := connect(t, s, "alice")
	for i := 0; ; i++ {
		if i > 50 {
			t.Fatal("never limited")
		}
		m := a1.do(obj{"op": "send", "salon": "general", "text": "x", "cid": randCID()})
		if m.body.str("op") == "error" {
			checkError(t, m, "rate_limited")
			break
		}
	}
	a2.send("general", "other session")
}

// TestNamesAsCreated: pseudo and salon names ignore case and are shown as
// created.
func TestNamesAsCreated(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{
		users:  []user{{"Zed", pw("zed"), []string{"Chat.Room"}}},
		salons: []string{"Chat.Room"},
	})
	z := dial(t, s)
	z.hello()
	m := z.login("Zed")
	if m.body.str("pseudo") != "Zed" || !strings.Contains(string(m.bodyRaw), `"Chat.Room"`) {
		t.Fatalf("login: %s", m.bodyRaw)
	}
	z.send("chat.room", "hi")
	msgs, _, _ := z.fetch(obj{"salon": "CHAT.ROOM"})
	if len(msgs) != 1 || msgs[0].Pseudo != "Zed" {
		t.Fatalf("fetch: %+v", msgs)
	}
	if got := pseudos(t, z.doOK(obj{"op": "who", "salon": "chat.ROOM"})); got != "Zed" {
		t.Fatalf("who: %q", got)
	}
	sm := z.doOK(obj{"op": "salons"})
	if !strings.Contains(string(sm.bodyRaw), `"name":"Chat.Room"`) {
		t.Fatalf("salons: %s", sm.bodyRaw)
	}
}

// TestDedupSurvivesRestart: cids are unique per user forever.
func TestDedupSurvivesRestart(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	cid := randCID()
	first := a.doOK(obj{"op": "send", "salon": "general", "text": "x", "cid": cid})
	s.stop()
	s.start()
	b := connect(t, s, "alice")
	again := b.doOK(obj{"op": "send", "salon": "dev", "text": "y", "cid": cid})
	if again.body.str("op") != "ack" || again.body.num(t, "msg") != first.body.num(t, "msg") || again.body.num(t, "portions") != first.body.num(t, "portions") {
		t.Fatalf("after restart: %s, first %s", again.bodyRaw, first.bodyRaw)
	}
}

// TestTwoParkedFetches: each parked fetch wakes for its own salon.
func TestTwoParkedFetches(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	b := connect(t, s, "bob")
	cc := connect(t, s, "carol")
	g := b.send("general", "g0")
	d := cc.send("dev", "d0")
	pg := a.request(obj{"op": "fetch", "salon": "general", "after": g, "wait_ms": 20000})
	pd := a.request(obj{"op": "fetch", "salon": "dev", "after": d, "wait_ms": 20000})
	a.doOK(obj{"op": "salons"})
	cc.send("dev", "d1")
	m := a.read()
	if re, _ := m.body.intField("re"); re != pd {
		t.Fatalf("expected the dev fetch first, got %s", m.bodyRaw)
	}
	wantTexts(t, "dev", messagesOf(t, m), "d1")
	b.send("general", "g1")
	m = a.read()
	if re, _ := m.body.intField("re"); re != pg {
		t.Fatalf("expected the general fetch, got %s", m.bodyRaw)
	}
	wantTexts(t, "general", messagesOf(t, m), "g1")
}

// TestRefusedBodiesRestartClock: an envelope that passes the checks of 2.2
// restarts the session clock even if its body is refused.
func TestRefusedBodiesRestartClock(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--session-timeout", "1s"}})
	a := connect(t, s, "alice")
	end := time.Now().Add(2500 * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		if i%2 == 0 {
			a.sendSealed([]byte("[]"))
			a.expectSealedError("bad_request")
		} else {
			a.doErr(obj{"op": "fetch", "salon": "general", "limit": 0}, "bad_request")
		}
		time.Sleep(150 * time.Millisecond)
	}
	a.doOK(obj{"op": "salons"})
}

// TestLargestSendDefault: with the default limits, a 65536-byte text that
// doubles when escaped, with the longest salon name and cid, fits in one
// frame both ways; 65537 bytes is too_large.
func TestLargestSendDefault(t *testing.T) {
	t.Parallel()
	users := defaultUsers()
	users[0].salons = append(users[0].salons, longSalon)
	s := newServer(t, serverConfig{users: users, salons: []string{"dev", longSalon}})
	a := connect(t, s, "alice")
	text := strings.Repeat(`"`, 65536)
	m := a.doOK(obj{"op": "send", "id": int64(9007199254740991), "salon": longSalon, "text": text, "cid": strings.Repeat("~", 64)})
	if m.body.str("op") != "ack" {
		t.Fatalf("largest send: %s", m.bodyRaw)
	}
	a.doErr(obj{"op": "send", "salon": longSalon, "text": text + "a", "cid": randCID()}, "too_large")
	msgs, _, fm := a.fetch(obj{"salon": longSalon, "limit": 2})
	if len(msgs) != 1 || msgs[0].Text != text {
		t.Fatalf("largest message: %d messages in %d portions", len(msgs), fm.portions)
	}
}

// TestBigIDsEchoed: re is exactly the id, even past 2^53.
func TestBigIDsEchoed(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	for _, id := range []int64{9007199254740993, 9223372036854775807} {
		m := a.do(obj{"op": "salons", "id": id}) // do checks re == id exactly
		if m.body.str("op") != "salons" {
			t.Fatalf("id %d: %s", id, m.bodyRaw)
		}
	}
}

// TestRevokeParkedFetchTimeout: a parked fetch of a user who lost access
// answers forbidden even when it wakes by its timeout, with nothing new.
func TestRevokeParkedFetchTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	cc := connect(t, s, "carol")
	last := cc.send("dev", "before")
	parked := a.request(obj{"op": "fetch", "salon": "dev", "after": last, "wait_ms": 2000})
	a.doOK(obj{"op": "salons"})
	s.admin("", "salon", "revoke", "dev", "alice")
	m := a.read()
	if re, _ := m.body.intField("re"); re != parked {
		t.Fatalf("expected the parked fetch, got %s", m.bodyRaw)
	}
	checkError(t, m, "forbidden")
}

// TestDefaultLimits: by default 5 failed logins from one address are
// allowed before rate_limited, and a session may send a burst of 40.
func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{defaultLoginLimit: true})
	c := dial(t, s)
	c.hello()
	for i := 0; i < 5; i++ {
		c.doErr(obj{"op": "login", "password": "wrong-password-" + itoa(int64(i))}, "auth")
	}
	c.doErr(obj{"op": "login", "password": pw("alice")}, "rate_limited")
	o := dialFrom(t, s, "127.0.0.2")
	o.hello()
	o.login("alice")
	for i := 0; i < 40; i++ {
		o.send("general", "burst "+itoa(int64(i)))
	}
}

// TestRemovedUserParkedFetch: PROTOCOL.md section 4: "a parked fetch of a
// user who lost access to the salon (revoke, removal) answers `forbidden`
// when it wakes, and never carries a message from it." (Found by this
// suite: the server used to answer `auth` and close; fixed in 7287145.)
func TestRemovedUserParkedFetch(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	b := connect(t, s, "bob")
	last := b.send("general", "before")
	parked := a.request(obj{"op": "fetch", "salon": "general", "after": last, "wait_ms": 20000})
	a.doOK(obj{"op": "salons"})
	s.admin("", "user", "remove", "alice")
	b.send("general", "secret after removal")
	m, err := a.tryRead(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(m.bodyRaw), "secret") {
		t.Fatalf("removed user got the message: %s", m.bodyRaw)
	}
	if re, _ := m.body.intField("re"); re != parked {
		t.Fatalf("unexpected %s", m.bodyRaw)
	}
	checkError(t, m, "forbidden")
}

// TestStreamSplitAndPipelined: frames may arrive a byte at a time, and many
// requests may be pipelined in one write; each gets exactly one response.
func TestStreamSplitAndPipelined(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := dial(t, s)
	k := newKeys(t)
	ch := clientHello(k)
	raw := strings.Join(frameLines(ch), "\r\n") + "\r\n"
	for i := 0; i < len(raw); i++ {
		c.writeRaw(raw[i : i+1])
		if i%16 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	m := c.read()
	sess, err := checkServerHello(ch, m.raw, k)
	if err != nil {
		t.Fatal(err)
	}
	c.sess = sess
	c.login("alice")
	var all strings.Builder
	want := map[int64]bool{}
	for i := 0; i < 20; i++ {
		c.sess.nextID++
		c.sess.seq++
		f := obj{"op": "salons", "id": c.sess.nextID}
		if i%3 == 1 {
			f = obj{"op": "send", "id": c.sess.nextID, "salon": "general", "text": "p" + itoa(int64(i)), "cid": randCID()}
		}
		want[c.sess.nextID] = true
		all.WriteString(strings.Join(frameLines(c.sess.seal(marshal(f), sealOpts{seq: c.sess.seq})), "\n") + "\n")
	}
	c.writeRaw(all.String())
	for len(want) > 0 {
		m := c.read()
		re, _ := m.body.intField("re")
		if !want[re] || m.body.str("op") == "error" {
			t.Fatalf("unexpected or repeated answer %s", m.bodyRaw)
		}
		delete(want, re)
	}
}
