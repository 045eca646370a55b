package repl

import (
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"librecord/net/testkit"
)

// waitPrompt waits until the terminal asks with prompt.
func waitPrompt(t *testing.T, term *fakeTerm, prompt string) {
	t.Helper()
	testkit.WaitFor(t, "prompt "+prompt, func() bool { return term.lastPrompt() == prompt })
}

// The host resets the password of a person chatting on a terminal: the
// server answers auth and ends the session. The client says why and goes
// to the password prompt; a line typed at the chat prompt meanwhile (the
// new password, by a person who did not notice) is neither sent, nor
// kept in the history, nor left on screen; what was waiting in the outbox
// goes out after login, with its cid.
func TestPasswordResetAsksPassword(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{})
	term.passwords <- "right"
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")

	// A message the server keeps refusing for now stays in the outbox.
	h.mu.Lock()
	h.rateLimit = 1 << 30
	h.mu.Unlock()
	term.input <- "typed before the reset"
	term.waitText(t, "alice: typed before the reset (pending)")

	h.resetPassword("new-secret")
	term.waitText(t, "-!- your password was changed or your account removed by the host: log in again")
	term.waitText(t, "press Enter to log in again")
	h.mu.Lock()
	h.rateLimit = 0
	h.mu.Unlock()

	// The person types the new password at the chat prompt.
	term.input <- "new-secret"
	term.waitText(t, "that line was neither sent nor kept")
	waitPrompt(t, term, "password for test:7447: ")
	term.passwords <- "new-secret"
	term.waitText(t, "logged in again as alice")
	testkit.WaitFor(t, "outbox flushed", func() bool { return len(h.storedTexts()) == 1 })
	term.input <- "after the login"
	testkit.WaitFor(t, "sent after login", func() bool { return len(h.storedTexts()) == 2 })

	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"typed before the reset", "after the login"}) {
		t.Errorf("stored %q", got)
	}
	cids := map[string]bool{}
	for _, a := range h.sendAttempts() {
		if strings.Contains(a, "new-secret") {
			t.Errorf("the password reached the server as a message: %q", a)
		}
		if cid, text, _ := strings.Cut(a, " "); text == "typed before the reset" {
			cids[cid] = true
		}
	}
	if len(cids) != 1 {
		t.Errorf("the queued message went out under %d cids, want 1", len(cids))
	}
	if strings.Contains(term.text(), "new-secret") {
		t.Errorf("the password is on screen:\n%s", term.text())
	}
	if hist := term.historyLines(); slices.Contains(hist, "new-secret") || !slices.Contains(hist, "after the login") {
		t.Errorf("history %q", hist)
	}
	for _, wrong := range []string{"no longer knows this session", "cannot read salon"} {
		if strings.Contains(term.text(), wrong) {
			t.Errorf("misleading %q:\n%s", wrong, term.text())
		}
	}
}

// The reset found by a send rather than by the poll: same outcome.
func TestPasswordResetFoundBySend(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{Poll: time.Hour})
	term.passwords <- "right"
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	h.mu.Lock()
	h.password, h.gen = "new-secret", h.gen+1 // no wake-up: the parked poll sleeps on
	h.mu.Unlock()
	term.input <- "kept for later"
	term.waitText(t, "your password was changed or your account removed by the host")
	term.input <- ""
	waitPrompt(t, term, "password for test:7447: ")
	term.passwords <- "new-secret"
	term.waitText(t, "logged in again as alice")
	testkit.WaitFor(t, "outbox flushed", func() bool { return len(h.storedTexts()) == 1 })
}

// With a password file, the client reads it again and logs in by itself.
func TestPasswordResetRereadsPasswordSource(t *testing.T) {
	h := newHub()
	var mu sync.Mutex
	pw := "right"
	term, _, _ := startChat(t, h, Config{PasswordSource: "pw.txt", Password: func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return pw, nil
	}})
	term.waitText(t, "your salons")
	mu.Lock()
	pw = "new-secret"
	mu.Unlock()
	h.resetPassword("new-secret")
	term.waitText(t, "log in again (with the password from pw.txt)")
	term.waitText(t, "logged in again as alice")
	term.input <- "hello again"
	testkit.WaitFor(t, "sent", func() bool { return len(h.storedTexts()) == 1 })
}

