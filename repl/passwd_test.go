package repl

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/server"
	"librecord/net/server/servertest"
	"librecord/net/testkit"
)

// /passwd through the fake terminal against the real server (in-process,
// a real SQLite file, TCP on loopback).

const passwdOld = "alice-password-123"

// passwdServer serves a fresh database where alice has passwdOld, and
// returns its address and a dialer checking its identity.
func passwdServer(t *testing.T) (string, Dialer) {
	t.Helper()
	return passwdServerWith(t, server.DefaultConfig())
}

func passwdServerWith(t *testing.T, cfg server.Config) (string, Dialer) {
	t.Helper()
	d := servertest.TempDB(t)
	if _, err := d.AddUser(context.Background(), "alice", passwdOld, []string{"general"}); err != nil {
		t.Fatal(err)
	}
	pub := d.Identity().Public().(ed25519.PublicKey)
	addr := servertest.Start(t, d, cfg)
	dial := func(ctx context.Context, _ AskTrust) (Session, error) {
		return client.Dial(ctx, client.Config{Addr: addr, CheckIdentity: func(_ string, id ed25519.PublicKey) error {
			if !id.Equal(pub) {
				return errors.New("not the test server")
			}
			return nil
		}})
	}
	return addr, dial
}

// startChatDial runs an interactive chat on a fake terminal with dial.
func startChatDial(t *testing.T, dial Dialer, cfg Config) *fakeTerm {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	term := newFakeTerm()
	cfg.Salon = "general"
	cfg.Location = time.UTC
	cfg.RetryDelay = 10 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- RunInteractive(ctx, cfg, dial, term) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("chat did not end")
		}
	})
	return term
}

// newPassword returns the password shown after "Your new password is:".
func newPassword(t *testing.T, term *fakeTerm) string {
	t.Helper()
	term.waitText(t, "Store it now")
	lines := strings.Split(term.text(), "\n")
	for i, l := range lines {
		if strings.Contains(l, "Your new password is:") && i+2 < len(lines) {
			return strings.TrimSpace(lines[i+2])
		}
	}
	t.Fatalf("no new password on screen:\n%s", term.text())
	return ""
}

