package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net/server"
	"librecord/net/server/servertest"
	"librecord/net/testkit"
)

var atFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestEveryOp(t *testing.T) {
	f := newFixture(t, nil)
	alice := dial(t, f.addr)
	alice.hello()
	a := alice.call("login", map[string]any{"password": passwords["alice"]})
	if a.kind != 'S' || a.str("op") != "connected" || a.str("status") != "CONNECTÉ" || a.str("pseudo") != "alice" ||
		a.num("session_timeout_ms") != 20000 || a.num("poll_ms") != 3000 {
		t.Fatalf("login: %v", a)
	}
	if got := fmt.Sprint(a.body["salons"]); got != "[dev general]" {
		t.Fatalf("login salons = %s, want [dev general]", got)
	}

	t.Run("Send", func(t *testing.T) {
		a := alice.call("send", map[string]any{"salon": "general", "text": "bonjour <&> à tous", "cid": "c1"})
		if a.str("op") != "ack" || a.num("msg") <= 0 || a.num("portions") != int64(alice.sent) {
			t.Fatalf("send: %v", a)
		}
	})
	ids := []int64{}
	for i := range 5 {
		ids = append(ids, alice.send("general", fmt.Sprintf("message %d", i)))
	}
	t.Run("FetchLatest", func(t *testing.T) {
		a := alice.call("fetch", map[string]any{"salon": "general", "limit": 2})
		ms := messages(t, a)
		if len(ms) != 2 || ms[0].ID != ids[3] || ms[1].ID != ids[4] || a.body["more"] != true || a.str("salon") != "general" {
			t.Fatalf("fetch latest: %v", a)
		}
		if ms[1].Pseudo != "alice" || ms[1].Text != "message 4" || ms[1].System || !atFormat.MatchString(ms[1].At) {
			t.Fatalf("message: %+v", ms[1])
		}
	})
	t.Run("FetchDefaultLimit", func(t *testing.T) {
		a := alice.call("fetch", map[string]any{"salon": "GENERAL"})
		if ms := messages(t, a); len(ms) != 6 || a.body["more"] != false || a.str("salon") != "general" {
			t.Fatalf("fetch: %v", a)
		}
		if !strings.Contains(string(a.raw), `"text":"bonjour <&> à tous"`) {
			t.Fatalf("answer is HTML-escaped: %s", a.raw)
		}
	})
	t.Run("FetchBefore", func(t *testing.T) {
		a := alice.call("fetch", map[string]any{"salon": "general", "before": ids[3], "limit": 2})
		ms := messages(t, a)
		if len(ms) != 2 || ms[0].ID != ids[1] || ms[1].ID != ids[2] || a.body["more"] != true {
			t.Fatalf("fetch before: %v", a)
		}
	})
	t.Run("FetchAfter", func(t *testing.T) {
		a := alice.call("fetch", map[string]any{"salon": "general", "after": ids[1], "limit": 2})
		ms := messages(t, a)
		if len(ms) != 2 || ms[0].ID != ids[2] || ms[1].ID != ids[3] || a.body["more"] != true {
			t.Fatalf("fetch after: %v", a)
		}
		a = alice.call("fetch", map[string]any{"salon": "general", "after": ids[4], "wait_ms": 0})
		if ms := messages(t, a); len(ms) != 0 || a.body["more"] != false {
			t.Fatalf("fetch after the last: %v", a)
		}
	})
	t.Run("Salons", func(t *testing.T) {
		a := alice.call("salons", nil)
		want := fmt.Sprintf(`{"op":"salons","re":%d,"salons":[{"name":"dev","last":0},{"name":"general","last":%d}]}`, a.num("re"), ids[4])
		if string(a.raw) != want {
			t.Fatalf("salons:\n got %s\nwant %s", a.raw, want)
		}
	})
	bob := login(t, f.addr, "bob")
	carol := login(t, f.addr, "carol")
	t.Run("Who", func(t *testing.T) {
		a := alice.call("who", map[string]any{"salon": "general"})
		if fmt.Sprint(a.body["pseudos"]) != "[alice bob carol]" || a.str("salon") != "general" {
			t.Fatalf("who general: %v", a)
		}
		a = alice.call("who", map[string]any{"salon": "dev"})
		if fmt.Sprint(a.body["pseudos"]) != "[alice bob]" {
			t.Fatalf("who dev: %v", a)
		}
		second := login(t, f.addr, "bob") // two devices: listed once
		a = carol.call("who", map[string]any{"salon": "general"})
		if fmt.Sprint(a.body["pseudos"]) != "[alice bob carol]" {
			t.Fatalf("who with two sessions of bob: %v", a)
		}
		second.call("bye", nil)
	})
	t.Run("Bye", func(t *testing.T) {
		bob.call("fetch", map[string]any{"salon": "dev"}) // last active salon
		last := bob.send("dev", "see you")
		a := bob.call("bye", nil)
		if a.kind != 'S' || a.str("op") != "bye" || len(a.body) != 2 {
			t.Fatalf("bye: %v", a)
		}
		bob.expectClosed()
		a = alice.call("fetch", map[string]any{"salon": "dev", "after": last, "wait_ms": 5000})
		ms := messages(t, a)
		if len(ms) != 1 || !ms[0].System || ms[0].Pseudo != "" || ms[0].Text != "bob disconnected" {
			t.Fatalf("after bye: %v", a)
		}
		if !strings.Contains(string(a.raw), `"system":true`) || !strings.Contains(string(a.raw), `"pseudo":""`) {
			t.Fatalf("system message shape: %s", a.raw)
		}
		a = alice.call("who", map[string]any{"salon": "dev"})
		if fmt.Sprint(a.body["pseudos"]) != "[alice]" {
			t.Fatalf("who after bye: %v", a)
		}
		// The session is forgotten: its keys no longer resume.
		again := bob.redial(f.addr)
		wantError(t, again.resume(), 'E', "unknown_session", 0)
	})
}

