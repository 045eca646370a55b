package conformance

import (
	"strings"
	"testing"
	"time"
)

var full256 = strings.Repeat("A", 256)

// brokenCase is a frame defect, given as the lines that show it (the last
// line is the one at which the server must answer) and the lines that end
// the broken frame afterwards.
type brokenCase struct {
	name     string
	lines    []string
	rest     []string // lines sent after the error, up to the (ENDMESS) ending the frame
	contains string   // text the error message must hold, if any
}

func brokenCases() []brokenCase {
	return []brokenCase{
		{"hole", []string{portion(1, full256), portion(2, full256), portion(4, "AAAA")}, []string{"(ENDMESS)"}, "missing portion 3"},
		{"repeat", []string{portion(1, full256), portion(1, full256)}, []string{portion(2, "AA"), "(ENDMESS)"}, ""},
		{"reorder", []string{portion(2, "AAAA")}, []string{portion(1, "AAAA"), "(ENDMESS)"}, ""},
		{"leading zero", []string{"MESS01//AAAA\\\\MESS01"}, []string{"(ENDMESS)"}, ""},
		{"mismatched trailer", []string{"MESS1//AAAA\\\\MESS2"}, []string{"(ENDMESS)"}, ""},
		{"empty portion", []string{"MESS1//\\\\MESS1"}, []string{"(ENDMESS)"}, ""},
		{"portion over 256", []string{portion(1, full256+"A")}, []string{"(ENDMESS)"}, ""},
		{"plus sign", []string{portion(1, "AA+A")}, []string{"(ENDMESS)"}, ""},
		{"padding", []string{portion(1, "AA==")}, []string{"(ENDMESS)"}, ""},
		{"slash", []string{portion(1, "AA/A")}, []string{"(ENDMESS)"}, ""},
		{"short non-last", []string{portion(1, "AAAA"), portion(2, "AAAA")}, []string{"(ENDMESS)"}, ""},
		{"stray line", []string{"hello there"}, []string{"(ENDMESS)"}, ""},
		{"stray line mid-frame", []string{portion(1, full256), "MESS2 AAAA"}, []string{portion(2, "AAAA"), "(ENDMESS)"}, ""},
		{"ENDMESS alone", []string{"(ENDMESS)"}, nil, ""},
		{"bad base64 length", []string{portion(1, "A"), "(ENDMESS)"}, nil, ""},
		{"300-byte line", []string{strings.Repeat("x", 300)}, []string{"(ENDMESS)"}, ""},
		{"plus-signed number", []string{"MESS+1//AAAA\\\\MESS+1"}, []string{"(ENDMESS)"}, ""},
		{"spaced number", []string{"MESS 1//AAAA\\\\MESS 1"}, []string{"(ENDMESS)"}, ""},
		{"negative number", []string{"MESS-1//AAAA\\\\MESS-1"}, []string{"(ENDMESS)"}, ""},
		{"zero", []string{"MESS0//AAAA\\\\MESS0"}, []string{"(ENDMESS)"}, ""},
		{"huge number", []string{"MESS18446744073709551617//AAAA\\\\MESS18446744073709551617"}, []string{"(ENDMESS)"}, ""},
		{"trailer leading zero", []string{"MESS1//AAAA\\\\MESS01"}, []string{"(ENDMESS)"}, ""},
		{"one backslash", []string{"MESS1//AAAA\\MESS1"}, []string{"(ENDMESS)"}, ""},
		{"lowercase", []string{"mess1//AAAA\\\\mess1"}, []string{"(ENDMESS)"}, ""},
		{"trailing space", []string{portion(1, "AAAA") + " "}, []string{"(ENDMESS)"}, ""},
		{"ENDMESS with space", []string{portion(1, "AAAA"), "(ENDMESS) "}, []string{"(ENDMESS)"}, ""},
		{"non-ASCII", []string{portion(1, "AA\xc3\xa9A")}, []string{"(ENDMESS)"}, ""},
		{"NUL", []string{portion(1, "AA\x00A")}, []string{"(ENDMESS)"}, ""},
		{"bare CR inside", []string{portion(1, "AA\rAA")}, []string{"(ENDMESS)"}, ""},
	}
}

// TestBrokenFramesPlain: each defect of section 1 gets a plain `frame` error
// without re, as soon as the defect shows, and the connection resyncs after
// the (ENDMESS) ending the broken frame.
func TestBrokenFramesPlain(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	for _, bc := range brokenCases() {
		t.Run(bc.name, func(t *testing.T) {
			c := dial(t, s)
			c.writeLines(bc.lines...) // no (ENDMESS) yet unless the defect is there
			m := c.expectPlainError("frame")
			noRe(t, m)
			if bc.contains != "" && !strings.Contains(m.body.str("message"), bc.contains) {
				t.Errorf("frame error message %q does not name %q", m.body.str("message"), bc.contains)
			}
			// Lines up to the end of the broken frame are discarded silently,
			// even lines that would be broken on their own.
			if len(bc.rest) > 0 {
				junk := append([]string{"junk line"}, bc.rest...)
				c.writeLines(junk...)
			}
			c.hello() // the next frame is read as a new frame
		})
	}
}

