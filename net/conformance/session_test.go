package conformance

import (
	"strings"
	"testing"
	"time"
)

func pseudos(t *testing.T, m *msg) string {
	t.Helper()
	if m.body.str("op") != "who" {
		t.Fatalf("expected who, got %s", m.bodyRaw)
	}
	arr, ok := m.body["pseudos"].([]any)
	if !ok {
		t.Fatalf("pseudos not an array: %s", m.bodyRaw)
	}
	var out []string
	for _, a := range arr {
		out = append(out, a.(string))
	}
	return strings.Join(out, ",")
}

// TestSalonsLast: salons lists only accessible salons with last = newest
// id, 0 when empty.
func TestSalonsLast(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	b := connect(t, s, "bob")
	get := func(c *client) map[string]int64 {
		t.Helper()
		m := c.doOK(obj{"op": "salons"})
		wantKeys(t, m, "op", "re", "salons")
		if m.body.str("op") != "salons" {
			t.Fatalf("salons: %s", m.bodyRaw)
		}
		arr, ok := m.body["salons"].([]any)
		if !ok {
			t.Fatalf("salons: %s", m.bodyRaw)
		}
		out := map[string]int64{}
		for _, e := range arr {
			o := obj(e.(map[string]any))
			if len(o) != 2 {
				t.Errorf("salon entry %v: want name and last", o)
			}
			out[o.str("name")] = o.num(t, "last")
		}
		return out
	}
	if got := get(a); len(got) != 2 || got["general"] != 0 || got["dev"] != 0 {
		t.Fatalf("alice salons %v", got)
	}
	id1 := a.send("general", "x")
	id2 := a.send("dev", "y")
	id3 := a.send("general", "z")
	if got := get(a); got["general"] != id3 || got["dev"] != id2 || id1 == 0 {
		t.Fatalf("alice salons %v, want general %d dev %d", got, id3, id2)
	}
	if got := get(b); len(got) != 1 || got["general"] != id3 {
		t.Fatalf("bob salons %v", got)
	}
}

// TestWho: users with a live session who may access the salon, once each,
// sorted, the asker included; a dropped session still counts; bye removes.
func TestWho(t *testing.T) {
	t.Parallel()
	users := append(defaultUsers(), user{"Zed", pw("zed"), []string{"general"}}, user{"dave", pw("dave"), []string{"general"}})
	s := newServer(t, serverConfig{users: users, salons: []string{"dev"}})
	a1 := connect(t, s, "alice")
	a2 := connect(t, s, "alice")
	b := connect(t, s, "bob")
	cc := connect(t, s, "carol")
	z := connect(t, s, "Zed")
	pending := dial(t, s) // dave: hello, not logged in
	pending.hello()
	pending.doErr(obj{"op": "login", "password": "not-daves-password"}, "auth")
	// Sorted ignoring ASCII case (3.4): Zed last, where byte order would
	// put it first.
	if got := pseudos(t, b.doOK(obj{"op": "who", "salon": "general"})); got != "alice,bob,Zed" {
		t.Fatalf("who general: %q, want alice,bob,Zed", got)
	}
	m := a1.doOK(obj{"op": "who", "salon": "dev"})
	wantKeys(t, m, "op", "re", "salon", "pseudos")
	if got := pseudos(t, m); got != "alice,carol" || m.body.str("salon") != "dev" {
		t.Fatalf("who dev: %s", m.bodyRaw)
	}
	// Dropped but not timed out: still there.
	cc.close()
	if got := pseudos(t, a1.doOK(obj{"op": "who", "salon": "dev"})); got != "alice,carol" {
		t.Fatalf("who dev after drop: %q", got)
	}
	// bye: gone; one of two sessions leaving keeps the user.
	a2.doOK(obj{"op": "bye"})
	z.doOK(obj{"op": "bye"})
	if got := pseudos(t, b.doOK(obj{"op": "who", "salon": "general"})); got != "alice,bob" {
		t.Fatalf("who general after bye: %q", got)
	}
}

// TestBye: bye answers, closes, forgets the session, and posts
// `<pseudo> disconnected` (pseudo "", system true) in the last salon
// successfully fetched or sent in.
func TestBye(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	cc := connect(t, s, "carol")
	b := connect(t, s, "bob")
	a.fetch(obj{"salon": "general"})
	a.send("dev", "hi dev")
	a.fetch(obj{"salon": "general"})
	a.doErr(obj{"op": "fetch", "salon": "nosuch"}, "forbidden") // not a successful fetch
	m := a.doOK(obj{"op": "bye"})
	wantKeys(t, m, "op", "re")
	if m.body.str("op") != "bye" {
		t.Fatalf("bye: %s", m.bodyRaw)
	}
	if got := a.expectClosed(readTimeout); len(got) != 0 {
		t.Fatalf("frames after bye: %d", len(got))
	}
	msgs, _, fm := b.fetch(obj{"salon": "general", "limit": 1})
	if len(msgs) != 1 || msgs[0].Text != "alice disconnected" || msgs[0].Pseudo != "" || !msgs[0].System {
		t.Fatalf("general after bye: %s", fm.bodyRaw)
	}
	if _, ok := obj(fm.body["messages"].([]any)[0].(map[string]any))["pseudo"]; !ok {
		t.Fatalf("system message without a pseudo field: %s", fm.bodyRaw)
	}
	msgs, _, _ = cc.fetch(obj{"salon": "dev", "limit": 1})
	if len(msgs) != 1 || msgs[0].Text != "hi dev" {
		t.Fatalf("dev after bye: %q", texts(msgs))
	}
	// Session forgotten.
	r := a.resumeConn()
	r.request(obj{"op": "resume"})
	noRe(t, r.expectPlainError("unknown_session"))

	// A session with no last salon posts nowhere.
	before := b.doOK(obj{"op": "salons"}).bodyRaw
	d := connect(t, s, "bob")
	d.doErr(obj{"op": "fetch", "salon": "dev"}, "forbidden")
	d.doOK(obj{"op": "bye"})
	d.expectClosed(readTimeout)
	if after := b.doOK(obj{"op": "salons"}).bodyRaw; string(after[strings.Index(string(after), "salons\":"):]) != string(before[strings.Index(string(before), "salons\":"):]) {
		t.Fatalf("bye with no last salon posted: %s -> %s", before, after)
	}
}

