package repl

import (
	"bufio"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"librecord/net/client"
	"librecord/net/testkit"
)

func scriptConfig() Config {
	return Config{
		Addr: "test:7447", Salon: "general", Poll: 100 * time.Millisecond, RetryDelay: 10 * time.Millisecond,
		Password: func() (string, error) { return "right", nil }, PasswordSource: "test",
	}
}

func TestScriptSendsInOrderAndExits(t *testing.T) {
	h := newHub()
	h.rateLimit = 3 // a rate_limited answer means wait and retry
	in := "one\r\ntwo\n\nthree"
	var out, errOut testkit.Buffer
	err := RunScript(context.Background(), scriptConfig(), h.dial, strings.NewReader(in), &out, &errOut)
	if err != nil {
		t.Fatalf("%v (stderr %s)", err, errOut.String())
	}
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"one", "two", "three"}) {
		t.Errorf("stored %q", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byes != 1 {
		t.Errorf("byes %d", h.byes)
	}
	if out.String() != "" {
		t.Errorf("own lines echoed on stdout: %q", out.String())
	}
}

// followingSession tells, once, when its session first fetches after a
// cursor: from then on a new message counts as new, not as history.
type followingSession struct {
	Session
	once      *sync.Once
	following chan struct{}
}

func (s followingSession) Fetch(ctx context.Context, f client.FetchRequest) (client.Messages, error) {
	if f.HasAfter {
		s.once.Do(func() { close(s.following) })
	}
	return s.Session.Fetch(ctx, f)
}

func TestScriptWritesIncoming(t *testing.T) {
	h := newHub()
	h.post("general", "bob", "old, not shown")
	pr, pw := io.Pipe()
	var errOut testkit.Buffer
	outR, outW := io.Pipe()
	following, once := make(chan struct{}), new(sync.Once)
	dial := func(ctx context.Context, ask AskTrust) (Session, error) {
		s, err := h.dial(ctx, ask)
		if err != nil {
			return nil, err
		}
		return followingSession{Session: s, once: once, following: following}, nil
	}
	done := make(chan error, 1)
	go func() {
		done <- RunScript(context.Background(), scriptConfig(), dial, pr, outW, &errOut)
		outW.Close()
	}()
	// Post only once the script follows the salon: a message posted before
	// its first look is history, which scripts do not print.
	select {
	case <-following:
	case err := <-done:
		t.Fatalf("script ended before following the salon: %v (stderr %s)", err, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("script did not follow the salon within 30 s")
	}
	h.post("general", "bob", "hi\nthere")
	scanned := make(chan bool, 1)
	lines := bufio.NewScanner(outR)
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
	if !strings.HasSuffix(got, ` general bob: hi\nthere`) {
		t.Errorf("line %q", got)
	}
	if _, err := time.Parse(time.RFC3339, strings.Fields(got)[0]); err != nil {
		t.Errorf("time of %q: %v", got, err)
	}
	pw.Write([]byte("reply\n"))
	pw.Close()
	go func() {
		for lines.Scan() {
			t.Errorf("unexpected output %q", lines.Text())
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"reply"}) {
		t.Errorf("stored %q", got)
	}
}

func TestScriptReportsUnsentLines(t *testing.T) {
	h := newHub()
	in := "fine\nbad\x01char\n" + strings.Repeat("x", MaxScriptLine+10) + "\nc1 \u009b control\nlast\n"
	var out, errOut testkit.Buffer
	err := RunScript(context.Background(), scriptConfig(), h.dial, strings.NewReader(in), &out, &errOut)
	var ns *NotSentError
	if !errors.As(err, &ns) {
		t.Fatalf("got %v", err)
	}
	var lines []int
	for _, l := range ns.Lines {
		lines = append(lines, l.Line)
	}
	if !reflect.DeepEqual(lines, []int{2, 3, 4}) {
		t.Errorf("not sent %v (%v)", lines, err)
	}
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"fine", "last"}) {
		t.Errorf("stored %q", got)
	}
}

func TestScriptForbiddenSalon(t *testing.T) {
	h := newHub()
	cfg := scriptConfig()
	cfg.Salon = "secret"
	err := RunScript(context.Background(), cfg, h.dial, strings.NewReader("x\n"), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `may not write in salon "secret"`) {
		t.Fatalf("got %v", err)
	}
}

func TestScriptWrongPassword(t *testing.T) {
	h := newHub()
	cfg := scriptConfig()
	cfg.Password = func() (string, error) { return "nope", nil }
	err := RunScript(context.Background(), cfg, h.dial, strings.NewReader("x\n"), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "password from test was refused") {
		t.Fatalf("got %v", err)
	}
}

// The server restarts mid-script: the script logs in again from its
// password source and sends every line once, in order.
func TestScriptSurvivesServerRestart(t *testing.T) {
	h := newHub()
	pr, pw := io.Pipe()
	var errOut testkit.Buffer
	done := make(chan error, 1)
	go func() { done <- RunScript(context.Background(), scriptConfig(), h.dial, pr, io.Discard, &errOut) }()
	pw.Write([]byte("a\n"))
	testkit.WaitFor(t, "first line", func() bool { return len(h.storedTexts()) == 1 })
	h.setDown(true)
	h.forget()
	pw.Write([]byte("b\nc\n"))
	testkit.WaitFor(t, "loss noticed", func() bool { return strings.Contains(errOut.String(), "connection lost") })
	h.setDown(false)
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("%v; stderr:\n%s", err, errOut.String())
	}
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("stored %q", got)
	}
}

// The server stays away: the script gives up and names the lines.
func TestScriptGivesUp(t *testing.T) {
	h := newHub()
	pr, pw := io.Pipe()
	cfg := scriptConfig()
	cfg.ReconnectWindow = 50 * time.Millisecond
	cfg.ReloginDelay = 10 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- RunScript(context.Background(), cfg, h.dial, pr, io.Discard, io.Discard) }()
	testkit.WaitFor(t, "logged in", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.logins == 1
	})
	h.setDown(true)
	pw.Write([]byte("lost 1\nlost 2\n"))
	pw.Close()
	err := <-done
	var ns *NotSentError
	if !errors.As(err, &ns) || len(ns.Lines) != 2 || ns.Lines[0].Line != 1 || ns.Lines[1].Line != 2 {
		t.Fatalf("got %v", err)
	}
}

func TestReadLine(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("ab\r\n"+strings.Repeat("y", 100)+"\nlast"), 16)
	for _, want := range []struct {
		line    string
		tooLong bool
	}{{"ab", false}, {"", true}, {"last", false}} {
		line, tooLong, err := readLine(br, 50)
		if err != nil || line != want.line || tooLong != want.tooLong {
			t.Errorf("got %q %v %v, want %q %v", line, tooLong, err, want.line, want.tooLong)
		}
	}
	if _, _, err := readLine(br, 50); err != io.EOF {
		t.Errorf("at end: %v", err)
	}
}
