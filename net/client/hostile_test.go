package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// hostile is text a hostile server puts everywhere it can: a CSI that
// clears the screen, an OSC that sets the window title, an 8-bit CSI
// (U+009B), a bidi override and an isolate, a bell and a carriage return.
const hostile = "x\x1b[2J\x1b]0;pwned\x07\u009b31m\u202eevil\u2066\r"

// assertPrintable fails when s holds a character Printable replaces.
func assertPrintable(t *testing.T, what, s string) {
	t.Helper()
	if strings.ContainsFunc(s, unsafeRune) {
		t.Errorf("%s holds a terminal control: %q", what, s)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain é 日本 🙂":                   "plain é 日本 🙂",
		"a\x1b[31mb":                     "a\uFFFD[31mb",
		"\x00\x1f\x7f":                   "\uFFFD\uFFFD\uFFFD",
		"\u0080\u009b\u009f":             "\uFFFD\uFFFD\uFFFD",
		"\u00a0ok":                       "\u00a0ok", // no-break space is printable
		"\u202a\u202b\u202c\u202d\u202e": "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD",
		"\u2066\u2067\u2068\u2069":       "\uFFFD\uFFFD\uFFFD\uFFFD",
		"\u2065\u206a\u2029":             "\u2065\u206a\u2029",
		"tab\tnl\ncr\r":                  "tab\uFFFDnl\uFFFDcr\uFFFD",
		"bad \xff\xfe utf8":              "bad \uFFFD\uFFFD utf8",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	// Everything unicode calls a control is replaced.
	for r := rune(0); r < 0x3000; r++ {
		if unicode.IsControl(r) && !strings.ContainsRune(Printable(string(r)), '\uFFFD') {
			t.Errorf("Printable keeps control %U", r)
		}
	}
}

// TestHostileServerNames: a name that is not a valid name (PROTOCOL.md 4)
// in any answer is a protocol violation, never handed on to be printed.
func TestHostileServerNames(t *testing.T) {
	ctx := context.Background()
	connected := func(id any, pseudo string, salons []string) map[string]any {
		return map[string]any{"op": "connected", "re": id, "status": "CONNECTÉ", "pseudo": pseudo,
			"salons": salons, "session_timeout_ms": 30000, "poll_ms": 3000}
	}
	for _, tc := range []struct {
		name   string
		answer func(req map[string]any) map[string]any // answer to the op tested
		op     string
	}{
		{"LoginPseudo", func(r map[string]any) map[string]any { return connected(r["id"], "al"+hostile, []string{"general"}) }, "login"},
		{"LoginPseudoEmpty", func(r map[string]any) map[string]any { return connected(r["id"], "", []string{"general"}) }, "login"},
		{"LoginSalon", func(r map[string]any) map[string]any {
			return connected(r["id"], "alice", []string{"general", "dev\x1b[2J"})
		}, "login"},
		{"LoginSalonTooLong", func(r map[string]any) map[string]any {
			return connected(r["id"], "alice", []string{strings.Repeat("a", 33)})
		}, "login"},
		{"FetchPseudo", func(r map[string]any) map[string]any {
			return map[string]any{"op": "messages", "re": r["id"], "salon": "general", "more": false,
				"messages": []map[string]any{{"id": 1, "at": "2026-11-25T10:00:00.123Z", "pseudo": "bob" + hostile, "text": "hi"}}}
		}, "fetch"},
		{"FetchPseudoEmptyNotSystem", func(r map[string]any) map[string]any {
			return map[string]any{"op": "messages", "re": r["id"], "salon": "general", "more": false,
				"messages": []map[string]any{{"id": 1, "at": "2026-11-25T10:00:00.123Z", "pseudo": "", "text": "hi"}}}
		}, "fetch"},
		{"SalonsName", func(r map[string]any) map[string]any {
			return map[string]any{"op": "salons", "re": r["id"], "salons": []map[string]any{{"name": "gen\u202eeral", "last": 1}}}
		}, "salons"},
		{"WhoPseudo", func(r map[string]any) map[string]any {
			return map[string]any{"op": "who", "re": r["id"], "salon": "general", "pseudos": []string{"alice", "b\u009bob"}}
		}, "who"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.handle = func(req map[string]any, reply func(map[string]any)) {
				if req["op"] == tc.op {
					reply(tc.answer(req))
					return
				}
				s.defaultHandle(req, reply)
			}
			sess := dialFake(t, s, Config{})
			var err error
			switch tc.op {
			case "login":
				_, err = sess.Login(ctx, "right")
			case "fetch":
				_, err = sess.Fetch(ctx, FetchRequest{Salon: "general"})
			case "salons":
				_, err = sess.Salons(ctx)
			case "who":
				_, err = sess.Who(ctx, "general")
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a protocol violation", err)
			}
			assertPrintable(t, "the error", err.Error())
			if strings.Contains(err.Error(), "pwned") || strings.Contains(err.Error(), "evil") {
				t.Errorf("the error repeats the bad name: %q", err)
			}
		})
	}
	t.Run("SystemMessageWithoutPseudoOK", func(t *testing.T) {
		s := newFakeServer(t)
		s.handle = func(req map[string]any, reply func(map[string]any)) {
			reply(map[string]any{"op": "messages", "re": req["id"], "salon": "general", "more": false,
				"messages": []map[string]any{{"id": 1, "at": "2026-11-25T10:00:00.123Z", "pseudo": "", "system": true, "text": "bob disconnected"}}})
		}
		sess := dialFake(t, s, Config{})
		if res, err := sess.Fetch(ctx, FetchRequest{Salon: "general"}); err != nil || len(res.Messages) != 1 {
			t.Fatalf("%v, %v", res, err)
		}
	})
}

