package conformance

import (
	"strings"
	"testing"
	"time"
)

const longSalon = "s2345678901234567890123456789.-_" // 32 chars

func smallServer(t *testing.T, extra ...string) *server {
	t.Helper()
	users := defaultUsers()
	users[0].salons = append(users[0].salons, longSalon)
	return newServer(t, serverConfig{
		users:  users,
		salons: []string{"dev", longSalon},
		flags:  append([]string{"--max-message", "1000", "--max-portions", "13"}, extra...),
	})
}

// rawSend sends a send body given as raw JSON text for the text field
// (so tests can put escapes the encoder would not write).
func (c *client) rawSend(salon, rawText, cid string) *msg {
	c.t.Helper()
	c.sess.nextID++
	id := c.sess.nextID
	body := `{"op":"send","id":` + itoa(id) + `,"salon":"` + salon + `","text":"` + rawText + `","cid":"` + cid + `"}`
	c.sendSealed([]byte(body))
	m := c.read()
	if re, _ := m.body.intField("re"); re != id {
		c.t.Fatalf("re mismatch: %s", m.bodyRaw)
	}
	return m
}

func itoa(n int64) string { return strings.TrimSpace(string(marshal(n))) }

// TestSendText: text validation of 3.2.
func TestSendText(t *testing.T) {
	t.Parallel()
	s := smallServer(t)
	c := connect(t, s, "alice")
	sendErr := func(text, code string) {
		t.Helper()
		c.doErr(obj{"op": "send", "salon": "general", "text": text, "cid": randCID()}, code)
	}
	sendErr("", "bad_request")
	for _, ch := range []string{"\x00", "\x01", "\x1f", "\x7f", "\r", "\x1b", "\x0b", "\x0c"} {
		sendErr("a"+ch+"b", "bad_request")
	}
	sendErr(strings.Repeat("a", 1001), "too_large")
	sendErr(strings.Repeat("é", 500)+"a", "too_large")
	// Limits included; newline and tab allowed.
	ok := strings.Repeat("a\n\tb", 250)
	id := c.send("general", ok)
	ok2 := strings.Repeat("é", 500)
	c.send("general", ok2)
	// Lone surrogate escapes are invalid; a pair is fine.
	for _, raw := range []string{`\ud800`, `a\udc00b`, `\ud800\u0041`, `\udfff\ud800`} {
		m := c.rawSend("general", raw, randCID())
		checkError(t, m, "bad_request")
	}
	m := c.rawSend("general", `\ud83d\ude00 ok`, randCID())
	if m.body.str("op") != "ack" {
		t.Fatalf("surrogate pair refused: %s", m.bodyRaw)
	}
	// Escaped control characters are still control characters.
	checkError(t, c.rawSend("general", `a\u0000`, randCID()), "bad_request")
	checkError(t, c.rawSend("general", `a\u007f`, randCID()), "bad_request")
	// Invalid UTF-8 bytes.
	c.sendSealed([]byte(`{"op":"send","id":99,"salon":"general","text":"a` + "\xc3(" + `b","cid":"zz"}`))
	if m := c.expectSealedError("bad_request"); m.body["re"] != nil {
		if re, _ := m.body.intField("re"); re != 99 {
			t.Fatalf("re: %s", m.bodyRaw)
		}
	}
	// The answer may be trimmed to one frame: check one at a time.
	msgs, _, _ := c.fetch(obj{"salon": "general", "limit": 1, "after": id - 1})
	msgs2, _, _ := c.fetch(obj{"salon": "general", "limit": 2, "after": id})
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].Text != ok || len(msgs2) < 1 || msgs2[0].Text != ok2 {
		t.Fatalf("stored texts: %q %q", texts(msgs), texts(msgs2))
	}
	msgs, _, _ = c.fetch(obj{"salon": "general", "limit": 1})
	if len(msgs) != 1 || msgs[0].Text != "😀 ok" {
		t.Fatalf("stored texts: %q", texts(msgs))
	}
}

// TestSendCID: cid rules of 3.2.
func TestSendCID(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := connect(t, s, "alice")
	for _, cid := range []string{"", strings.Repeat("a", 65), "a b", "é", "a\x7f", "a\tb"} {
		c.doErr(obj{"op": "send", "salon": "general", "text": "x", "cid": cid}, "bad_request")
	}
	for _, cid := range []string{strings.Repeat("z", 64), "!", "~", `"\{}`} {
		m := c.doOK(obj{"op": "send", "salon": "general", "text": "x", "cid": cid})
		if m.body.str("op") != "ack" {
			t.Fatalf("cid %q: %s", cid, m.bodyRaw)
		}
	}
}