// TestSessionTimeout: an idle logged-in session ends after the timeout:
// its connection closes, who forgets it, and `<pseudo> disconnected` goes to
// its last active salon; a dropped session is listed until then; rejected
// envelopes do not restart the clock.
func TestSessionTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--session-timeout", "2s"}})
	watch := connect(t, s, "bob")
	stop := make(chan struct{})
	defer close(stop)
	idle := connect(t, s, "alice")
	idle.fetch(obj{"salon": "general"})
	dropped := connect(t, s, "carol")
	dropped.fetch(obj{"salon": "dev"})
	dropped.close()
	noisy := connect(t, s, "alice")
	noisy.fetch(obj{"salon": "general"})

	// Keep bob alive while waiting (bob only needs a request now and then).
	keep := func() { watch.doOK(obj{"op": "salons"}) }

	closed := make(chan struct{})
	go func() {
		// Bad envelopes every 150 ms; the server must still time it out.
		for {
			select {
			case <-stop:
				return
			default:
			}
			env := noisy.sess.seal(marshal(obj{"op": "salons", "id": 1}), sealOpts{seq: noisy.sess.seq + 1, badSig: true})
			lines := frameLines(env)
			noisy.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := noisy.conn.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
				return
			}
			time.Sleep(150 * time.Millisecond)
		}
	}()
	go func() {
		// drain noisy's crypto errors until it closes
		defer close(closed)
		for {
			if _, err := noisy.tryRead(20 * time.Second); err != nil {
				return
			}
		}
	}()

	deadline := time.Now().Add(20 * time.Second)
	idleClosed := make(chan struct{})
	go func() {
		defer close(idleClosed)
		for {
			if _, err := idle.tryRead(25 * time.Second); err != nil {
				return
			}
		}
	}()
	for {
		keep()
		select {
		case <-idleClosed:
		default:
			if time.Now().After(deadline) {
				t.Fatal("idle session not closed")
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		break
	}
	for {
		keep()
		select {
		case <-closed:
		default:
			if time.Now().After(deadline) {
				t.Fatal("session sending only rejected envelopes not timed out")
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		break
	}
	// who forgets them (the dropped one too, by now).
	for {
		got := pseudos(t, watch.doOK(obj{"op": "who", "salon": "general"}))
		if got == "bob" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("who general still %q", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The message is posted as the session ends (possibly just after who
	// forgets it): wait for it.
	for {
		msgs, _, _ := watch.fetch(obj{"salon": "general"})
		n := 0
		for _, m := range msgs {
			if m.Text == "alice disconnected" && m.System && m.Pseudo == "" {
				n++
			}
		}
		if n == 2 {
			break
		}
		if n > 2 || time.Now().After(deadline) {
			t.Fatalf("want two `alice disconnected` in general, got %q", texts(msgs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// carol's went to dev: resume is refused now.
	r := dropped.resumeConn()
	r.request(obj{"op": "resume"})
	r.expectPlainError("unknown_session")
	a := connect(t, s, "alice")
	msgs, _, _ := a.fetch(obj{"salon": "dev", "limit": 1})
	if len(msgs) != 1 || msgs[0].Text != "carol disconnected" || !msgs[0].System {
		t.Fatalf("dev: %q", texts(msgs))
	}
}

// TestResume: resume moves the session to a new connection and closes the
// old one; counters survive; only resume is accepted first.
func TestResume(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	a.fetch(obj{"salon": "general"})
	oldSeq := a.sess.seq
	oldEnv := a.sess.seal(marshal(obj{"op": "salons", "id": 5}), sealOpts{seq: oldSeq})

	// A valid first envelope that is not resume: plain bad_request.
	x := a.resumeConn()
	x.request(obj{"op": "salons"})
	x.expectPlainError("bad_request")

	r := a.resumeConn()
	m := r.do(obj{"op": "resume"})
	wantKeys(t, m, "op", "re", "status")
	if m.body.str("op") != "resumed" || m.body.str("status") != "CONNECTÉ" {
		t.Fatalf("resume: %s", m.bodyRaw)
	}
	a.expectClosed(readTimeout)
	// Still logged in, same user.
	id := r.send("general", "after resume")
	msgs, _, _ := r.fetch(obj{"salon": "general", "limit": 1})
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].Pseudo != "alice" {
		t.Fatalf("after resume: %+v", msgs)
	}
	// An old seq is refused on the new connection (sealed now).
	r.sendFrame(oldEnv)
	noRe(t, r.expectSealedError("crypto"))
	// A resume with an old seq on a fresh connection: plain crypto.
	y := a.resumeConn()
	y.sendFrame(a.sess.seal(marshal(obj{"op": "resume", "id": 6}), sealOpts{seq: oldSeq}))
	noRe(t, y.expectPlainError("crypto"))
	r.doOK(obj{"op": "salons"})
}