func TestStrictBodies(t *testing.T) {
	f := newFixture(t, nil)
	c := login(t, f.addr, "alice")
	for name, tc := range map[string]struct {
		body string
		re   int64
	}{
		"IDFloat":        {`{"op":"salons","id":1.0}`, 0},
		"IDString":       {`{"op":"salons","id":"1"}`, 0},
		"IDZero":         {`{"op":"salons","id":0}`, 0},
		"IDNegative":     {`{"op":"salons","id":-1}`, 0},
		"NoID":           {`{"op":"salons"}`, 0},
		"NotObject":      {`["op","salons"]`, 0},
		"NotJSON":        {`op=salons`, 0},
		"InvalidUTF8":    {"{\"op\":\"salons\",\"id\":5,\"x\":\"\xc3\"}", 0},
		"UnknownOp":      {`{"op":"delete","id":77}`, 77},
		"MissingSalon":   {`{"op":"who","id":78}`, 78},
		"IllTypedLimit":  {`{"op":"fetch","id":79,"salon":"general","limit":"5"}`, 79},
		"LimitTooBig":    {`{"op":"fetch","id":80,"salon":"general","limit":501}`, 80},
		"BeforeAndAfter": {`{"op":"fetch","id":81,"salon":"general","before":9,"after":1}`, 81},
		"WaitRange":      {`{"op":"fetch","id":82,"salon":"general","after":1,"wait_ms":25001}`, 82},
		"LoginAgain":     {`{"op":"login","id":83,"password":"x"}`, 83},
		"ResumeInside":   {`{"op":"resume","id":84}`, 84},
		"LoneSurrogate":  {`{"op":"send","id":85,"salon":"general","text":"a\udc00","cid":"x"}`, 85},
	} {
		t.Run(name, func(t *testing.T) {
			c.writeFrame(c.sealRaw(tc.body))
			wantError(t, c.read(), 'S', "bad_request", tc.re)
		})
	}
	t.Run("UnknownFieldsIgnored", func(t *testing.T) {
		c.writeFrame(c.sealRaw(`{"op":"salons","id":90,"x":[{"y":null}],"wait_ms":"ignored"}`))
		if a := c.read(); a.str("op") != "salons" || a.num("re") != 90 {
			t.Fatalf("got %v", a)
		}
	})
	t.Run("WaitIgnoredWithoutAfter", func(t *testing.T) {
		c.writeFrame(c.sealRaw(`{"op":"fetch","id":91,"salon":"general","wait_ms":99999999}`))
		if a := c.read(); a.str("op") != "messages" || a.num("re") != 91 {
			t.Fatalf("got %v", a)
		}
	})
	t.Run("IDsNeedNotIncrease", func(t *testing.T) {
		c.writeFrame(c.sealRaw(`{"op":"salons","id":3}`))
		if a := c.read(); a.str("op") != "salons" || a.num("re") != 3 {
			t.Fatalf("got %v", a)
		}
	})
}