// TestBrokenFrameSealed: with a session, frame errors are sealed.
func TestBrokenFrameSealed(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := dial(t, s)
	c.hello()
	c.writeLines(portion(1, full256), portion(3, "AAAA"))
	m := c.expectSealedError("frame")
	noRe(t, m)
	c.writeLines("(ENDMESS)")
	c.login("alice")
	c.writeLines("(ENDMESS)")
	noRe(t, c.expectSealedError("frame"))
	c.doOK(obj{"op": "salons"})
}

// TestEmptyLinesAndCR: empty lines are ignored anywhere and \r before \n
// is ignored.
func TestEmptyLinesAndCR(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := dial(t, s)
	k := newKeys(t)
	ch := clientHello(k)
	lines := frameLines(ch)
	c.writeRaw("\n\r\n" + lines[0] + "\r\n\n" + strings.Join(lines[1:], "\r\n") + "\r\n")
	m := c.read()
	if m.kind != 'H' {
		t.Fatalf("expected hello, got %q %s", m.kind, m.bodyRaw)
	}
	if _, err := checkServerHello(ch, m.raw, k); err != nil {
		t.Fatal(err)
	}
	// A 300-byte line followed by \r\n is not over-long.
	c2 := dial(t, s)
	c2.writeRaw(strings.Repeat("x", 300) + "\r\n")
	c2.expectPlainError("frame")
	c2.writeLines("(ENDMESS)")
	c2.hello()
}

// TestOverlongLineCloses: a line over 300 bytes gets `frame` then closes.
func TestOverlongLineCloses(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	for _, withSession := range []bool{false, true} {
		c := dial(t, s)
		if withSession {
			c.hello()
		}
		c.writeRaw(strings.Repeat("A", 301) + "\n")
		got := c.expectClosed(readTimeout)
		if len(got) != 1 {
			t.Fatalf("session=%v: want exactly one error before close, got %d", withSession, len(got))
		}
		if withSession && got[0].kind != 'S' || !withSession && got[0].kind != 'E' {
			t.Fatalf("session=%v: error kind %q", withSession, got[0].kind)
		}
		checkError(t, got[0], "frame")
		noRe(t, got[0])
	}
}

// TestThirdBrokenFrameCloses: the 3rd broken frame over the life of a
// connection closes it, good frames in between notwithstanding; errors of
// sections 2 and 3 do not count.
func TestThirdBrokenFrameCloses(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := dial(t, s)
	// Section-2 errors do not count.
	for i := 0; i < 3; i++ {
		c.sendFrame([]byte{'H', 1, 'C', 1, 2, 3})
		c.expectPlainError("bad_request")
	}
	c.writeLines("(ENDMESS)")
	c.expectPlainError("frame")
	c.hello()
	// Section-3 errors do not count.
	for i := 0; i < 3; i++ {
		c.doErr(obj{"op": "nosuchop"}, "bad_request")
	}
	c.writeLines("(ENDMESS)")
	c.expectSealedError("frame")
	c.login("alice")
	c.doOK(obj{"op": "salons"})
	c.writeLines(portion(2, "AAAA"), "(ENDMESS)")
	got := c.expectClosed(readTimeout)
	if len(got) != 1 {
		t.Fatalf("want one error before close, got %d", len(got))
	}
	checkError(t, got[0], "frame")
}

// TestTooManyPortions: the portion limit binds reading; the error comes at
// the first portion over the limit.
func TestTooManyPortions(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--max-message", "1000", "--max-portions", "13"}})
	c := dial(t, s)
	var lines []string
	for i := 1; i <= 14; i++ {
		lines = append(lines, portion(i, full256))
	}
	c.writeLines(lines...)
	noRe(t, c.expectPlainError("frame"))
	c.writeLines(portion(15, "AAAA"), "(ENDMESS)")
	c.hello()
	// Exactly 13 portions is a frame: it decodes to a broken envelope,
	// answered with frame (unknown first byte), not a too-many error.
	data := make([]byte, 13*192)
	data[0], data[1] = 'X', 1
	if n := c.sendFrame(data); n != 13 {
		t.Fatalf("test bug: %d portions", n)
	}
	c.expectSealedError("frame")
	c.doErr(obj{"op": "nosuchop"}, "bad_request")
}

// TestStartRefusedWhenSendCannotFit: the server refuses to start when the
// largest send could not fit in one frame.
func TestStartRefusedWhenSendCannotFit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := dir + "/x.db"
	admin(t, db, "", "--insecure-test-kdf", "init")
	cmd := commandWithEnv(binPath, "--db", db, "serve", "--listen", "127.0.0.1:0", "--max-message", "65536", "--max-portions", "20")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("serve exited 0 with --max-portions 20 --max-message 65536")
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("serve started with --max-portions 20 --max-message 65536 (a 64 KiB send needs hundreds of portions)")
	}
}

