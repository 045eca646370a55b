package repl

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/testkit"
)

// startChat runs an interactive chat on a fake terminal against h.
func startChat(t *testing.T, h *hub, cfg Config) (*fakeTerm, chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	term := newFakeTerm()
	if cfg.Addr == "" {
		cfg.Addr = "test:7447"
	}
	if cfg.Salon == "" {
		cfg.Salon = "general"
	}
	cfg.Location = time.UTC
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 10 * time.Millisecond
	}
	if cfg.Poll == 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	done := make(chan error, 1)
	go func() { done <- RunInteractive(ctx, cfg, h.dial, term) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("chat did not end")
		}
	})
	return term, done, cancel
}

func waitDone(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("chat did not end")
		return nil
	}
}

func countLines(screen, sub string) int {
	n := 0
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func TestInteractiveSession(t *testing.T) {
	h := newHub()
	for i := 1; i <= 12; i++ {
		h.post("general", "bob", "old "+string(rune('a'+i-1)))
	}
	term, done, _ := startChat(t, h, Config{})
	term.passwords <- "wrong"
	term.waitText(t, "wrong password, try again")
	term.passwords <- "right"

	t.Run("LoginShowsSalonsAndLastTen", func(t *testing.T) {
		term.waitText(t, "your salons: general, dev")
		term.waitText(t, "bob: old l")
		s := term.text()
		if strings.Contains(s, "old b") || !strings.Contains(s, "old c") {
			t.Errorf("want exactly the last 10 messages:\n%s", s)
		}
	})
	t.Run("SendShowsPendingThenMessage", func(t *testing.T) {
		term.input <- "hello everyone"
		term.waitFor(t, "acked message", func(s string) bool {
			return strings.Contains(s, "alice: hello everyone") && !strings.Contains(s, "(pending)")
		})
		if n := countLines(term.text(), "hello everyone"); n != 1 {
			t.Errorf("message on %d lines, want 1 (the echo replaced):\n%s", n, term.text())
		}
		if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"hello everyone"}) {
			t.Errorf("stored %q", got)
		}
	})
	t.Run("IncomingMessage", func(t *testing.T) {
		h.post("general", "bob", "line one\nline two")
		term.waitText(t, "bob: line one")
		s := term.text()
		if !strings.Contains(s, "\n           line two") {
			t.Errorf("second line not indented under the text:\n%s", s)
		}
	})
	t.Run("Continuation", func(t *testing.T) {
		term.input <- `first\`
		term.input <- "second"
		testkit.WaitFor(t, "two-line message stored", func() bool {
			st := h.storedTexts()
			return len(st) == 2 && st[1] == "first\nsecond"
		})
	})
	t.Run("DoubleSlashSendsSlash", func(t *testing.T) {
		term.input <- "//me waves"
		testkit.WaitFor(t, "slash message", func() bool {
			st := h.storedTexts()
			return len(st) == 3 && st[2] == "/me waves"
		})
	})
	t.Run("UnknownCommandListsCommands", func(t *testing.T) {
		term.input <- "/nope"
		term.waitText(t, "unknown command /nope; commands: /join /salons /who /history /passwd /help /quit")
		if len(h.storedTexts()) != 3 {
			t.Error("an unknown command was sent as a message")
		}
	})
	t.Run("Who", func(t *testing.T) {
		term.input <- "/who"
		term.waitText(t, "connected in general: alice, bob")
	})
	t.Run("History", func(t *testing.T) {
		term.input <- "/history 2"
		term.waitText(t, "2 earlier message(s) in general:")
		s := term.text()
		if !strings.Contains(s, "bob: old a") || !strings.Contains(s, "bob: old b") {
			t.Errorf("history:\n%s", s)
		}
		term.input <- "/history"
		term.waitText(t, "no earlier messages in general")
	})
	t.Run("SalonsNewAndMentions", func(t *testing.T) {
		h.post("dev", "carol", "in dev 1")
		h.post("dev", "carol", "in dev 2, @Alice?")
		term.input <- "/salons"
		term.waitText(t, "salons: general (open), dev (2 new, 1 mention you)")
	})
	t.Run("Join", func(t *testing.T) {
		bells := term.bellCount()
		term.input <- "/join DEV"
		term.waitText(t, "carol: in dev 2")
		// Shown on opening, the mention stands out but is no news: no bell.
		// The time is local: any hour, as long as it is highlighted.
		term.waitFor(t, "a highlighted mention", func(screen string) bool {
			return regexp.MustCompile(regexp.QuoteMeta(highlightOn) + `\d\d:\d\d carol: in dev 2`).MatchString(screen)
		})
		if n := term.bellCount(); n != bells {
			t.Errorf("opening a salon rang the bell %d times", n-bells)
		}
		term.input <- "in dev now"
		testkit.WaitFor(t, "message to dev", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			ms := h.msgs["dev"]
			return len(ms) == 3 && ms[2].Text == "in dev now"
		})
		term.mu.Lock()
		last := term.prompts[len(term.prompts)-1]
		term.mu.Unlock()
		if last != "dev> " {
			t.Errorf("prompt %q", last)
		}
	})
	t.Run("Mention", func(t *testing.T) {
		bells := term.bellCount()
		h.post("dev", "carol", "malice and alice2 are not you")
		h.post("dev", "alice", "alice is me, from another device")
		h.post("dev", "carol", "ALICE: ping")
		term.waitText(t, "carol: ALICE: ping")
		screen := term.text()
		for _, l := range strings.Split(screen, "\n") {
			lit := strings.Contains(l, highlightOn)
			switch {
			case strings.Contains(l, "ALICE: ping"):
				if !lit || !strings.HasSuffix(l, highlightOff) {
					t.Errorf("mention not highlighted: %q", l)
				}
			case strings.Contains(l, "malice"), strings.Contains(l, "alice is me"):
				if lit {
					t.Errorf("not a mention, yet highlighted: %q", l)
				}
			}
		}
		if n := term.bellCount(); n != bells+1 {
			t.Errorf("bell rang %d times for one mention, want once", n-bells)
		}
	})
	t.Run("JoinForbidden", func(t *testing.T) {
		term.input <- "/join nope nope"
		term.waitText(t, "usage: /join SALON")
	})
	t.Run("Complete", func(t *testing.T) {
		term.mu.Lock()
		c := term.completer
		term.mu.Unlock()
		if got := c("/j"); !reflect.DeepEqual(got, []string{"/join "}) {
			t.Errorf("/j -> %q", got)
		}
		if got := c("/join d"); !reflect.DeepEqual(got, []string{"/join dev"}) {
			t.Errorf("/join d -> %q", got)
		}
	})
	t.Run("QuitSaysBye", func(t *testing.T) {
		term.input <- "/quit"
		if err := waitDone(t, done); err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.byes != 1 {
			t.Errorf("byes %d", h.byes)
		}
	})
}

func TestCtrlDQuits(t *testing.T) {
	h := newHub()
	term, done, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	close(term.input)
	if err := waitDone(t, done); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byes != 1 {
		t.Errorf("byes %d", h.byes)
	}
}

// Lines typed while the connection is down wait in the outbox and go out
// in order, once each, after the resume.
func TestOutboxAcrossResume(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil },
		ReconnectWindow: 10 * time.Second})
	term.waitText(t, "your salons")
	term.input <- "before"
	testkit.WaitFor(t, "first message", func() bool { return len(h.storedTexts()) == 1 })
	h.setDown(true)
	term.waitText(t, "connection lost; reconnecting")
	for _, l := range []string{"one", "two", "three"} {
		term.input <- l
	}
	term.waitText(t, "alice: three (pending)")
	h.setDown(false)
	term.waitText(t, "reconnected")
	testkit.WaitFor(t, "outbox flushed", func() bool { return len(h.storedTexts()) == 4 })
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"before", "one", "two", "three"}) {
		t.Errorf("stored %q", got)
	}
	h.mu.Lock()
	logins := h.logins
	h.mu.Unlock()
	if logins != 1 {
		t.Errorf("%d logins: resumed should not log in again", logins)
	}
}

// A send stored whose ack is lost is sent again with the same cid and
// stored once.
func TestLostAckStoredOnce(t *testing.T) {
	h := newHub()
	h.dropAck = 1
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	term.input <- "only once"
	term.input <- "after it"
	term.waitText(t, "reconnected")
	testkit.WaitFor(t, "both stored", func() bool { return len(h.storedTexts()) == 2 })
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"only once", "after it"}) {
		t.Errorf("stored %q", got)
	}
}

// The server forgot the session (restart): log in again from the password
// source at once and flush the outbox.
func TestReloginAfterUnknownSession(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil },
		ReloginDelay: time.Hour})
	term.waitText(t, "your salons")
	h.setDown(true)
	term.waitText(t, "connection lost")
	term.input <- "typed while down"
	h.forget()
	h.setDown(false)
	term.waitText(t, "logged in again as alice")
	testkit.WaitFor(t, "flushed", func() bool { return len(h.storedTexts()) == 1 })
	h.post("general", "bob", "welcome back")
	term.waitText(t, "bob: welcome back")
}

// After a restart, logging in again from the password source waits a
// random part of ReloginJitter first, so that the server's clients do not
// all log in in the same instant.
func TestReloginAfterUnknownSessionIsSpread(t *testing.T) {
	h := newHub()
	var mu sync.Mutex
	var asked []time.Duration
	cfg := Config{Password: func() (string, error) { return "right", nil }, ReloginDelay: time.Hour,
		ReloginJitter: 3 * time.Second}
	cfg.jitter = func(max time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, max)
		return 400 * time.Millisecond
	}
	// The wait is the test's: it reports what was asked and lasts until
	// released, so the login again is seen to come after it, not before.
	slept := make(chan time.Duration, 4)
	release := make(chan struct{})
	cfg.sleep = func(ctx context.Context, d time.Duration) error {
		slept <- d
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	term, _, _ := startChat(t, h, cfg)
	term.waitText(t, "your salons")
	h.setDown(true)
	term.waitText(t, "connection lost")
	h.forget()
	h.setDown(false)
	term.waitText(t, "no longer knows this session")
	select {
	case d := <-slept:
		if d != 400*time.Millisecond {
			t.Errorf("waited %v before logging in again, want the drawn 400ms", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no wait before logging in again")
	}
	h.mu.Lock()
	logins := h.logins
	h.mu.Unlock()
	if logins != 1 {
		t.Errorf("%d logins during the wait, want only the first", logins)
	}
	close(release)
	testkit.WaitFor(t, "logged in again", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.logins == 2
	})
	term.waitText(t, "logged in again as alice")
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != 3*time.Second {
		t.Errorf("jitter drawn with %v, want once with 3s", asked)
	}
}

func TestUniformJitter(t *testing.T) {
	if d := uniformJitter(0); d != 0 {
		t.Errorf("no jitter: %v", d)
	}
	seen := map[bool]bool{}
	for range 200 {
		d := uniformJitter(time.Second)
		if d < 0 || d > time.Second {
			t.Fatalf("drew %v outside [0, 1s]", d)
		}
		seen[d < 500*time.Millisecond] = true
	}
	if len(seen) != 2 {
		t.Error("200 draws all in one half of the range")
	}
}

// The reconnect window runs out: erase the keys, wait the relogin delay,
// ask for the password (after Enter), log in, flush.
func TestWindowOverAsksPassword(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{ReconnectWindow: 100 * time.Millisecond, ReloginDelay: 50 * time.Millisecond})
	term.passwords <- "right"
	term.waitText(t, "your salons")
	h.setDown(true)
	term.input <- "kept"
	term.waitText(t, "could not resume the session within 100ms; keys erased")
	term.waitText(t, "press Enter to log in again")
	h.setDown(false)
	term.input <- ""
	term.passwords <- "wrong"
	term.waitText(t, "wrong password")
	term.passwords <- "right"
	term.waitText(t, "logged in again as alice")
	testkit.WaitFor(t, "flushed", func() bool { return len(h.storedTexts()) == 1 })
}

func TestQuitWaitsForOutbox(t *testing.T) {
	h := newHub()
	term, done, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil },
		ReconnectWindow: 10 * time.Second})
	term.waitText(t, "your salons")
	h.setDown(true)
	term.waitText(t, "connection lost")
	term.input <- "must arrive"
	term.input <- "/quit"
	term.waitText(t, "1 message(s) not acknowledged yet")
	h.setDown(false)
	if err := waitDone(t, done); err != nil {
		t.Fatal(err)
	}
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"must arrive"}) {
		t.Errorf("stored %q", got)
	}
}

func TestForbiddenSendReported(t *testing.T) {
	h := newHub()
	h.forbidden["general"] = true
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	term.input <- "nope"
	term.waitText(t, "not sent (you may not write in general): nope")
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Input
		err  bool
	}{
		{"hello", Input{Text: "hello"}, false},
		{"", Input{}, false},
		{"   ", Input{}, false},
		{"//x", Input{Text: "/x"}, false},
		{"/join dev", Input{Command: "join", Arg: "dev"}, false},
		{"/history   20 ", Input{Command: "history", Arg: "20"}, false},
		{"/quit", Input{Command: "quit"}, false},
		{"/bogus", Input{}, true},
	} {
		got, err := ParseLine(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseLine(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestContinues(t *testing.T) {
	for in, want := range map[string]struct {
		line string
		more bool
	}{
		`abc\`:  {"abc", true},
		`abc\\`: {`abc\`, false},
		`abc`:   {"abc", false},
		`\`:     {"", true},
	} {
		line, more := Continues(in)
		if line != want.line || more != want.more {
			t.Errorf("Continues(%q) = %q, %v", in, line, more)
		}
	}
}

func TestRender(t *testing.T) {
	m := lnet.Message{ID: 1, At: "2026-11-25T10:07:00.123Z", Pseudo: "bob", Text: "a\nb\x1b[31m"}
	if got, want := RenderMessage(m, time.UTC), "10:07 bob: a\n           b\uFFFD[31m"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	sys := lnet.Message{ID: 2, At: "2026-11-25T10:08:00Z", System: true, Text: "carol disconnected"}
	if got, want := RenderMessage(sys, time.UTC), "10:08 * carol disconnected"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if got, want := ScriptLine("general", m), `2026-11-25T10:07:00.123Z general bob: a\nb`+"\uFFFD[31m"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if got, want := ScriptLine("general", sys), `2026-11-25T10:08:00.000Z general *: carol disconnected`; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	back := lnet.Message{At: "2026-11-25T10:08:00Z", Pseudo: "x", Text: `C:\dir` + "\n"}
	if got, want := ScriptLine("g", back), `2026-11-25T10:08:00.000Z g x: C:\\dir\n`; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestTrustPrompt(t *testing.T) {
	h := newHub()
	asked := make(chan string, 1)
	dial := func(ctx context.Context, ask AskTrust) (Session, error) {
		ok, err := ask("test:7447", "SHA256:abc")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, client.ErrNotTrusted
		}
		asked <- "yes"
		return h.dial(ctx, nil)
	}
	for name, answers := range map[string][]string{"OK": {"maybe", "y"}, "ErrDeclined": {"no"}} {
		t.Run(name, func(t *testing.T) {
			term := newFakeTerm()
			for _, a := range answers {
				term.input <- a
			}
			term.passwords <- "right"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- RunInteractive(ctx, Config{Addr: "test:7447", Salon: "general", Location: time.UTC}, dial, term)
			}()
			if name == "ErrDeclined" {
				if err := <-done; !errors.Is(err, client.ErrNotTrusted) {
					t.Fatalf("got %v", err)
				}
				return
			}
			<-asked
			term.waitText(t, "please answer yes or no")
			term.waitText(t, "SHA256:abc")
			term.waitText(t, "your salons")
			cancel()
			<-done
		})
	}
}

// /history takes N up to the fetch limit of the protocol's rules.
func TestHistoryBound(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	for _, n := range []int{0, lnet.DefaultMaxFetch + 1} {
		term.input <- fmt.Sprintf("/history %d", n)
	}
	want := fmt.Sprintf("usage: /history [N], N from 1 to %d", lnet.DefaultMaxFetch)
	term.waitFor(t, "two usage notices", func(s string) bool { return strings.Count(s, want) == 2 })
}
