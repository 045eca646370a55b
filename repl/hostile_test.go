package repl

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/testkit"
)

// hostile is what a hostile server appends to every string it sends: a
// CSI that clears the screen, an OSC that sets the window title, an 8-bit
// CSI (U+009B), a bidi override and an isolate, a carriage return.
const hostile = "\x1b[2J\x1b]0;pwned\x07\u009b31m\u202e\u2066\r"

// shownHostile is hostile as it must appear: every control U+FFFD.
const shownHostile = "\uFFFD[2J\uFFFD]0;pwned\uFFFD\uFFFD31m\uFFFD\uFFFD\uFFFD"

// shownText is hostile at the end of message text, shown: the renderer
// drops a carriage return at the end of a line.
const shownText = "\uFFFD[2J\uFFFD]0;pwned\uFFFD\uFFFD31m\uFFFD\uFFFD"

// unsafeOnScreen reports a character that must never reach the terminal
// (allow lists the layout characters the output may hold).
func unsafeOnScreen(s, allow string) (rune, bool) {
	for _, r := range s {
		if strings.ContainsRune(allow, r) {
			continue
		}
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return r, true
		}
	}
	return 0, false
}

// hostileSess is a session whose server appends hostile to everything it
// says: pseudos, salon names, texts, times, error messages. The client
// package refuses names like these (TestHostileServerNames); the REPL
// must not print them raw even so. Salon names given back to it have the
// suffix taken off before they reach the hub.
type hostileSess struct {
	Session
	taintSalons bool
}

func untaint(s string) string { return strings.TrimSuffix(s, hostile) }

func taintErr(err error) error {
	var se *client.ServerError
	if errors.As(err, &se) {
		return &client.ServerError{Code: se.Code, Message: se.Message + hostile}
	}
	return err
}

func (s hostileSess) Login(ctx context.Context, pw string) (client.LoginInfo, error) {
	info, err := s.Session.Login(ctx, pw)
	if err != nil {
		return info, taintErr(err)
	}
	info.Pseudo += hostile
	if s.taintSalons {
		for i := range info.Salons {
			info.Salons[i] += hostile
		}
	}
	return info, nil
}

func (s hostileSess) Send(ctx context.Context, salon, text, cid string) (client.Ack, error) {
	if text == "trigger-error" {
		return client.Ack{}, &client.ServerError{Code: lnet.CodeBadRequest, Message: "refused " + hostile}
	}
	ack, err := s.Session.Send(ctx, untaint(salon), text, cid)
	return ack, taintErr(err)
}

func (s hostileSess) Fetch(ctx context.Context, f client.FetchRequest) (client.Messages, error) {
	f.Salon = untaint(f.Salon)
	res, err := s.Session.Fetch(ctx, f)
	if err != nil {
		return res, taintErr(err)
	}
	for i := range res.Messages {
		m := &res.Messages[i]
		if !m.System {
			m.Pseudo += hostile
		}
		m.Text += hostile
		m.At += hostile
	}
	return res, nil
}

func (s hostileSess) Salons(ctx context.Context) ([]lnet.SalonInfo, error) {
	infos, err := s.Session.Salons(ctx)
	if s.taintSalons {
		for i := range infos {
			infos[i].Name += hostile
		}
	}
	return infos, taintErr(err)
}

func (s hostileSess) Who(ctx context.Context, salon string) ([]string, error) {
	if _, err := s.Session.Who(ctx, untaint(salon)); err != nil {
		return nil, taintErr(err)
	}
	return []string{"alice" + hostile, "bob" + hostile}, nil
}

func hostileDial(h *hub, taintSalons bool) Dialer {
	return func(ctx context.Context, ask AskTrust) (Session, error) {
		s, err := h.dial(ctx, ask)
		if err != nil {
			return nil, err
		}
		return hostileSess{Session: s, taintSalons: taintSalons}, nil
	}
}

