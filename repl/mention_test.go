package repl

import (
	"testing"

	lnet "librecord/net"
)

func TestMentions(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"alice", true},
		{"@alice", true},
		{"alice: lunch?", true},
		{"hi Alice, lunch?", true},
		{"ALICE!", true},
		{"thanks alice.", true},
		{"(alice)", true},
		{"ask alice-", true},
		{"…alice…", true},
		{"malice", false},
		{"alice2", false},
		{"alice_b", false},
		{"alice-bob", false},
		{"alice.bob", false},
		{"bob.alice", false},
		{"bob-alice", false},
		{"", false},
		{"alic", false},
		{"malice, then alice", true}, // the second one counts
	} {
		if got := mentions(tc.text, "alice"); got != tc.want {
			t.Errorf("mentions(%q, alice) = %v, want %v", tc.text, got, tc.want)
		}
	}
	// A pseudo with a dot or a dash is one word.
	if !mentions("hey j.doe!", "J.Doe") || mentions("hey j.doe2", "j.doe") || !mentions("@a-b: hi", "a-b") {
		t.Error("pseudo with . or - not matched as a word")
	}
	if mentions("anything", "") {
		t.Error("an empty pseudo is mentioned")
	}
}

func TestMentionOf(t *testing.T) {
	for name, tc := range map[string]struct {
		m    lnet.Message
		want bool
	}{
		"OK":        {lnet.Message{Pseudo: "bob", Text: "alice?"}, true},
		"Own":       {lnet.Message{Pseudo: "Alice", Text: "alice here"}, false},
		"System":    {lnet.Message{System: true, Text: "alice disconnected"}, false},
		"NoMention": {lnet.Message{Pseudo: "bob", Text: "hello"}, false},
	} {
		if got := mentionOf(tc.m, "alice"); got != tc.want {
			t.Errorf("%s: mentionOf = %v, want %v", name, got, tc.want)
		}
	}
}

func TestHighlight(t *testing.T) {
	got := highlight("12:00 bob: a\n           b")
	want := highlightOn + "12:00 bob: a" + highlightOff + "\n" + highlightOn + "           b" + highlightOff
	if got != want {
		t.Errorf("highlight = %q, want %q", got, want)
	}
	// The terminal counts no columns for our escape sequences.
	if w := width(highlight("abc")); w != 3 {
		t.Errorf("width of a highlighted line = %d, want 3", w)
	}
}

// TestNoBell: with NoBell a mention is highlighted and the bell stays
// silent.
func TestNoBell(t *testing.T) {
	h := newHub()
	h.post("general", "bob", "before: alice, look")
	term, _, _ := startChat(t, h, Config{NoBell: true, Password: func() (string, error) { return "right", nil }})
	term.waitText(t, "opening general")
	term.waitText(t, highlightOn+"")
	h.post("general", "bob", "now: alice, look")
	term.waitText(t, "bob: now: alice, look"+highlightOff)
	if n := term.bellCount(); n != 0 {
		t.Errorf("bell rang %d times with NoBell", n)
	}
}