func TestBeforeLogin(t *testing.T) {
	f := newFixture(t, nil)
	c := dial(t, f.addr)
	c.hello()
	for _, op := range []string{"send", "fetch", "salons", "who", "bye", "resume"} {
		a := c.call(op, map[string]any{"salon": "general", "text": "x", "cid": "y"})
		wantError(t, a, 'S', "bad_request", c.nextID)
	}
	wantError(t, c.call("login", map[string]any{"password": "wrong password here"}), 'S', "auth", c.nextID)
	// A failed login leaves the connection open for another try.
	if a := c.call("login", map[string]any{"password": passwords["carol"]}); a.str("op") != "connected" {
		t.Fatalf("second try: %v", a)
	}
}

func TestSendRules(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.Chat.MaxMessage = 100 })
	alice := login(t, f.addr, "alice")
	carol := login(t, f.addr, "carol")
	for name, tc := range map[string]struct {
		c      *client
		fields map[string]any
		code   string
	}{
		"TooLarge":         {alice, map[string]any{"salon": "general", "text": strings.Repeat("é", 51), "cid": "a"}, "too_large"},
		"Empty":            {alice, map[string]any{"salon": "general", "text": "", "cid": "a"}, "bad_request"},
		"ControlChar":      {alice, map[string]any{"salon": "general", "text": "bell\a", "cid": "a"}, "bad_request"},
		"CarriageReturn":   {alice, map[string]any{"salon": "general", "text": "a\r\nb", "cid": "a"}, "bad_request"},
		"Delete":           {alice, map[string]any{"salon": "general", "text": "a\x7f", "cid": "a"}, "bad_request"},
		"CidEmpty":         {alice, map[string]any{"salon": "general", "text": "x", "cid": ""}, "bad_request"},
		"CidSpace":         {alice, map[string]any{"salon": "general", "text": "x", "cid": "a b"}, "bad_request"},
		"CidLong":          {alice, map[string]any{"salon": "general", "text": "x", "cid": strings.Repeat("k", 65)}, "bad_request"},
		"CidNumber":        {alice, map[string]any{"salon": "general", "text": "x", "cid": 12}, "bad_request"},
		"NoAccess":         {carol, map[string]any{"salon": "dev", "text": "x", "cid": "a"}, "forbidden"},
		"NoSuchSalon":      {alice, map[string]any{"salon": "nowhere", "text": "x", "cid": "a"}, "forbidden"},
		"MalformedSalon":   {alice, map[string]any{"salon": "../general", "text": "x", "cid": "a"}, "forbidden"},
		"ValidationFirst":  {carol, map[string]any{"salon": "dev", "text": strings.Repeat("x", 101), "cid": "a"}, "too_large"},
		"MalformedSalonFe": {alice, map[string]any{"salon": "a b", "text": "x", "cid": "a"}, "forbidden"},
		"C1Control":        {alice, map[string]any{"salon": "general", "text": "x\u009b31m", "cid": "a"}, "bad_request"},
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, tc.c.call("send", tc.fields), 'S', tc.code, tc.c.nextID)
		})
	}
	t.Run("Limits", func(t *testing.T) {
		for _, text := range []string{strings.Repeat("é", 50), "tab\tnewline\n\u00a0", "😀"} {
			alice.send("general", text)
		}
	})
	t.Run("ForbiddenOnFetchAndWho", func(t *testing.T) {
		for _, op := range []string{"fetch", "who"} {
			for _, salon := range []string{"dev", "nowhere", "", strings.Repeat("x", 33)} {
				wantError(t, carol.call(op, map[string]any{"salon": salon}), 'S', "forbidden", carol.nextID)
			}
		}
	})
	a := alice.call("fetch", map[string]any{"salon": "general", "limit": 50})
	if n := len(messages(t, a)); n != 3 {
		t.Fatalf("%d messages stored, want the 3 valid ones", n)
	}
}