// TestHostileServerInteractive: whatever the server sends, nothing but
// printable text and line ends reaches the terminal, on every path that
// prints: messages (pseudo, text, time), the pseudo at login, salon names
// (list, prompt, /salons), /who, one's own pending line, /history and
// refused sends.
func TestHostileServerInteractive(t *testing.T) {
	h := newHub()
	for i := range 12 {
		h.post("general", "bob", "old\tmessage "+string(rune('a'+i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	term := newFakeTerm()
	cfg := Config{Addr: "test:7447", Salon: "general", Location: time.UTC, RetryDelay: 10 * time.Millisecond,
		Poll: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- RunInteractive(ctx, cfg, hostileDial(h, true), term) }()
	term.passwords <- "right"

	paths := []struct{ name, input, want string }{
		{"LoginPseudo", "", "connected to test:7447 as alice" + shownHostile},
		{"SalonList", "", "your salons: general" + shownHostile + ", dev" + shownHostile},
		{"MessagePseudoTextTime", "", "--:-- bob" + shownHostile + ": old    message l" + shownText},
		{"OwnLine", "hello", "alice" + shownHostile + ": hello"},
		{"Who", "/who", ": alice" + shownHostile + ", bob" + shownHostile},
		{"Salons", "/salons", "salons: general" + shownHostile + " (open), dev" + shownHostile},
		{"History", "/history", "bob" + shownHostile + ": old    message b" + shownText + "\n-!- end of earlier messages (that is the beginning of general" + shownHostile + ")"},
		{"RefusedSend", "trigger-error", "not sent (refused " + shownHostile + " (bad_request)): trigger-error"},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			if p.input != "" {
				term.input <- p.input
			}
			term.waitText(t, p.want)
		})
	}
	t.Run("Prompt", func(t *testing.T) {
		if got, want := term.lastPrompt(), "general"+shownHostile+"> "; got != want {
			t.Errorf("prompt %q, want %q", got, want)
		}
	})
	screen := term.text()
	if r, bad := unsafeOnScreen(screen, "\n"); bad {
		t.Errorf("the screen holds %U:\n%q", r, screen)
	}
	term.mu.Lock()
	prompts := strings.Join(term.prompts, "")
	term.mu.Unlock()
	if r, bad := unsafeOnScreen(prompts, ""); bad {
		t.Errorf("a prompt holds %U: %q", r, prompts)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHostileServerScript: the scripted output (time, salon, pseudo,
// text) and the notices on stderr carry nothing that drives a terminal.
func TestHostileServerScript(t *testing.T) {
	h := newHub()
	following, once := make(chan struct{}), new(sync.Once)
	dial := func(ctx context.Context, ask AskTrust) (Session, error) {
		s, err := hostileDial(h, false)(ctx, ask)
		if err != nil {
			return nil, err
		}
		return followingSession{Session: s, once: once, following: following}, nil
	}
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	var errOut testkit.Buffer
	done := make(chan error, 1)
	go func() {
		done <- RunScript(context.Background(), scriptConfig(), dial, pr, outW, &errOut)
		outW.Close()
	}()
	select {
	case <-following:
	case err := <-done:
		t.Fatalf("script ended before following the salon: %v (stderr %s)", err, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("script did not follow the salon within 30 s")
	}
	h.post("general", "bob", "hi\tthere\nsecond line")
	lines := bufio.NewScanner(outR)
	scanned := make(chan bool, 1)
	go func() { scanned <- lines.Scan() }()
	select {
	case ok := <-scanned:
		if !ok {
			t.Fatal("no output line")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the new message was not written within 30 s")
	}
	got := lines.Text()
	if want := "- general bob" + shownText + `\r: hi` + "\t" + `there\nsecond line` + shownText + `\r`; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	if r, bad := unsafeOnScreen(got, "\t"); bad {
		t.Errorf("scripted output holds %U: %q", r, got)
	}
	go io.Copy(io.Discard, outR)
	pw.Write([]byte("trigger-error\n"))
	pw.Close()
	err := <-done
	var ns *NotSentError
	if !errors.As(err, &ns) || len(ns.Lines) != 1 {
		t.Fatalf("got %v, want line 1 not sent", err)
	}
	if r, bad := unsafeOnScreen(err.Error(), ""); bad {
		t.Errorf("the error holds %U: %q", r, err)
	}
	stderr := errOut.String()
	if !strings.Contains(stderr, "line 1 not sent: refused "+shownHostile) {
		t.Errorf("stderr %q", stderr)
	}
	if r, bad := unsafeOnScreen(stderr, "\n"); bad {
		t.Errorf("stderr holds %U: %q", r, stderr)
	}
}
