package repl

import (
	"strings"

	lnet "librecord/net"
)

// mentionOf reports whether m is a message by someone other than me that
// mentions me. System messages never do: they are the server's.
func mentionOf(m lnet.Message, me string) bool {
	return !m.System && !strings.EqualFold(m.Pseudo, me) && mentions(m.Text, me)
}

// mentions reports whether text mentions pseudo as a word, ignoring ASCII
// case: "alice", "@alice", "alice:", "Alice, hi" and "thanks alice." do;
// "malice", "alice2", "alice_b" and "bob.alice" do not (they are, or may
// be, other names: PROTOCOL.md's names are ASCII letters, digits, "-",
// "_" and "."). A "." or "-" next to the pseudo ends the word unless a
// letter, digit or "_" follows it, so punctuation does not hide a mention.
func mentions(text, pseudo string) bool {
	if pseudo == "" {
		return false
	}
	lt, lp := asciiLower(text), asciiLower(pseudo)
	for from := 0; ; {
		i := strings.Index(lt[from:], lp)
		if i < 0 {
			return false
		}
		start := from + i
		end := start + len(lp)
		if !nameBefore(lt[:start]) && !nameAfter(lt[end:]) {
			return true
		}
		from = start + 1
	}
}

// nameBefore reports whether s ends with what makes the word after it part
// of a longer name.
func nameBefore(s string) bool {
	s = strings.TrimRight(s, ".-")
	return s != "" && wordByte(s[len(s)-1])
}

// nameAfter reports whether s starts with what makes the word before it
// part of a longer name.
func nameAfter(s string) bool {
	s = strings.TrimLeft(s, ".-")
	return s != "" && wordByte(s[0])
}

// wordByte: an ASCII letter, digit or "_", which only continue a name.
func wordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}

// asciiLower lowers the ASCII letters of s only, so that byte offsets stay
// those of s.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