// TestHostileServerErrors: the error messages and codes a server sends,
// sealed or plain, are printable in the errors the client returns.
func TestHostileServerErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("Sealed", func(t *testing.T) {
		s := newFakeServer(t)
		s.handle = func(req map[string]any, reply func(map[string]any)) {
			reply(map[string]any{"op": "error", "re": req["id"], "code": "forbidden" + hostile,
				"message": strings.Repeat("no access "+hostile, 1000)})
		}
		sess := dialFake(t, s, Config{})
		_, err := sess.Who(ctx, "general")
		var se *ServerError
		if !errors.As(err, &se) || se.Code != "forbidden"+hostile {
			t.Fatalf("got %v", err)
		}
		assertPrintable(t, "the error", err.Error())
		if len(err.Error()) > 2*maxShown+20 {
			t.Errorf("the error is %d bytes long", len(err.Error()))
		}
	})
	t.Run("PlainBeforeSession", func(t *testing.T) {
		s := newFakeServer(t)
		s.refuseHellos = 1
		s.helloRefusal = mustJSON(map[string]any{"op": "error", "code": "unavailable", "message": "full " + hostile})
		_, err := Dial(ctx, Config{Addr: s.addr(), CheckIdentity: trustAll(t)})
		if !IsCode(err, "unavailable") {
			t.Fatalf("got %v, want unavailable", err)
		}
		assertPrintable(t, "the error", err.Error())
		if !strings.Contains(err.Error(), "full x") {
			t.Errorf("the error lost the server's words: %q", err)
		}
	})
	t.Run("WrongStatus", func(t *testing.T) {
		s := newFakeServer(t)
		s.handle = func(req map[string]any, reply func(map[string]any)) {
			reply(map[string]any{"op": "connected" + hostile, "re": req["id"]})
		}
		sess := dialFake(t, s, Config{})
		_, err := sess.Login(ctx, "right")
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("got %v", err)
		}
		assertPrintable(t, "the error", err.Error())
	})
}

// TestLoginClampsTiming: poll_ms and session_timeout_ms are clamped into
// [MinPoll, MaxPoll] and [MinSessionTimeout, MaxSessionTimeout].
func TestLoginClampsTiming(t *testing.T) {
	for _, tc := range []struct {
		name                string
		pollMS, timeoutMS   any
		wantPoll, wantTimer time.Duration
	}{
		{"Normal", 3000, 30000, 3 * time.Second, 30 * time.Second},
		{"TooFast", 1, 1, MinPoll, MinSessionTimeout},
		{"TooSlow", 3_600_000, 86_400_000, MaxPoll, MaxSessionTimeout},
		{"Huge", int64(1) << 62, int64(1) << 62, MaxPoll, MaxSessionTimeout},
		{"Missing", nil, nil, DefaultPoll, DefaultSessionTimeout},
		{"Negative", -5, -5, DefaultPoll, DefaultSessionTimeout},
		{"Zero", 0, 0, DefaultPoll, DefaultSessionTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.handle = func(req map[string]any, reply func(map[string]any)) {
				ans := map[string]any{"op": "connected", "re": req["id"], "status": "CONNECTÉ", "pseudo": "alice",
					"salons": []string{"general"}}
				if tc.pollMS != nil {
					ans["poll_ms"], ans["session_timeout_ms"] = tc.pollMS, tc.timeoutMS
				}
				reply(ans)
			}
			sess := dialFake(t, s, Config{})
			info, err := sess.Login(context.Background(), "right")
			if err != nil {
				t.Fatal(err)
			}
			if info.Poll != tc.wantPoll || info.SessionTimeout != tc.wantTimer {
				t.Errorf("poll %v, session timeout %v; want %v, %v", info.Poll, info.SessionTimeout, tc.wantPoll, tc.wantTimer)
			}
		})
	}
}

// FuzzPrintable: whatever goes in, what comes out is valid UTF-8 without a
// character Printable replaces, and printing it again changes nothing.
func FuzzPrintable(f *testing.F) {
	f.Add(hostile)
	f.Add("plain")
	f.Add("\xff\xfe\xc2\x9b")
	f.Fuzz(func(t *testing.T, s string) {
		out := Printable(s)
		if !utf8.ValidString(out) || strings.ContainsFunc(out, unsafeRune) {
			t.Fatalf("Printable(%q) = %q", s, out)
		}
		if Printable(out) != out {
			t.Fatalf("Printable is not idempotent on %q", s)
		}
		if sh := shown(s); len(sh) > maxShown+len("…") || !utf8.ValidString(sh) {
			t.Fatalf("shown(%q) = %q", s, sh)
		}
	})
}

// TestLoginRefusedAtNewHello: when Login opens a new connection (the old
// one went stale) and the server's source is full, the plain unavailable
// comes back from Login; the next Login tries a new hello again.
func TestLoginRefusedAtNewHello(t *testing.T) {
	s := newFakeServer(t)
	sess := dialFake(t, s, Config{FreshFor: time.Nanosecond})
	s.mu.Lock()
	s.refuseHellos = 1
	s.mu.Unlock()
	ctx := context.Background()
	if _, err := sess.Login(ctx, "right"); !IsCode(err, "unavailable") {
		t.Fatalf("got %v, want the plain unavailable", err)
	}
	if _, err := sess.Login(ctx, "right"); err != nil {
		t.Fatalf("second login: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hellos != 3 {
		t.Errorf("%d hellos, want 3 (dial, refused, accepted)", s.hellos)
	}
}