// loginWith reports the error of a login to addr with pw.
func loginWith(t *testing.T, dial Dialer, pw string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := dial(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Login(ctx, pw)
	return err
}

// historyClean fails when a password is in the input history.
func historyClean(t *testing.T, term *fakeTerm, secrets ...string) {
	t.Helper()
	for _, h := range term.historyLines() {
		for _, s := range secrets {
			if s != "" && strings.Contains(h, s) {
				t.Errorf("input history holds a password: %q", term.historyLines())
			}
		}
	}
}

func TestPasswdRewritesPasswordFile(t *testing.T) {
	_, dial := passwdServer(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "real.pw")
	if err := os.WriteFile(real, []byte(passwdOld+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "alice.pw")
	if err := os.Symlink("real.pw", link); err != nil {
		t.Fatal(err)
	}
	term := startChatDial(t, dial, Config{PasswordFile: link, PasswordSource: link,
		Password: func() (string, error) {
			b, err := os.ReadFile(link)
			return strings.TrimSuffix(string(b), "\n"), err
		}})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.input <- "/passwd " + passwdOld // typed on the line: refused, not kept
	term.waitText(t, "usage: /passwd, without argument")
	term.input <- "/passwd"
	waitPrompt(t, term, "current password: ")
	term.passwords <- passwdOld
	fresh := newPassword(t, term)
	if fresh == "" || fresh == passwdOld {
		t.Fatalf("new password %q", fresh)
	}
	waitPrompt(t, term, "Rewrite "+link+" with the new password? (yes/no) ")
	term.input <- "maybe"
	term.waitText(t, "please answer yes or no")
	term.input <- "yes"
	term.waitText(t, link+" now holds the new password")
	waitPrompt(t, term, "general> ")

	if n := strings.Count(term.text(), fresh); n != 1 {
		t.Errorf("new password shown %d times, want once:\n%s", n, term.text())
	}
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	fi, err = os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(real); string(b) != fresh+"\n" {
		t.Errorf("password file holds %q, want the new password and its line end", b)
	}
	if err := loginWith(t, dial, fresh); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	if err := loginWith(t, dial, passwdOld); !client.IsCode(err, lnet.CodeAuth) {
		t.Errorf("login with the old password: %v, want auth", err)
	}
	// This session goes on.
	term.input <- "after the change"
	term.waitText(t, "alice: after the change")
	if !slices.Contains(term.historyLines(), "/passwd") {
		t.Errorf("history %q, want /passwd in it", term.historyLines())
	}
	historyClean(t, term, passwdOld, fresh)
}

func TestPasswdDeclineKeepsFile(t *testing.T) {
	_, dial := passwdServer(t)
	file := filepath.Join(t.TempDir(), "alice.pw")
	if err := os.WriteFile(file, []byte(passwdOld), 0o600); err != nil {
		t.Fatal(err)
	}
	term := startChatDial(t, dial, Config{PasswordFile: file, PasswordSource: file,
		Password: func() (string, error) { b, err := os.ReadFile(file); return string(b), err }})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.input <- "/passwd"
	waitPrompt(t, term, "current password: ")
	term.passwords <- passwdOld
	fresh := newPassword(t, term)
	waitPrompt(t, term, "Rewrite "+file+" with the new password? (yes/no) ")
	term.input <- "no"
	term.waitText(t, file+" still holds the old password")
	if b, _ := os.ReadFile(file); string(b) != passwdOld {
		t.Errorf("declined, yet the file holds %q", b)
	}
	if err := loginWith(t, dial, fresh); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	historyClean(t, term, passwdOld, fresh)
}

func TestPasswdWrongCurrent(t *testing.T) {
	_, dial := passwdServer(t)
	term := startChatDial(t, dial, Config{})
	waitPrompt(t, term, "password for : ")
	term.passwords <- passwdOld
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.input <- "/passwd"
	waitPrompt(t, term, "current password: ")
	term.passwords <- "not-the-password"
	term.waitText(t, "/passwd: wrong current password; your password was not changed")
	waitPrompt(t, term, "general> ")
	term.input <- "still logged in"
	term.waitText(t, "alice: still logged in")
	if err := loginWith(t, dial, passwdOld); err != nil {
		t.Errorf("the password changed after a wrong one: %v", err)
	}
	// Cancelled with an empty line: nothing changes, no question about a
	// password file (there is none).
	term.input <- "/passwd"
	waitPrompt(t, term, "current password: ")
	term.passwords <- ""
	term.waitText(t, "/passwd cancelled")
	waitPrompt(t, term, "general> ")
	term.input <- "/help"
	term.waitText(t, "/passwd        change your password")
	historyClean(t, term, passwdOld, "not-the-password")
}

// After /passwd the chat logs in again with the new password, even when
// the password file was not rewritten.
func TestPasswdReloginUsesNewPassword(t *testing.T) {
	h := newHub()
	file := filepath.Join(t.TempDir(), "alice.pw")
	if err := os.WriteFile(file, []byte("right\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	term, _, _ := startChat(t, h, Config{PasswordFile: file, PasswordSource: file,
		Password: func() (string, error) { b, err := os.ReadFile(file); return strings.TrimSpace(string(b)), err }})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.input <- "/passwd"
	waitPrompt(t, term, "current password: ")
	term.passwords <- "right"
	fresh := newPassword(t, term)
	waitPrompt(t, term, "Rewrite "+file+" with the new password? (yes/no) ")
	term.input <- "no"
	term.waitText(t, "still holds the old password")
	h.setDown(true)
	term.waitText(t, "connection lost")
	h.forget()
	h.setDown(false)
	term.waitText(t, "logged in again as alice")
	h.mu.Lock()
	pw := h.password
	h.mu.Unlock()
	if pw != fresh {
		t.Fatalf("hub password %q, shown %q", pw, fresh)
	}
	testkit.WaitFor(t, "prompt", func() bool { return term.lastPrompt() == "general> " })
}

func TestSavePasswordFileLineEnds(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ old, want string }{
		{"old", "new"},
		{"old\n", "new\n"},
		{"old\r\n", "new\r\n"},
		{"old\nsecond line\n", "new\nsecond line\n"},
	} {
		p := filepath.Join(dir, "pw")
		if err := os.WriteFile(p, []byte(c.old), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := SavePasswordFile(p, "new"); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if string(b) != c.want || fi.Mode().Perm() != 0o600 {
			t.Errorf("%q became %q mode %v, want %q mode 0600", c.old, b, fi.Mode().Perm(), c.want)
		}
	}
}

// Past the server's limit of failed logins, /passwd says to wait; the
// session goes on.
func TestPasswdRateLimited(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Chat.LoginLimit = 1
	_, dial := passwdServerWith(t, cfg)
	term := startChatDial(t, dial, Config{Password: func() (string, error) { return passwdOld, nil }})
	term.waitText(t, "your salons")
	for _, pw := range []string{"not-the-password", passwdOld} {
		waitPrompt(t, term, "general> ")
		term.input <- "/passwd"
		waitPrompt(t, term, "current password: ")
		term.passwords <- pw
	}
	term.waitText(t, "/passwd: wrong current password")
	term.waitText(t, "/passwd: too many wrong passwords from your address for now; your password was not changed; try again later")
	waitPrompt(t, term, "general> ")
	term.input <- "still logged in"
	term.waitText(t, "alice: still logged in")
	if strings.Contains(term.text(), "Your new password") {
		t.Fatalf("changed while rate limited:\n%s", term.text())
	}
}

// The answer never came (client.Session.Passwd could not resume in time):
// the chat says the password may have changed, and resumes.
func TestPasswdAnswerLost(t *testing.T) {
	h := newHub()
	h.passwdErr = client.ErrConnLost
	term, _, _ := startChat(t, h, Config{})
	waitPrompt(t, term, "password for test:7447: ")
	term.passwords <- "right"
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.input <- "/passwd"
	waitPrompt(t, term, "current password: ")
	term.passwords <- "right"
	term.waitText(t, "/passwd: the connection was lost before the server answered: your password may have changed or not")
	term.waitText(t, "reconnected")
	waitPrompt(t, term, "general> ")
	term.input <- "after the loss"
	testkit.WaitFor(t, "sent", func() bool { return slices.Contains(h.storedTexts(), "after the loss") })
	historyClean(t, term, "right")
}

// A hostile or broken server answers a password that is not one: nothing
// is shown as the new password, and the chat says it may have changed.
func TestPasswdUnusableAnswer(t *testing.T) {
	h := newHub()
	h.passwdErr = &client.ProtocolError{Msg: "the passwd answer's password is not a usable password"}
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "your salons")
	waitPrompt(t, term, "general> ")
	term.input <- "/passwd"
	waitPrompt(t, term, "current password: ")
	term.passwords <- "right"
	term.waitText(t, "/passwd: the server's answer is not usable")
	term.waitText(t, "your password may have changed or not")
	waitPrompt(t, term, "general> ")
	if strings.Contains(term.text(), "Your new password") {
		t.Fatalf("a new password shown:\n%s", term.text())
	}
}