// TestSendAckAndDedup: ack shape; the same cid from the same user, from any
// session, whatever salon and text, gets the same ack, portions included,
// and nothing is stored twice; another user's same cid is separate.
func TestSendAckAndDedup(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a1 := connect(t, s, "alice")
	a2 := connect(t, s, "alice")
	b := connect(t, s, "bob")
	cid := "same-cid-" + randCID()
	a1.sess.nextID++
	firstPortions := int64(a1.sendSealed(marshal(obj{"op": "send", "id": a1.sess.nextID, "salon": "general", "text": "first", "cid": cid})))
	first := a1.read()
	wantKeys(t, first, "op", "re", "msg", "portions")
	if first.body.str("op") != "ack" || first.body.num(t, "msg") <= 0 || first.body.num(t, "portions") != firstPortions {
		t.Fatalf("ack: %s", first.bodyRaw)
	}
	msgID := first.body.num(t, "msg")
	long := strings.Repeat("second and much longer ", 80) // more portions than the first
	for _, c := range []*client{a1, a2} {
		for _, salon := range []string{"general", "dev"} {
			again := c.doOK(obj{"op": "send", "salon": salon, "text": long, "cid": cid})
			if again.body.str("op") != "ack" || again.body.num(t, "msg") != msgID || again.body.num(t, "portions") != firstPortions {
				t.Fatalf("retry ack %s, first %s", again.bodyRaw, first.bodyRaw)
			}
		}
	}
	other := b.doOK(obj{"op": "send", "salon": "general", "text": "bob's", "cid": cid})
	if other.body.num(t, "msg") == msgID {
		t.Fatal("cid shared between users")
	}
	for _, salon := range []string{"general", "dev"} {
		msgs, _, _ := a1.fetch(obj{"salon": salon, "limit": 50})
		n := 0
		for _, m := range msgs {
			if m.Text == long {
				t.Fatalf("retried text stored in %s", salon)
			}
			if m.Text == "first" {
				n++
				if m.ID != msgID || salon != "general" {
					t.Fatalf("first stored as %+v in %s", m, salon)
				}
			}
		}
		if salon == "general" && n != 1 {
			t.Fatalf("first stored %d times", n)
		}
	}
}

// TestSendForbidden: no access, no such salon and malformed names are all
// forbidden, alike; names ignore case.
func TestSendForbidden(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	b := connect(t, s, "bob")
	send := func(salon string) *msg {
		return b.do(obj{"op": "send", "salon": salon, "text": "x", "cid": randCID()})
	}
	m1 := send("dev")
	checkError(t, m1, "forbidden")
	m2 := send("nosuchsalon")
	checkError(t, m2, "forbidden")
	if m1.body.str("message") != m2.body.str("message") {
		t.Errorf("forbidden reveals existence: %q vs %q", m1.body.str("message"), m2.body.str("message"))
	}
	for _, bad := range []string{"", "a b", strings.Repeat("g", 33), "génér", "../general", "general\n", "general/x"} {
		checkError(t, send(bad), "forbidden")
		b.doErr(obj{"op": "fetch", "salon": bad}, "forbidden")
		b.doErr(obj{"op": "who", "salon": bad}, "forbidden")
	}
	b.doErr(obj{"op": "fetch", "salon": "dev"}, "forbidden")
	b.doErr(obj{"op": "who", "salon": "dev"}, "forbidden")
	// Case-insensitive names.
	id := b.send("GENERAL", "upper")
	msgs, _, _ := b.fetch(obj{"salon": "General", "limit": 1})
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("case-insensitive salon: %+v", msgs)
	}
}