func TestDuplicateCid(t *testing.T) {
	f := newFixture(t, nil)
	alice := login(t, f.addr, "alice")
	long := strings.Repeat("long text ", 100) // several portions
	first := alice.call("send", map[string]any{"salon": "general", "text": long, "cid": "same-cid"})
	if first.str("op") != "ack" || first.num("portions") < 2 {
		t.Fatalf("first send: %v", first)
	}
	check := func(c *client, salon, text string) {
		t.Helper()
		a := c.call("send", map[string]any{"salon": salon, "text": text, "cid": "same-cid"})
		if a.str("op") != "ack" || a.num("msg") != first.num("msg") || a.num("portions") != first.num("portions") {
			t.Fatalf("retry got %v, first was %v", a, first)
		}
	}
	check(alice, "general", long)
	check(alice, "dev", "another text, another salon")
	second := login(t, f.addr, "alice") // another session of the same user
	check(second, "general", "x")
	// Another user's cid space is separate.
	bob := login(t, f.addr, "bob")
	if a := bob.call("send", map[string]any{"salon": "general", "text": "x", "cid": "same-cid"}); a.num("msg") == first.num("msg") {
		t.Fatalf("bob's send deduplicated against alice's: %v", a)
	}
	f.restart()
	again := login(t, f.addr, "alice")
	check(again, "general", long)
	a := again.call("fetch", map[string]any{"salon": "general", "limit": 50})
	n := 0
	for _, m := range messages(t, a) {
		if m.Pseudo == "alice" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("alice's message stored %d times", n)
	}
	if a := again.call("fetch", map[string]any{"salon": "dev"}); len(messages(t, a)) != 0 {
		t.Fatalf("a deduplicated send was stored in dev: %v", a)
	}
}

func TestLongPoll(t *testing.T) {
	f := newFixture(t, nil)
	alice := login(t, f.addr, "alice")
	bob := login(t, f.addr, "bob")
	last := alice.send("general", "before")
	park := bob.request("fetch", map[string]any{"salon": "general", "after": last, "wait_ms": 20000})
	// Other requests of the connection are served while the fetch waits.
	if a := bob.call("salons", nil); a.str("op") != "salons" {
		t.Fatalf("salons while parked: %v", a)
	}
	if _, ok := bob.stash[park]; ok {
		t.Fatal("the fetch answered before any new message")
	}
	// A message in another salon does not wake it.
	alice.send("dev", "elsewhere")
	if a := bob.call("who", map[string]any{"salon": "general"}); a.str("op") != "who" {
		t.Fatalf("who while parked: %v", a)
	}
	if _, ok := bob.stash[park]; ok {
		t.Fatal("a message in dev woke a fetch on general")
	}
	id := alice.send("general", "wake up")
	ms := messages(t, bob.await(park))
	if len(ms) != 1 || ms[0].ID != id || ms[0].Text != "wake up" {
		t.Fatalf("woken fetch: %+v", ms)
	}
	// A wait that expires answers an empty list.
	a := bob.call("fetch", map[string]any{"salon": "general", "after": id, "wait_ms": 50})
	if ms := messages(t, a); len(ms) != 0 || a.body["more"] != false {
		t.Fatalf("expired wait: %v", a)
	}
	// Several parked fetches on one salon all wake.
	p1 := bob.request("fetch", map[string]any{"salon": "general", "after": id, "wait_ms": 20000})
	p2 := alice.request("fetch", map[string]any{"salon": "general", "after": id, "wait_ms": 20000})
	bob.call("salons", nil)
	alice.call("salons", nil)
	carol := login(t, f.addr, "carol")
	id2 := carol.send("general", "everyone")
	for _, got := range [][]message{messages(t, bob.await(p1)), messages(t, alice.await(p2))} {
		if len(got) != 1 || got[0].ID != id2 {
			t.Fatalf("woken: %+v", got)
		}
	}
}

