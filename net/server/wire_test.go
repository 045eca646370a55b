package server_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/net/server"
)

// fullPortion is a valid non-last portion line number n.
func fullPortion(n int) string {
	d := string(rune('0' + n))
	return "MESS" + d + "//" + strings.Repeat("A", 256) + `\\MESS` + d + "\n"
}

func TestBrokenFrames(t *testing.T) {
	f := newFixture(t, nil)

	t.Run("HoleBeforeSessionIsPlain", func(t *testing.T) {
		c := dial(t, f.addr)
		c.writeRaw(fullPortion(1) + `MESS3//AAAA\\MESS3` + "\n")
		a := c.read()
		wantError(t, a, 'E', "frame", 0)
		if a.str("message") != "missing portion 2" {
			t.Fatalf("defect not named: %v", a)
		}
		// The rest of the broken frame is discarded; the connection stays.
		c.writeRaw(`MESS4//AAAA\\MESS4` + "\n(ENDMESS)\n\n")
		c.hello()
	})
	t.Run("SealedOnceSessionAndThirdCloses", func(t *testing.T) {
		c := login(t, f.addr, "alice")
		c.writeRaw(`MESS1//AAA!\\MESS1` + "\n(ENDMESS)\n")
		wantError(t, c.read(), 'S', "frame", 0)
		c.call("salons", nil) // good frames in between do not reset the count
		c.writeRaw("(ENDMESS)\n")
		wantError(t, c.read(), 'S', "frame", 0)
		// Errors of sections 2 and 3 are not broken frames.
		c.writeFrame([]byte{'X', 1, 2, 3})
		wantError(t, c.read(), 'S', "frame", 0)
		c.writeFrame(c.sealRaw("not json"))
		wantError(t, c.read(), 'S', "bad_request", 0)
		c.call("salons", nil)
		c.writeRaw("hello\n")
		wantError(t, c.read(), 'S', "frame", 0)
		c.expectClosed()
	})
	t.Run("LongLineCloses", func(t *testing.T) {
		c := dial(t, f.addr)
		c.writeRaw(strings.Repeat("M", 301) + "\n")
		a := c.read()
		wantError(t, a, 'E', "frame", 0)
		c.expectClosed()
	})
	t.Run("Line300IsFine", func(t *testing.T) {
		c := dial(t, f.addr)
		c.writeRaw(`MESS1//` + strings.Repeat("A", 300-len(`MESS1//`)) + "\n")
		wantError(t, c.read(), 'E', "frame", 0) // a bad portion, not a long line
		c.writeRaw("(ENDMESS)\n")
		c.hello()
	})
	t.Run("EnvelopeKinds", func(t *testing.T) {
		c := dial(t, f.addr)
		for _, payload := range [][]byte{{'X', 1}, {'H', 2, 'C'}, {'S', 0}, {'E', 1, '{', '}'}, {'H'}} {
			c.writeFrame(payload)
			wantError(t, c.read(), 'E', "frame", 0)
		}
		c.hello() // five errors, none of them a broken frame
	})
}

