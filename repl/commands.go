package repl

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
)

// command is one /command of the chat.
type command struct {
	name, args, help string
	run              func(c *chat, arg string)
}

var commands []command

func init() {
	commands = []command{
		{"join", "SALON", "open another salon", (*chat).cmdJoin},
		{"salons", "", "list your salons, with how many messages you have not seen", (*chat).cmdSalons},
		{"who", "", "list who is connected to the open salon", (*chat).cmdWho},
		{"history", "[N]", "show N older messages (default 10); repeat to go further back", (*chat).cmdHistory},
		{"passwd", "", "change your password: asks the current one, shows the new one once", (*chat).cmdPasswd},
		{"help", "", "show this help", (*chat).cmdHelp},
		{"quit", "", "say goodbye and leave (Ctrl-D does the same)", (*chat).cmdQuit},
	}
}

func commandNames() string {
	var names []string
	for _, c := range commands {
		names = append(names, "/"+c.name)
	}
	return strings.Join(names, " ")
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// Input is one line of the person, parsed.
type Input struct {
	Command string // without the slash; "" for a message
	Arg     string
	Text    string // the message, for a message
}

// ParseLine reads a complete input line: "/cmd arg" is a command, "//x"
// sends "/x", anything else is a message. An empty or blank line is
// neither (zero Input).
func ParseLine(line string) (Input, error) {
	if strings.TrimSpace(line) == "" {
		return Input{}, nil
	}
	if strings.HasPrefix(line, "//") {
		return Input{Text: line[1:]}, nil
	}
	if !strings.HasPrefix(line, "/") {
		return Input{Text: line}, nil
	}
	name, arg, _ := strings.Cut(strings.TrimSpace(line[1:]), " ")
	if findCommand(name) == nil {
		return Input{}, fmt.Errorf("unknown command /%s; commands: %s (start a message with // to send a line beginning with /)", name, commandNames())
	}
	return Input{Command: name, Arg: strings.TrimSpace(arg)}, nil
}

// Continues reports whether an input line asks for another line (it ends
// with a single backslash), and returns the line as it should be kept: the
// continuation backslash removed, or a doubled final backslash made single.
func Continues(line string) (string, bool) {
	if strings.HasSuffix(line, `\\`) {
		return line[:len(line)-1], false
	}
	if strings.HasSuffix(line, `\`) {
		return line[:len(line)-1], true
	}
	return line, false
}

// Complete returns the completions of an input line: command names after
// a slash, salon names after /join.
func Complete(line string, salons []string) []string {
	if !strings.HasPrefix(line, "/") {
		return nil
	}
	var out []string
	name, arg, hasArg := strings.Cut(line[1:], " ")
	if !hasArg {
		for _, c := range commands {
			if strings.HasPrefix(c.name, name) {
				s := "/" + c.name
				if c.args != "" {
					s += " "
				}
				out = append(out, s)
			}
		}
		return out
	}
	if name == "join" {
		arg = strings.TrimLeft(arg, " ")
		for _, s := range salons {
			if strings.HasPrefix(strings.ToLower(s), strings.ToLower(arg)) {
				out = append(out, "/join "+s)
			}
		}
	}
	return out
}

// online reports whether a request can go out now, and says why not.
func (c *chat) online() bool {
	if !c.e.connected() {
		c.notice("not connected right now; try again once reconnected")
		return false
	}
	return true
}

// failure reports a request's error (a lost connection starts resuming).
func (c *chat) failure(what string, err error) {
	c.e.requestFailed(err, func(err error) {
		if client.IsCode(err, lnet.CodeForbidden) {
			c.notice(what + ": no such salon, or you may not open it")
			return
		}
		c.notice(what + ": " + err.Error())
	})
}

func (c *chat) cmdHelp(string) {
	var b strings.Builder
	b.WriteString("-!- commands:")
	for _, cmd := range commands {
		usage := "/" + cmd.name
		if cmd.args != "" {
			usage += " " + cmd.args
		}
		fmt.Fprintf(&b, "\n      %-14s %s", usage, cmd.help)
	}
	b.WriteString("\n    Any other line is a message; end a line with \\ to continue the message on the next line;" +
		"\n    start it with // to send a line beginning with /. Tab completes commands and salons.")
	c.term.Print(b.String())
}

func (c *chat) cmdQuit(string) {
	e := c.e
	if e.idleNow() {
		e.quit(nil)
		return
	}
	if c.quitAsked {
		for _, it := range e.waiting() {
			c.notice("not sent: " + clean(strings.ReplaceAll(it.Text, "\n", " / ")))
		}
		e.quit(nil)
		return
	}
	c.quitAsked = true
	c.notice(fmt.Sprintf("%d message(s) not acknowledged yet: quitting once they are sent (/quit again to leave now)", len(e.waiting())))
	e.pump()
}

func (c *chat) cmdJoin(arg string) {
	e := c.e
	if arg == "" || strings.ContainsRune(arg, ' ') {
		c.notice("usage: /join SALON")
		return
	}
	if !c.online() {
		return
	}
	name := arg
	if s := canonical(e.salonList(), arg); s != "" {
		name = s
	}
	if e.polling(name) {
		c.notice("already in " + name)
		return
	}
	// Check access first, so that a refused /join leaves the open salon
	// as it was. The next prompt waits for the answer, so that it names
	// the salon open then.
	c.joining = true
	var (
		sess Session
		err  error
	)
	answer := func(current bool) {
		c.joining = false
		defer c.requestLine()
		switch {
		case e.revoked(sess, err):
		case !current:
			c.notice("cannot open " + name + " now: the connection changed meanwhile; try again")
		case err != nil:
			c.failure("cannot open "+name, err)
		default:
			c.notice("opening " + name)
			e.openNew(name)
		}
	}
	e.request(func(ctx context.Context, s Session) func() {
		sess = s
		_, err = s.Fetch(ctx, client.FetchRequest{Salon: name, Limit: 1})
		return func() { answer(true) }
	}, func() { answer(false) })
}

func (c *chat) cmdWho(string) {
	salon := c.e.openSalon()
	if salon == "" {
		c.notice("no salon is open")
		return
	}
	if !c.online() {
		return
	}
	c.e.request(func(ctx context.Context, s Session) func() {
		who, err := s.Who(ctx, salon)
		return func() {
			if err != nil {
				c.failure("/who", err)
				return
			}
			c.notice(fmt.Sprintf("connected in %s: %s", salon, strings.Join(who, ", ")))
		}
	}, nil)
}

func (c *chat) cmdSalons(string) {
	e := c.e
	if !c.online() {
		return
	}
	current, me := e.openSalon(), e.pseudo()
	seen := e.seenNow()
	e.request(func(ctx context.Context, s Session) func() {
		infos, err := s.Salons(ctx)
		if err != nil {
			return func() { c.failure("/salons", err) }
		}
		newIn := map[string]string{}
		for _, in := range infos {
			base, ok := seen[in.Name]
			if in.Name == current || !ok || in.Last <= base {
				continue
			}
			res, err := s.Fetch(ctx, client.FetchRequest{Salon: in.Name, After: base, HasAfter: true, Limit: unreadLimit})
			if err != nil || len(res.Messages) == 0 {
				continue
			}
			newIn[in.Name] = news(res, me)
		}
		return func() {
			var parts []string
			var names []string
			for _, in := range infos {
				names = append(names, in.Name)
				p := in.Name
				switch {
				case in.Name == current:
					p += " (open)"
				case newIn[in.Name] != "":
					p += " (" + newIn[in.Name] + ")"
				}
				parts = append(parts, p)
			}
			e.noteSalons(infos)
			sort.Strings(names)
			e.setSalons(names)
			if len(parts) == 0 {
				c.notice("you may open no salon yet: ask the host to grant you one")
				return
			}
			c.notice("salons: " + strings.Join(parts, ", "))
		}
	}, nil)
}

// unreadLimit bounds the messages /salons reads per salon to count what
// is new ("100+ new" beyond).
const unreadLimit = 100

// news says how many of the messages fetched are new, and how many of
// them mention me: "12 new, 2 mention you".
func news(res client.Messages, me string) string {
	n := strconv.Itoa(len(res.Messages))
	if res.More {
		n += "+"
	}
	out := n + " new"
	mine := 0
	for _, m := range res.Messages {
		if mentionOf(m, me) {
			mine++
		}
	}
	if mine > 0 {
		out += fmt.Sprintf(", %d mention you", mine)
	}
	return out
}

func (c *chat) cmdHistory(arg string) {
	e := c.e
	n := 10
	if arg != "" {
		v, err := strconv.Atoi(arg)
		if err != nil || v < 1 || v > lnet.DefaultMaxFetch {
			c.notice(fmt.Sprintf("usage: /history [N], N from 1 to %d", lnet.DefaultMaxFetch))
			return
		}
		n = v
	}
	salon := e.openSalon()
	if salon == "" {
		c.notice("no salon is open")
		return
	}
	before := e.oldestShown(salon)
	if before == 0 {
		c.notice("no earlier messages in " + salon)
		return
	}
	if !c.online() {
		return
	}
	e.request(func(ctx context.Context, s Session) func() {
		res, err := s.Fetch(ctx, client.FetchRequest{Salon: salon, Before: before, Limit: n})
		return func() {
			if err != nil {
				c.failure("/history", err)
				return
			}
			if len(res.Messages) == 0 {
				c.notice("no earlier messages in " + salon)
				return
			}
			e.shownBack(salon, res.Messages[0].ID)
			var b strings.Builder
			shownSalon := client.Printable(salon)
			fmt.Fprintf(&b, "-!- %d earlier message(s) in %s:", len(res.Messages), shownSalon)
			day := time.Now().In(c.cfg.Location).Format("2006-01-02")
			for _, m := range res.Messages {
				if at := parseAt(m.At); !at.IsZero() {
					if d := at.In(c.cfg.Location).Format("2006-01-02"); d != day {
						b.WriteString("\n" + dayLine(at.In(c.cfg.Location)))
						day = d
					}
				}
				line := RenderMessage(m, c.cfg.Location)
				if c.mentionsMe(m) {
					line = highlight(line)
				}
				b.WriteString("\n" + line)
			}
			more := "/history for more"
			if !res.More {
				more = "that is the beginning of " + shownSalon
			}
			b.WriteString("\n-!- end of earlier messages (" + more + ")")
			c.term.Print(b.String())
		}
	}, nil)
}