func TestAccessEndsLive(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	alice := login(t, f.addr, "alice")
	bob := login(t, f.addr, "bob")
	last := alice.send("dev", "before the revoke")

	t.Run("RevokeWakesParkedFetch", func(t *testing.T) {
		park := bob.request("fetch", map[string]any{"salon": "dev", "after": last, "wait_ms": 20000})
		bob.call("salons", nil) // the fetch is parked
		if _, err := f.db.Revoke(ctx, "dev", []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		alice.send("dev", "secret after the revoke")
		wantError(t, bob.await(park), 'S', "forbidden", park)
		wantError(t, bob.call("fetch", map[string]any{"salon": "dev"}), 'S', "forbidden", bob.nextID)
		wantError(t, bob.call("send", map[string]any{"salon": "dev", "text": "x", "cid": "r1"}), 'S', "forbidden", bob.nextID)
		if a := bob.call("salons", nil); strings.Contains(string(a.raw), "dev") {
			t.Fatalf("salons still lists dev: %v", a)
		}
	})
	t.Run("RevokeAnswersExpiredWaitForbidden", func(t *testing.T) {
		last := alice.send("general", "g")
		park := bob.request("fetch", map[string]any{"salon": "general", "after": last, "wait_ms": 300})
		bob.call("salons", nil)
		if _, err := f.db.Revoke(ctx, "general", []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		wantError(t, bob.await(park), 'S', "forbidden", park)
	})
	t.Run("ResetPasswordEndsSession", func(t *testing.T) {
		carol := login(t, f.addr, "carol")
		last := messages(t, carol.call("fetch", map[string]any{"salon": "general"}))
		after := last[len(last)-1].ID
		if err := f.db.ResetPassword(ctx, "carol", "a brand new password"); err != nil {
			t.Fatal(err)
		}
		wantError(t, carol.call("salons", nil), 'S', "auth", carol.nextID)
		carol.expectClosed()
		a := alice.call("fetch", map[string]any{"salon": "general", "after": after, "wait_ms": 10000})
		if ms := messages(t, a); len(ms) != 1 || ms[0].Text != "carol disconnected" || !ms[0].System {
			t.Fatalf("no announcement: %v", a)
		}
	})
	t.Run("RemoveUserAnswersParkedFetchForbidden", func(t *testing.T) {
		last := alice.send("general", "x")
		park := alice.request("fetch", map[string]any{"salon": "general", "after": last, "wait_ms": 20000})
		alice.call("salons", nil) // the fetch is parked
		if err := f.db.RemoveUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		carol := dial(t, f.addr) // with the password reset above
		carol.hello()
		carol.call("login", map[string]any{"password": "a brand new password"})
		carol.send("general", "secret after the removal")
		// PROTOCOL.md 4: a parked fetch of a removed user answers forbidden;
		// the session's next request is auth, and the session ends.
		wantError(t, alice.await(park), 'S', "forbidden", park)
		wantError(t, alice.call("salons", nil), 'S', "auth", alice.nextID)
		alice.expectClosed()
	})
}

func TestCheckLimits(t *testing.T) {
	if err := server.CheckLimits(server.DefaultConfig()); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	cfg := server.DefaultConfig()
	cfg.MaxPortions = 600 // 115200 bytes: not enough for 2 x 65536 at worst
	if err := server.CheckLimits(cfg); err == nil || !strings.Contains(err.Error(), "--max-portions") {
		t.Fatalf("CheckLimits(600 portions) = %v", err)
	}
	cfg.Chat.MaxMessage = 40000
	if err := server.CheckLimits(cfg); err != nil {
		t.Fatalf("600 portions for 40000 bytes refused: %v", err)
	}
	for name, mutate := range map[string]func(*server.Config){
		"ZeroMessage":  func(c *server.Config) { c.Chat.MaxMessage = 0 },
		"ZeroFetch":    func(c *server.Config) { c.Chat.MaxFetch = 0 },
		"NoBurst":      func(c *server.Config) { c.Chat.SendBurst = 0 },
		"ZeroTimeout":  func(c *server.Config) { c.Chat.SessionTimeout = 0 },
		"NegativeConn": func(c *server.Config) { c.MaxConns = -1 },
	} {
		cfg := server.DefaultConfig()
		mutate(&cfg)
		if err := server.CheckLimits(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	cfg = server.DefaultConfig()
	cfg.Chat.SendRate, cfg.Chat.SendBurst = 0, 0 // rate 0 turns the limit off
	if err := server.CheckLimits(cfg); err != nil {
		t.Fatalf("rate 0 refused: %v", err)
	}
}

func TestLargestSendFits(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.MaxPortions = 60 // 11520 bytes per frame
		c.Chat.MaxMessage = 5000
	})
	alice := dialMax(t, f.addr, 60)
	alice.hello()
	alice.call("login", map[string]any{"password": passwords["alice"]})
	// The worst case for escaping: every byte a quote, written \".
	text := strings.Repeat(`"`, 5000)
	a := alice.call("send", map[string]any{"salon": "general", "text": text, "cid": strings.Repeat(`\`, 64)})
	if a.str("op") != "ack" || a.num("portions") > 60 {
		t.Fatalf("largest send: %v", a)
	}
	ms := messages(t, alice.call("fetch", map[string]any{"salon": "general"}))
	if len(ms) != 1 || ms[0].Text != text {
		t.Fatalf("largest message did not come back whole")
	}
}

func TestFetchTrimmedToFrame(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.MaxPortions = 8 // 1536 bytes per frame
		c.Chat.MaxMessage = 400
	})
	alice := dialMax(t, f.addr, 8)
	alice.hello()
	alice.call("login", map[string]any{"password": passwords["alice"]})
	var ids []int64
	for i := range 10 {
		ids = append(ids, alice.send("general", fmt.Sprintf("%02d %s", i, strings.Repeat("x", 297))))
	}
	// Every answer below arrived through a reader limited to 8 portions.
	a := alice.call("fetch", map[string]any{"salon": "general", "limit": 10})
	ms := messages(t, a)
	if len(ms) == 0 || len(ms) >= 10 || a.body["more"] != true || ms[len(ms)-1].ID != ids[9] {
		t.Fatalf("latest: %d messages, more %v, last %d", len(ms), a.body["more"], ms[len(ms)-1].ID)
	}
	n := len(ms)
	a = alice.call("fetch", map[string]any{"salon": "general", "after": 0, "limit": 10})
	ms = messages(t, a)
	if len(ms) != n || a.body["more"] != true || ms[0].ID != ids[0] {
		t.Fatalf("after 0: %d messages, more %v, first %d", len(ms), a.body["more"], ms[0].ID)
	}
	a = alice.call("fetch", map[string]any{"salon": "general", "before": ids[9], "limit": 10})
	ms = messages(t, a)
	if len(ms) != n || a.body["more"] != true || ms[len(ms)-1].ID != ids[8] {
		t.Fatalf("before: %d messages", len(ms))
	}
	a = alice.call("fetch", map[string]any{"salon": "general", "after": ids[9-n], "limit": 10})
	if ms := messages(t, a); len(ms) != n || a.body["more"] != false {
		t.Fatalf("the last %d: %d messages, more %v", n, len(ms), a.body["more"])
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.Chat.LoginLimit = 3 })
	c := dial(t, f.addr)
	c.hello()
	for range 3 {
		wantError(t, c.call("login", map[string]any{"password": "not the password"}), 'S', "auth", c.nextID)
	}
	// Refused unchecked, even with the right password, from any connection
	// of the address; refused attempts do not extend the window.
	wantError(t, c.call("login", map[string]any{"password": passwords["alice"]}), 'S', "rate_limited", c.nextID)
	d := dial(t, f.addr)
	d.hello()
	wantError(t, d.call("login", map[string]any{"password": passwords["bob"]}), 'S', "rate_limited", d.nextID)
	if strings.Contains(f.logs.String(), "not the password") {
		t.Fatal("a password attempt appears in the log")
	}
}

func TestSendRateLimit(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.Chat.SendRate, c.Chat.SendBurst = 0.001, 2 })
	c := login(t, f.addr, "alice")
	// Refused sends do not spend rate.
	wantError(t, c.call("send", map[string]any{"salon": "dev2", "text": "x", "cid": "n1"}), 'S', "forbidden", c.nextID)
	first := c.call("send", map[string]any{"salon": "general", "text": "one", "cid": "r1"})
	c.send("general", "two")
	wantError(t, c.call("send", map[string]any{"salon": "general", "text": "three", "cid": "r3"}), 'S', "rate_limited", c.nextID)
	// A retry of a stored cid is answered before the rate limit.
	if a := c.call("send", map[string]any{"salon": "general", "text": "one", "cid": "r1"}); a.num("msg") != first.num("msg") {
		t.Fatalf("retry while limited: %v", a)
	}
	// Per session: another session of the same user has its own budget.
	login(t, f.addr, "alice").send("general", "other session")
	if a := c.call("fetch", map[string]any{"salon": "general"}); len(messages(t, a)) != 3 {
		t.Fatalf("stored: %v", a)
	}
}

func TestStorageFailures(t *testing.T) {
	f := newFixture(t, nil)
	c := login(t, f.addr, "alice")
	f.store.setFailures(db.ErrBusy, nil)
	wantError(t, c.call("send", map[string]any{"salon": "general", "text": "x", "cid": "busy-1"}), 'S', "unavailable", c.nextID)
	f.store.setFailures(nil, nil)
	if a := c.call("fetch", map[string]any{"salon": "general"}); len(messages(t, a)) != 0 {
		t.Fatalf("a refused send was stored: %v", a)
	}
	id := c.call("send", map[string]any{"salon": "general", "text": "x", "cid": "busy-1"}).num("msg")
	if id <= 0 {
		t.Fatal("retry after unavailable not stored")
	}
	f.store.setFailures(nil, db.ErrBusy)
	wantError(t, c.call("fetch", map[string]any{"salon": "general", "after": 0}), 'S', "unavailable", c.nextID)
	f.store.setFailures(nil, errors.New("disk on fire"))
	wantError(t, c.call("fetch", map[string]any{"salon": "general", "after": 0}), 'S', "internal", c.nextID)
	f.store.setFailures(nil, nil)
	if strings.Contains(f.logs.String(), "disk on fire") == false {
		t.Fatal("internal error not logged")
	}
}

func TestMaxConns(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.MaxConns = 2 })
	a := login(t, f.addr, "alice")
	b := dial(t, f.addr)
	b.hello()
	c := dial(t, f.addr)
	wantError(t, c.read(), 'E', "unavailable", 0)
	c.expectClosed()
	a.call("bye", nil)
	a.expectClosed()
	// A place is free again once alice's connection is gone.
	for i := 0; ; i++ {
		d := dial(t, f.addr)
		d.writeFrame(mustHello(t))
		if got := d.read(); got.kind == 'H' {
			break
		} else if i > 100 {
			t.Fatalf("still refused: %v", got)
		}
	}
}

func mustHello(t *testing.T) []byte {
	k := crypto.NewSessionKeys()
	return k.ClientHello()
}

func TestMaxPending(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.MaxPending = 1 })
	a := dial(t, f.addr)
	a.hello()
	b := dial(t, f.addr) // decided at its first envelope (PROTOCOL.md 4)
	b.writeFrame(mustHello(t))
	wantError(t, b.read(), 'E', "unavailable", 0)
	b.expectClosed()
	// Once logged in, a connection no longer counts as pending.
	a.call("login", map[string]any{"password": passwords["alice"]})
	for i := 0; ; i++ {
		c := dial(t, f.addr)
		c.writeFrame(mustHello(t))
		if got := c.read(); got.kind == 'H' {
			break
		} else if i > 100 {
			t.Fatalf("still refused: %v", got)
		}
	}
}

func TestLoginTimeout(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.LoginTimeout = 200 * time.Millisecond })
	idle := dial(t, f.addr)
	idle.hello()
	idle.expectClosed()
	silent := dial(t, f.addr) // not even a hello
	silent.expectClosed()
	// A logged-in connection outlives the login timeout: a fetch that
	// waits longer than it still gets its answer.
	c := login(t, f.addr, "alice")
	a := c.call("fetch", map[string]any{"salon": "general", "after": 0, "wait_ms": 600})
	if a.str("op") != "messages" {
		t.Fatalf("after the login timeout: %v", a)
	}
}

func TestConcurrentClients(t *testing.T) {
	const clients, each = 20, 20
	f := newFixture(t, nil)
	errs := make(chan error, clients)
	acked := make(chan []int64, clients)
	for i := range clients {
		go func() {
			gt := goT{TB: t, errs: errs}
			c := login(gt, f.addr, []string{"alice", "bob", "carol"}[i%3])
			var reqs []int64
			for j := range each {
				reqs = append(reqs, c.request("send", map[string]any{
					"salon": "general", "text": fmt.Sprintf("client %d message %d", i, j), "cid": fmt.Sprintf("c%d-%d", i, j)}))
			}
			var ids []int64
			for _, r := range reqs {
				a := c.await(r)
				if a.str("op") != "ack" {
					gt.Fatalf("client %d: %v", i, a)
				}
				ids = append(ids, a.num("msg"))
			}
			acked <- ids
		}()
	}
	seen := map[int64]int{}
	for range clients {
		select {
		case err := <-errs:
			t.Fatal(err)
		case ids := <-acked:
			for _, id := range ids {
				seen[id]++
			}
		}
	}
	if len(seen) != clients*each {
		t.Fatalf("%d distinct acked ids, want %d", len(seen), clients*each)
	}
	c := login(t, f.addr, "alice")
	stored := map[int64]int{}
	after := int64(0)
	for {
		a := c.call("fetch", map[string]any{"salon": "general", "after": after, "limit": 500})
		ms := messages(t, a)
		for _, m := range ms {
			stored[m.ID]++
			after = m.ID
		}
		if a.body["more"] != true {
			break
		}
	}
	for id, n := range seen {
		if n != 1 || stored[id] != 1 {
			t.Fatalf("message %d acked %d times, stored %d times", id, n, stored[id])
		}
	}
	if len(stored) != len(seen) {
		t.Fatalf("%d messages stored, %d acked", len(stored), len(seen))
	}
}

func TestShutdownAnswersParkedAndInFlight(t *testing.T) {
	f := newFixture(t, nil)
	bob := login(t, f.addr, "bob")
	alice := login(t, f.addr, "alice")
	park := bob.request("fetch", map[string]any{"salon": "dev", "after": 0, "wait_ms": 20000})
	bob.call("salons", nil) // the fetch is parked

	entered, release := f.store.holdWrites()
	first := alice.request("send", map[string]any{"salon": "general", "text": "in flight", "cid": "s0"})
	<-entered // the first send is inside the commit
	var reqs []int64
	for i := 1; i < 10; i++ {
		reqs = append(reqs, alice.request("send", map[string]any{"salon": "general", "text": "queued", "cid": fmt.Sprintf("s%d", i)}))
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- f.srv.Shutdown(ctx)
	}()
	release()

	if a := bob.await(park); a.str("op") != "messages" {
		t.Fatalf("parked fetch at shutdown: %v", a)
	}
	bob.expectClosed()
	acked := map[int64]bool{}
	if a := alice.await(first); a.str("op") != "ack" {
		t.Fatalf("in-flight send at shutdown: %v", a)
	} else {
		acked[a.num("msg")] = true
	}
	for {
		a, err := alice.tryRead(10 * time.Second)
		if err != nil {
			break // closed after the last answer
		}
		if a.str("op") != "ack" || !slices.Contains(reqs, a.num("re")) {
			t.Fatalf("at shutdown: %v", a)
		}
		acked[a.num("msg")] = true
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-f.served
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f.srv = nil

	// Every acked message is on disk, and nothing unacked was stored.
	d := servertest.NewDB(t, f.path)
	defer d.Close()
	s, err := d.Salon(context.Background(), "general")
	if err != nil {
		t.Fatal(err)
	}
	ms, _, err := d.After(context.Background(), s.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]bool{}
	for _, m := range ms {
		stored[m.ID] = true
	}
	if len(stored) != len(acked) {
		t.Fatalf("%d stored, %d acked", len(stored), len(acked))
	}
	for id := range acked {
		if !stored[id] {
			t.Fatalf("acked message %d not stored", id)
		}
	}
}

func TestSlowPeerDoesNotBlockOthers(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.WriteTimeout = 300 * time.Millisecond })
	alice := login(t, f.addr, "alice")
	var last int64
	for range 4 {
		last = alice.send("general", strings.Repeat("x", 60000))
	}
	// bob asks for ~180 KB answers and never reads them: the server's
	// writes to him block, miss their deadline, and he is dropped.
	bob := login(t, f.addr, "bob")
	for range 100 {
		bob.request("fetch", map[string]any{"salon": "general", "before": last + 1, "limit": 4})
	}
	// Meanwhile everyone else is served, sends included (their acks do
	// not wait behind bob's answers).
	carol := login(t, f.addr, "carol")
	for range 5 {
		carol.send("general", "still here")
		alice.call("fetch", map[string]any{"salon": "general", "limit": 1})
	}
	// Not reading is the point: wait for the server's log, not the socket.
	testkit.WaitFor(t, "bob dropped", func() bool { return strings.Contains(f.logs.String(), "write failed") })
	bob.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, bob.nc)
	var ne stdnet.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection of a dropped peer is still open")
	}
}