func TestEnvelopeErrors(t *testing.T) {
	f := newFixture(t, nil)

	t.Run("BadHello", func(t *testing.T) {
		c := dial(t, f.addr)
		good := mustHello(t)
		c.writeFrame(good[:66])
		wantError(t, c.read(), 'E', "bad_request", 0)
		role := append([]byte(nil), good...)
		role[2] = 'S'
		c.writeFrame(role)
		wantError(t, c.read(), 'E', "bad_request", 0)
		c.writeFrame(append(good, 0))
		wantError(t, c.read(), 'E', "bad_request", 0)
		c.hello()
	})
	t.Run("ShortSealed", func(t *testing.T) {
		c := dial(t, f.addr)
		c.writeFrame([]byte{'S', 1, 1, 2, 3})
		wantError(t, c.read(), 'E', "bad_request", 0)
		c.hello()
		short := make([]byte, crypto.SealedHeaderSize-1)
		short[0], short[1] = 'S', 1
		c.writeFrame(short)
		wantError(t, c.read(), 'S', "bad_request", 0)
	})
	t.Run("HelloOnSession", func(t *testing.T) {
		c := login(t, f.addr, "alice")
		c.writeFrame(mustHello(t))
		wantError(t, c.read(), 'S', "bad_request", 0)
		c.call("salons", nil)
	})
	t.Run("Replay", func(t *testing.T) {
		c := login(t, f.addr, "alice")
		c.nextID++
		env := c.sealRaw(`{"op":"send","id":` + strconv.FormatInt(c.nextID, 10) + `,"salon":"general","text":"once","cid":"replayed"}`)
		c.writeFrame(env)
		first := c.read()
		if first.str("op") != "ack" {
			t.Fatalf("send: %v", first)
		}
		c.writeFrame(env)
		wantError(t, c.read(), 'S', "crypto", 0)
		// Envelopes sealed earlier but arriving later are replays too.
		early := c.sealRaw(`{"op":"salons","id":500}`)
		late := c.sealRaw(`{"op":"salons","id":501}`)
		c.writeFrame(late)
		c.await(501)
		c.writeFrame(early)
		wantError(t, c.read(), 'S', "crypto", 0)
		c.call("salons", nil)
	})
	t.Run("Tampered", func(t *testing.T) {
		c := login(t, f.addr, "alice")
		env := c.sealRaw(`{"op":"salons","id":600}`)
		env[len(env)-1] ^= 1
		c.writeFrame(env)
		wantError(t, c.read(), 'S', "crypto", 0)
		// A failed envelope does not spend its seq: nothing in it was acted on.
		c.call("salons", nil)
	})
	t.Run("OtherSessionsEnvelope", func(t *testing.T) {
		alice := login(t, f.addr, "alice")
		bob := login(t, f.addr, "bob")
		alice.writeFrame(bob.sealRaw(`{"op":"salons","id":700}`))
		wantError(t, alice.read(), 'S', "crypto", 0)
	})
}

