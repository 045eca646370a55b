package repl

import (
	"strings"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
)

// parseAt reads a message time; a time the server garbled shows as zero.
func parseAt(at string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}
	}
	return t
}

// clean makes one line of message text safe to print: a tab becomes four
// spaces, and the rest goes through client.Printable (controls, C1 and
// bidi overrides become U+FFFD).
func clean(s string) string {
	return client.Printable(strings.ReplaceAll(s, "\t", "    "))
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
	head := clock + " " + client.Printable(m.Pseudo) + ": "
	if m.System {
		head = clock + " * "
	}
	return head + indent(m.Text, len(head))
}

// RenderPending formats a line the user typed that is not acked yet.
func RenderPending(pseudo, text string, at time.Time) string {
	head := at.Format("15:04") + " " + client.Printable(pseudo) + ": "
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
// \\, \n and \r so that a message is always exactly one line. Tabs are
// kept; every other character client.Printable replaces is U+FFFD. A
// time that is not RFC 3339 is written "-".
func ScriptLine(salon string, m lnet.Message) string {
	at := "-"
	if t := parseAt(m.At); !t.IsZero() {
		at = t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	pseudo := m.Pseudo
	if m.System {
		pseudo = "*"
	}
	var b strings.Builder
	b.WriteString(at + " " + escapeScript(salon) + " " + escapeScript(pseudo) + ": ")
	b.WriteString(escapeScript(m.Text))
	return b.String()
}

var scriptEscapes = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)

// escapeScript escapes s for one scripted output line (see ScriptLine).
func escapeScript(s string) string {
	parts := strings.Split(scriptEscapes.Replace(s), "\t")
	for i, p := range parts {
		parts[i] = client.Printable(p)
	}
	return strings.Join(parts, "\t")
}

// Select Graphic Rendition sequences of a highlighted message: bold and
// reverse video on, then every attribute off.
const (
	highlightOn  = "\x1b[1;7m"
	highlightOff = "\x1b[0m"
)

// highlight makes rendered text stand out, each line on its own so that
// the attributes never spill onto the prompt. text must already be
// printable (RenderMessage): these are then the only escape sequences in
// it, written by us.
func highlight(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = highlightOn + l + highlightOff
	}
	return strings.Join(lines, "\n")
}