// Scripted use whose password file still has the old password: it ends
// with an error naming the unsent line, rather than trying for ever.
func TestScriptPasswordResetRefused(t *testing.T) {
	h := newHub()
	pr, pw := io.Pipe()
	defer pw.Close()
	var out, errOut testkit.Buffer
	done := make(chan error, 1)
	go func() { done <- RunScript(t.Context(), scriptConfig(), h.dial, pr, &out, &errOut) }()
	io.WriteString(pw, "first\n")
	testkit.WaitFor(t, "first stored", func() bool { return len(h.storedTexts()) == 1 })
	h.mu.Lock()
	h.rateLimit = 1 << 30
	h.mu.Unlock()
	io.WriteString(pw, "second\n")
	testkit.WaitFor(t, "second tried", func() bool { return len(h.sendAttempts()) >= 2 })
	h.resetPassword("new-secret")
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the script did not end; stderr:\n%s", errOut.String())
	}
	var ns *NotSentError
	if !errors.As(err, &ns) || len(ns.Lines) != 1 || ns.Lines[0].Line != 2 || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v; stderr:\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "your password was changed or your account removed by the host") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
}

// The host removes the person: the poll of the open salon answers
// forbidden, the salons request auth. Say the account or password
// changed, not that a salon is closed or that the server restarted.
func TestUserRemoved(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }, PasswordSource: "pw.txt"})
	term.waitText(t, "your salons")
	h.removeUser()
	term.waitText(t, "your password was changed or your account removed by the host")
	for _, wrong := range []string{"no longer knows this session", "cannot read salon", "(forbidden)"} {
		if strings.Contains(term.text(), wrong) {
			t.Errorf("misleading %q:\n%s", wrong, term.text())
		}
	}
}

// Access to the open salon is revoked: say so, go back to the salon open
// before, keep chatting there; once granted again, /join opens it.
func TestOpenSalonRevoked(t *testing.T) {
	h := newHub()
	h.post("dev", "carol", "in dev")
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.input <- "/join dev"
	term.waitText(t, "carol: in dev")
	waitPrompt(t, term, "dev> ")

	h.setSalons("general")
	term.waitText(t, "-!- the host removed your access to salon dev; back to general (/salons lists your salons, /join SALON opens one)")
	term.input <- "/join dev"
	term.waitText(t, "cannot open dev: no such salon, or you may not open it")
	waitPrompt(t, term, "general> ")
	term.input <- "back in general"
	testkit.WaitFor(t, "message to general", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		ms := h.msgs["general"]
		return len(ms) == 1 && ms[0].Text == "back in general"
	})
	h.post("general", "bob", "welcome back")
	term.waitText(t, "bob: welcome back")

	h.setSalons("general", "dev")
	term.input <- "/join dev"
	term.waitText(t, "opening dev")
	if strings.Contains(term.text(), "already in dev") {
		t.Errorf("/join refused:\n%s", term.text())
	}
	waitPrompt(t, term, "dev> ")
}

// The only salon is revoked: no salon open, and /join of it tries again.
func TestOnlySalonRevoked(t *testing.T) {
	h := newHub()
	h.salons = []string{"general"}
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	h.setSalons()
	term.waitText(t, "the host removed your access to salon general; no salon is open")
	term.input <- "hello?"
	term.waitText(t, "not sent (you may not write in general): hello?")
	waitPrompt(t, term, "librecord> ")
	h.setSalons("general")
	term.input <- "/join general"
	term.waitText(t, "opening general")
	waitPrompt(t, term, "general> ")
}

// After /join, the very next prompt names the new salon.
func TestJoinPromptNamesNewSalon(t *testing.T) {
	h := newHub()
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.mu.Lock()
	n := len(term.prompts)
	term.mu.Unlock()
	term.input <- "/join dev"
	testkit.WaitFor(t, "next prompt", func() bool {
		term.mu.Lock()
		defer term.mu.Unlock()
		return len(term.prompts) > n
	})
	term.mu.Lock()
	next := term.prompts[n]
	term.mu.Unlock()
	if next != "dev> " {
		t.Errorf("prompt after /join dev: %q", next)
	}
}

// Answers to the trust question never enter the input history.
func TestTrustAnswerNotInHistory(t *testing.T) {
	h := newHub()
	dial := func(ctx context.Context, ask AskTrust) (Session, error) {
		if ok, err := ask("test:7447", "SHA256:abc"); err != nil || !ok {
			return nil, errors.New("not trusted")
		}
		return h.dial(ctx, nil)
	}
	term := newFakeTerm()
	term.input <- "yes"
	term.passwords <- "right"
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-done }()
	go func() {
		done <- RunInteractive(ctx, Config{Addr: "test:7447", Salon: "general", Location: time.UTC}, dial, term)
	}()
	term.waitText(t, "your salons")
	term.input <- "a message"
	testkit.WaitFor(t, "sent", func() bool { return len(h.storedTexts()) == 1 })
	if hist := term.historyLines(); !reflect.DeepEqual(hist, []string{"a message"}) {
		t.Errorf("history %q", hist)
	}
}
