package client

import (
	"strings"
	"unicode/utf8"

	lnet "librecord/net"
)

// Printable returns s made safe to write to a terminal or to scripted
// output: every character that could drive the terminal or reorder what
// is shown becomes U+FFFD (the replacement character, "�"), as does every
// byte that is not valid UTF-8. Those characters are the C0 controls
// U+0000 to U+001F (escape, carriage return, newline and tab included),
// DEL U+007F, the C1 controls U+0080 to U+009F (U+009B is an 8-bit CSI),
// the bidirectional embeddings and overrides U+202A to U+202E and the
// isolates U+2066 to U+2069.
//
// Every string that came from a server goes through Printable before it
// is shown. A renderer that lays out the newlines and tabs of message text
// itself splits on them first and passes each piece.
func Printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // an invalid byte comes as utf8.RuneError, U+FFFD
		if unsafeRune(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unsafeRune reports whether Printable replaces r.
func unsafeRune(r rune) bool {
	return lnet.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// maxShown bounds the part of a server's error message that is shown: a
// message is for people, and a hostile server could send one the size of
// a frame.
const maxShown = 300

// shown returns a server's free text as it may be printed: Printable, and
// cut to maxShown bytes (on a character boundary) with "…" when longer.
func shown(s string) string {
	s = Printable(s)
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