func TestResume(t *testing.T) {
	f := newFixture(t, nil)
	alice := login(t, f.addr, "alice")
	alice.send("general", "before the drop")

	t.Run("AfterDrop", func(t *testing.T) {
		alice.nc.Close()
		c := alice.redial(f.addr)
		a := c.call("resume", nil)
		if a.kind != 'S' || a.str("op") != "resumed" || a.str("status") != "CONNECTÉ" {
			t.Fatalf("resume: %v", a)
		}
		c.send("general", "after the resume") // counters carried on
		alice = c
	})
	t.Run("MovesSessionAndClosesOld", func(t *testing.T) {
		c := alice.redial(f.addr)
		if a := c.call("resume", nil); a.str("op") != "resumed" {
			t.Fatalf("resume: %v", a)
		}
		alice.expectClosed()
		alice = c
		c.call("salons", nil)
	})
	t.Run("FirstEnvelopeNotResume", func(t *testing.T) {
		c := alice.redial(f.addr)
		wantError(t, c.call("salons", nil), 'E', "bad_request", c.nextID)
		// The connection stays open and the session where it was.
		if a := c.call("resume", nil); a.str("op") != "resumed" {
			t.Fatalf("resume after a refused first envelope: %v", a)
		}
		alice = c
	})
	t.Run("BadFirstEnvelope", func(t *testing.T) {
		c := alice.redial(f.addr)
		env := c.sealRaw(`{"op":"resume","id":900}`)
		env[len(env)-1] ^= 1
		c.writeFrame(env)
		wantError(t, c.read(), 'E', "crypto", 0)
		old := c.sealRaw(`{"op":"resume","id":901}`)
		c.writeFrame(c.sealRaw(`{"op":"resume","id":902}`))
		if a := c.read(); a.str("op") != "resumed" {
			t.Fatalf("resume: %v", a)
		}
		alice = c
		d := alice.redial(f.addr)
		d.writeFrame(old) // a replay of an older seq
		wantError(t, d.read(), 'E', "crypto", 0)
		d.writeFrame([]byte{'S', 1, 9})
		wantError(t, d.read(), 'E', "bad_request", 0)
		d.writeFrame(c.sealRaw(`{"op":"resume","id":1.5}`))
		wantError(t, d.read(), 'E', "bad_request", 0)
	})
	t.Run("UnknownSession", func(t *testing.T) {
		stranger := dial(t, f.addr)
		stranger.hello()
		stranger.nc.Close() // a session that never logged in ends with its connection
		// The server notices the close on its own time: until it has, the
		// session can still be resumed (and then ends with that connection).
		for i := 0; ; i++ {
			c := stranger.redial(f.addr)
			a := c.resume()
			if a.kind == 'E' {
				// Once the session is gone the envelope cannot be opened
				// (no re); in the moment the server still held it, the
				// resume was read and its answer names it (section 3.7).
				re := int64(0)
				if a.has("re") {
					re = 1
				}
				wantError(t, a, 'E', "unknown_session", re)
				break
			}
			if i > 100 {
				t.Fatalf("a never-logged-in session outlived its connection: %v", a)
			}
			c.nc.Close()
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("Bye", func(t *testing.T) {
		alice.call("bye", nil)
		c := alice.redial(f.addr)
		wantError(t, c.resume(), 'E', "unknown_session", 0)
		c.hello()
		if a := c.call("login", map[string]any{"password": passwords["alice"]}); a.str("op") != "connected" {
			t.Fatalf("new login after unknown_session: %v", a)
		}
	})
	t.Run("AfterRestart", func(t *testing.T) {
		bob := login(t, f.addr, "bob")
		f.restart()
		c := bob.redial(f.addr)
		wantError(t, c.resume(), 'E', "unknown_session", 0)
	})
}

func TestSessionTimeout(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.Chat.SessionTimeout = 400 * time.Millisecond })
	bob := login(t, f.addr, "bob")
	watch := func(salon string) int64 { // parks a fetch after the newest message
		ms := messages(t, bob.call("fetch", map[string]any{"salon": salon, "limit": 1}))
		after := int64(0)
		if len(ms) > 0 {
			after = ms[0].ID
		}
		return bob.request("fetch", map[string]any{"salon": salon, "after": after, "wait_ms": 20000})
	}
	announced := func(park int64, pseudo string) {
		t.Helper()
		ms := messages(t, bob.await(park))
		if len(ms) != 1 || !ms[0].System || ms[0].Text != pseudo+" disconnected" {
			t.Fatalf("want %s disconnected, got %+v", pseudo, ms)
		}
	}

	t.Run("SilentConnection", func(t *testing.T) {
		alice := login(t, f.addr, "alice")
		alice.call("fetch", map[string]any{"salon": "dev"}) // last active salon
		park := watch("dev")
		// Bob's clock is stopped while his fetch waits; alice's runs out.
		announced(park, "alice")
		alice.expectClosed()
		c := alice.redial(f.addr)
		wantError(t, c.resume(), 'E', "unknown_session", 0)
	})
	t.Run("DroppedConnectionResumableThenTimesOut", func(t *testing.T) {
		carol := login(t, f.addr, "carol")
		carol.send("general", "hi")
		carol.nc.Close()
		c := carol.redial(f.addr)
		if a := c.call("resume", nil); a.str("op") != "resumed" {
			t.Fatalf("resume inside the window: %v", a)
		}
		// Dropped but not timed out: still listed by who.
		c.nc.Close()
		if a := bob.call("who", map[string]any{"salon": "general"}); !strings.Contains(string(a.raw), "carol") {
			t.Fatalf("who: %v", a)
		}
		park := watch("general")
		announced(park, "carol")
		d := carol.redial(f.addr)
		wantError(t, d.resume(), 'E', "unknown_session", 0)
		if a := bob.call("who", map[string]any{"salon": "general"}); strings.Contains(string(a.raw), "carol") {
			t.Fatalf("who after the timeout: %v", a)
		}
	})
	t.Run("ClockStoppedWhileParked", func(t *testing.T) {
		alice := login(t, f.addr, "alice")
		a := alice.call("fetch", map[string]any{"salon": "general", "after": 1 << 40, "wait_ms": 1200})
		if a.str("op") != "messages" {
			t.Fatalf("long wait: %v", a)
		}
		if a := alice.call("salons", nil); a.str("op") != "salons" {
			t.Fatalf("session ended while its fetch was parked: %v", a)
		}
	})
}