// TestSendOrder: validation, then access, then dedup, then the rate limit;
// only a stored send spends rate; rate_limited stores nothing.
func TestSendOrder(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--send-rate", "1", "--send-burst", "2"}})
	b := connect(t, s, "bob")
	// validation before access
	b.doErr(obj{"op": "send", "salon": "dev", "text": "", "cid": randCID()}, "bad_request")
	b.doErr(obj{"op": "send", "salon": "dev", "text": "x", "cid": ""}, "bad_request")
	b.doErr(obj{"op": "send", "salon": "dev", "text": strings.Repeat("x", 65537), "cid": randCID()}, "too_large")
	// access before dedup
	cid := randCID()
	first := b.doOK(obj{"op": "send", "salon": "general", "text": "one", "cid": cid})
	b.doErr(obj{"op": "send", "salon": "dev", "text": "one", "cid": cid}, "forbidden")
	// Refused sends and dedup hits do not spend rate.
	for i := 0; i < 10; i++ {
		b.doErr(obj{"op": "send", "salon": "dev", "text": "x", "cid": randCID()}, "forbidden")
		b.doErr(obj{"op": "send", "salon": "general", "text": "", "cid": randCID()}, "bad_request")
		b.doOK(obj{"op": "send", "salon": "general", "text": "one", "cid": cid})
	}
	// Spend until limited.
	start := time.Now()
	stored := 1
	var limitedText string
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("never rate_limited")
		}
		text := "burst " + itoa(int64(i))
		m := b.do(obj{"op": "send", "salon": "general", "text": text, "cid": randCID()})
		if m.body.str("op") == "ack" {
			stored++
			continue
		}
		checkError(t, m, "rate_limited")
		limitedText = text
		break
	}
	el := time.Since(start).Seconds()
	if max := 2 + 1 + int(el*1) + 2; stored > max {
		t.Errorf("%d sends stored in %.1fs with rate 1, burst 2", stored, el)
	}
	// Limited: dedup still answers, validation and access still come first.
	again := b.doOK(obj{"op": "send", "salon": "general", "text": "one", "cid": cid})
	if again.body.num(t, "msg") != first.body.num(t, "msg") {
		t.Fatalf("dedup while limited: %s", again.bodyRaw)
	}
	b.doErr(obj{"op": "send", "salon": "general", "text": "", "cid": randCID()}, "bad_request")
	b.doErr(obj{"op": "send", "salon": "dev", "text": "x", "cid": randCID()}, "forbidden")
	msgs, _, _ := b.fetch(obj{"salon": "general", "limit": 100})
	for _, m := range msgs {
		if m.Text == limitedText {
			t.Fatal("rate_limited send was stored")
		}
	}
	// The bucket refills.
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := b.do(obj{"op": "send", "salon": "general", "text": "later", "cid": randCID()})
		if m.body.str("op") == "ack" {
			break
		}
		checkError(t, m, "rate_limited")
		if time.Now().After(deadline) {
			t.Fatal("rate limit never refilled")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSendRateOff: --send-rate 0 turns the limit off.
func TestSendRateOff(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--send-rate", "0", "--send-burst", "1"}})
	c := connect(t, s, "alice")
	for i := 0; i < 45; i++ {
		c.send("general", "m"+itoa(int64(i)))
	}
}

// TestLargestSendFits: the largest allowed send (longest names, cid and a
// text that doubles when JSON-escaped) fits in one frame, and so does its
// fetch answer.
func TestLargestSendFits(t *testing.T) {
	t.Parallel()
	s := smallServer(t)
	c := connect(t, s, "alice")
	text := strings.Repeat(`"`, 1000)
	m := c.doOK(obj{"op": "send", "id": int64(9007199254740991), "salon": longSalon, "text": text, "cid": strings.Repeat("~", 64)})
	if m.body.str("op") != "ack" {
		t.Fatalf("largest send: %s", m.bodyRaw)
	}
	text2 := strings.Repeat("\u2028", 333) // escaped as \u2028 by some encoders
	c.send(longSalon, text2)
	msgs, more, _ := c.fetch(obj{"salon": longSalon, "limit": 1, "before": m.body.num(t, "msg") + 1})
	if len(msgs) != 1 || msgs[0].Text != text {
		t.Fatalf("largest message not fetched: %d messages, more=%v", len(msgs), more)
	}
	msgs, _, _ = c.fetch(obj{"salon": longSalon, "limit": 1})
	if len(msgs) != 1 || msgs[0].Text != text2 {
		t.Fatalf("message not fetched: %d messages", len(msgs))
	}
}

// TestAckIsDurable: once acked, a message survives a crash of the server.
func TestAckIsDurable(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := connect(t, s, "alice")
	id := c.send("general", "survives a crash")
	fp := s.fingerprint
	s.kill()
	s.start()
	if s.fingerprint != fp {
		t.Fatalf("identity changed across a restart: %s -> %s", fp, s.fingerprint)
	}
	c2 := connect(t, s, "alice")
	msgs, _, _ := c2.fetch(obj{"salon": "general", "limit": 1})
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].Text != "survives a crash" {
		t.Fatalf("after crash: %+v", msgs)
	}
	// The old session is gone after a restart.
	r := c.resumeConn()
	r.request(obj{"op": "resume"})
	r.expectPlainError("unknown_session")
}

// TestSendTextUnicode: U+0000-U+001F (but newline and tab), U+007F and
// the C1 controls U+0080-U+009F are refused control characters, raw or
// escaped; U+00A0, U+2028 and a BOM are valid text; invalid UTF-8
// (overlong, encoded surrogates) is refused.
func TestSendTextUnicode(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := connect(t, s, "alice")
	for _, text := range []string{"a\u0080b", "a\u0085b", "a\u009bb", "\u009b31m", "a\u009fb"} {
		c.doErr(obj{"op": "send", "salon": "general", "text": text, "cid": randCID()}, "bad_request")
	}
	for _, esc := range []string{`a\u0080`, `\u009B31m`, `a\u009f`} {
		checkError(t, c.rawSend("general", esc, randCID()), "bad_request")
	}
	for _, text := range []string{"a\u00a0b", "a\u2028b", "\ufeffbom", "\U0010FFFF", "\ufffd"} {
		id := c.send("general", text)
		msgs, _, _ := c.fetch(obj{"salon": "general", "limit": 1})
		if len(msgs) != 1 || msgs[0].ID != id || msgs[0].Text != text {
			t.Fatalf("%q stored as %q", text, texts(msgs))
		}
	}
	for _, raw := range []string{"a\xc0\xafb", "a\xed\xa0\x80b", "a\xf4\x90\x80\x80b", "\xff"} {
		c.sendSealed([]byte(`{"op":"send","id":99,"salon":"general","text":"` + raw + `","cid":"` + randCID() + `"}`))
		m := c.expectSealedError("bad_request")
		if re, ok := m.body.intField("re"); ok && re != 99 {
			t.Fatalf("re: %s", m.bodyRaw)
		}
	}
}