// TestUnknownEnvelopeKind: an unknown first byte or version is `frame`;
// a wrong-size or wrong-role hello, or a too-short sealed envelope, is
// bad_request.
func TestUnknownEnvelopeKind(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := dial(t, s)
	k := newKeys(t)
	ch := clientHello(k)
	bad := append([]byte{}, ch...)
	bad[1] = 2
	c.sendFrame(bad)
	noRe(t, c.expectPlainError("frame"))
	c.sendFrame([]byte("Z\x01hello"))
	noRe(t, c.expectPlainError("frame"))
	c.sendFrame(ch[:66])
	noRe(t, c.expectPlainError("bad_request"))
	c.sendFrame(append(append([]byte{}, ch...), 0))
	noRe(t, c.expectPlainError("bad_request"))
	role := append([]byte{}, ch...)
	role[2] = 'S'
	c.sendFrame(role)
	noRe(t, c.expectPlainError("bad_request"))
	c.sendFrame([]byte("S\x01short"))
	noRe(t, c.expectPlainError("bad_request"))
	// A client sending a plain error: frame or bad_request (2 vs 2.3).
	c.sendFrame([]byte("E\x01{}"))
	if m := c.read(); m.kind != 'E' || (m.body.str("code") != "frame" && m.body.str("code") != "bad_request") {
		t.Fatalf("client E envelope: %q %s", m.kind, m.bodyRaw)
	}
	// Still fine: a correct hello.
	c.hello()
	// With a session these are sealed.
	c.sendFrame(bad)
	noRe(t, c.expectSealedError("frame"))
	c.sendFrame([]byte("S\x01short"))
	noRe(t, c.expectSealedError("bad_request"))
	// A hello on a connection that has a session is bad_request.
	c.sendFrame(clientHello(newKeys(t)))
	noRe(t, c.expectSealedError("bad_request"))
	c.login("alice")
}

// TestServerFrameLayout: a multi-portion server frame has exactly the layout
// of section 1 (checked by the reader), and ack `portions` counts the
// request's portions.
func TestServerFrameLayout(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := connect(t, s, "alice")
	text := strings.Repeat("é<>&", 400) // 2400 bytes, multi-portion
	cid := randCID()
	c.sess.nextID++
	id := c.sess.nextID
	n := c.sendSealed(marshal(obj{"op": "send", "id": id, "salon": "general", "text": text, "cid": cid}))
	if n < 2 {
		t.Fatalf("test bug: %d portions", n)
	}
	m := c.read()
	if m.body.str("op") != "ack" || m.body.num(t, "re") != id {
		t.Fatalf("ack: %s", m.bodyRaw)
	}
	if got := m.body.num(t, "portions"); got != int64(n) {
		t.Fatalf("ack portions %d, request had %d", got, n)
	}
	msgs, _, fm := c.fetch(obj{"salon": "general", "limit": 1})
	if fm.portions < 2 {
		t.Fatalf("expected a multi-portion answer, got %d portions", fm.portions)
	}
	if len(msgs) != 1 || msgs[0].Text != text || msgs[0].Pseudo != "alice" {
		t.Fatalf("fetch: %+v", msgs)
	}
	// No HTML escaping (2.2).
	if !strings.Contains(string(fm.bodyRaw), "é<>&é<>&") {
		t.Fatalf("answer body escapes <, > or & (or é): %.200s", fm.bodyRaw)
	}
}

// TestOverlongLineWhileDiscarding: a line over 300 bytes closes the
// connection even inside a broken frame being discarded.
func TestOverlongLineWhileDiscarding(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := dial(t, s)
	c.writeLines(portion(2, "AAAA"))
	c.expectPlainError("frame")
	c.writeRaw(strings.Repeat("A", 400) + "\n")
	got := c.expectClosed(readTimeout)
	if len(got) != 1 {
		t.Fatalf("want one error before close, got %d", len(got))
	}
	checkError(t, got[0], "frame")
}

// TestExactPortionBoundaries: frames whose text is exactly 256 or 512
// characters, with blank lines and CRLF between portions, are read.
func TestExactPortionBoundaries(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	c := connect(t, s, "alice")
	for _, textLen := range []int{256, 512, 768} {
		envLen := textLen * 3 / 4
		bodyLen := envLen - (2 + 8 + 8 + 24 + 16 + 8 + 64)
		c.sess.nextID++
		id := c.sess.nextID
		base := marshal(obj{"op": "salons", "id": id, "pad": ""})
		pad := strings.Repeat("p", bodyLen-len(base))
		body := marshal(obj{"op": "salons", "id": id, "pad": pad})
		c.sess.seq++
		env := c.sess.seal(body, sealOpts{seq: c.sess.seq})
		lines := frameLines(env)
		if len(b64.EncodeToString(env)) != textLen {
			t.Fatalf("test bug: %d", len(b64.EncodeToString(env)))
		}
		c.writeRaw(strings.Join(lines, "\r\n\n") + "\r\n")
		m := c.read()
		if m.body.str("op") != "salons" || m.body.num(t, "re") != id {
			t.Fatalf("%d chars: %s", textLen, m.bodyRaw)
		}
	}
}
