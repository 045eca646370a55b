package repl

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"librecord/net/testkit"
)

// The host restores a backup while the chat is open: the server restarts
// and new messages get ids the client has already seen. The client says so
// once, reads the salon again from where its history now ends, and shows
// what came after the restore, its own line included.
func TestRestoredBackupInteractive(t *testing.T) {
	h := newHub()
	h.post("general", "bob", "in the backup") // 1
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil },
		ReconnectWindow: 10 * time.Second})
	term.waitText(t, "bob: in the backup")
	b := h.backup()
	h.post("general", "bob", "lost 1") // 2
	term.input <- "lost 2"             // 3
	term.waitFor(t, "lost 2 shown", func(s string) bool {
		return strings.Contains(s, "alice: lost 2") && !strings.Contains(s, "(pending)")
	})
	h.post("general", "bob", "lost 3") // 4
	term.waitText(t, "bob: lost 3")

	h.setDown(true)
	term.waitText(t, "connection lost")
	term.input <- "typed during the restore"
	term.waitText(t, "typed during the restore (pending)")
	h.restore(b)
	h.post("general", "bob", "after restore") // 2 again
	h.setDown(false)

	term.waitText(t, "logged in again as alice")
	term.waitText(t, "bob: after restore")
	term.waitFor(t, "own line acked and shown", func(s string) bool {
		return strings.Contains(s, "alice: typed during the restore") && !strings.Contains(s, "(pending)")
	})
	h.post("general", "bob", "later") // 4 again
	term.waitText(t, "bob: later")
	s := term.text()
	if n := countLines(s, "went back"); n != 1 {
		t.Errorf("%d notices of the history going back, want 1:\n%s", n, s)
	}
	if !strings.Contains(s, "-!- the server's history of general went back (restored from a backup?): showing from message 2") {
		t.Errorf("notice missing:\n%s", s)
	}
	for _, l := range []string{"bob: after restore", "alice: typed during the restore", "bob: later"} {
		if n := countLines(s, l); n != 1 {
			t.Errorf("%q on %d lines, want 1:\n%s", l, n, s)
		}
	}
	want := []string{"in the backup", "after restore", "typed during the restore", "later"}
	if got := h.texts("general"); !reflect.DeepEqual(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// Scripted use across a restore. The newest id the server has is not below
// the cursor, yet the message at the cursor is another one: the history
// went back all the same. Two lines were acked but not fetched yet; their
// ack ids now name bob's new messages, which must still be written out,
// and the lines (lost with the restore) must be stored again.
func TestRestoredBackupScript(t *testing.T) {
	h := newHub()
	pr, pw := io.Pipe()
	var out, errOut testkit.Buffer
	cfg := scriptConfig()
	cfg.ReconnectWindow = 10 * time.Second
	done := make(chan error, 1)
	go func() { done <- RunScript(context.Background(), cfg, h.dial, pr, &out, &errOut) }()
	testkit.WaitFor(t, "script logged in", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.logins == 1
	})
	h.post("general", "bob", "seen") // 1
	testkit.WaitFor(t, "seen written", func() bool { return strings.Contains(out.String(), "bob: seen") })
	b := h.backup()
	h.post("general", "bob", "gone") // 2
	testkit.WaitFor(t, "gone written", func() bool { return strings.Contains(out.String(), "bob: gone") })
	h.mu.Lock()
	h.hideAbove = 2 // the acks come, the fetches do not bring the lines yet
	h.mu.Unlock()
	pw.Write([]byte("mine\nnext\n")) // 3 and 4; next goes out once mine's ack is in
	testkit.WaitFor(t, "both lines stored", func() bool { return len(h.storedTexts()) == 2 })

	h.setDown(true)
	testkit.WaitFor(t, "loss noticed", func() bool { return strings.Contains(errOut.String(), "connection lost") })
	h.restore(b)
	h.post("general", "bob", "after restore 1") // 2 again
	h.post("general", "bob", "after restore 2") // 3 again: the id mine was acked with
	h.setDown(false)
	testkit.WaitFor(t, "messages after the restore written", func() bool {
		return strings.Contains(out.String(), "bob: after restore 2")
	})
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("%v; stderr:\n%s", err, errOut.String())
	}
	o := out.String()
	if !strings.Contains(o, "bob: after restore 1") || strings.Contains(o, "mine") || strings.Contains(o, "next") {
		t.Errorf("stdout:\n%s", o)
	}
	if n := strings.Count(errOut.String(), "history of general went back"); n != 1 {
		t.Errorf("%d notices of the history going back, want 1; stderr:\n%s", n, errOut.String())
	}
	want := []string{"seen", "after restore 1", "after restore 2", "mine", "next"}
	if got := h.texts("general"); !reflect.DeepEqual(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// A plain restart keeps the history: no notice, nothing shown twice.
func TestRestartKeepsCursor(t *testing.T) {
	h := newHub()
	h.post("general", "bob", "before")
	term, _, _ := startChat(t, h, Config{Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "bob: before")
	term.input <- "mine"
	term.waitFor(t, "mine shown", func(s string) bool {
		return strings.Contains(s, "alice: mine") && !strings.Contains(s, "(pending)")
	})
	h.setDown(true)
	term.waitText(t, "connection lost")
	h.forget()
	h.post("general", "bob", "during")
	h.setDown(false)
	term.waitText(t, "logged in again as alice")
	term.waitText(t, "bob: during")
	h.post("general", "bob", "after")
	term.waitText(t, "bob: after")
	s := term.text()
	if strings.Contains(s, "went back") {
		t.Errorf("history said to go back on a plain restart:\n%s", s)
	}
	for _, l := range []string{"bob: before", "alice: mine", "bob: during"} {
		if n := countLines(s, l); n != 1 {
			t.Errorf("%q on %d lines, want 1:\n%s", l, n, s)
		}
	}
}
