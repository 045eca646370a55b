package repl

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	lnet "librecord/net"
)

// parseAt reads a message time; a time the server garbled shows as zero.
func parseAt(at string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}
	}
	return t
}

// clean makes one line of text from the network safe to print: control
// characters (C0, DEL and the C1 range, where ESC-like CSI lives) become
// U+FFFD so that nobody can move the cursor or recolour the terminal, and a
// tab becomes spaces.
func clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString("    ")
		case unicode.IsControl(r):
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// RenderMessage formats a message for the terminal: "HH:MM pseudo: text"
// in loc, "HH:MM * text" for a system message, and the lines after the
// first of a multi-line message indented under the text.
func RenderMessage(m lnet.Message, loc *time.Location) string {
	at := parseAt(m.At)
	clock := "--:--"
	if !at.IsZero() {
		clock = at.In(loc).Format("15:04")
	}
	head := clock + " " + clean(m.Pseudo) + ": "
	if m.System {
		head = clock + " * "
	}
	return head + indent(m.Text, len(head))
}

// RenderPending formats a line the user typed that is not acked yet.
func RenderPending(pseudo, text string, at time.Time) string {
	head := at.Format("15:04") + " " + pseudo + ": "
	return head + indent(text, len(head)) + " (pending)"
}

// indent cleans text and indents its lines after the first by n spaces.
func indent(text string, n int) string {
	lines := strings.Split(text, "\n")
	pad := strings.Repeat(" ", n)
	for i, l := range lines {
		lines[i] = clean(strings.TrimSuffix(l, "\r"))
		if i > 0 {
			lines[i] = pad + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}

// dayLine separates messages of different days.
func dayLine(t time.Time) string {
	return "--- " + t.Format("Monday 2 January 2006") + " ---"
}

// ScriptLine formats a message for scripted output, one line each:
// "<RFC3339 time> <salon> <pseudo>: <text>", with "*" as the pseudo of a
// system message, and backslash, newline and carriage return escaped as
// \\, \n and \r so that a message is always exactly one line.
func ScriptLine(salon string, m lnet.Message) string {
	at := m.At
	if t := parseAt(m.At); !t.IsZero() {
		at = t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	pseudo := m.Pseudo
	if m.System {
		pseudo = "*"
	}
	var b strings.Builder
	b.WriteString(at + " " + salon + " " + escapeScript(pseudo) + ": ")
	b.WriteString(escapeScript(m.Text))
	return b.String()
}

func escapeScript(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if unicode.IsControl(r) && r != '\t' {
				b.WriteRune('\uFFFD')
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}
