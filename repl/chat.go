package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
)

// Mark identifies a block of lines printed on the terminal, so that it can
// be rewritten while it is still on screen. 0 is no block.
type Mark uint64

// ErrInterrupted is returned by Terminal.ReadPassword when the person
// presses Ctrl-C.
var ErrInterrupted = errors.New("interrupted")

// Terminal is the person's terminal as the chat sees it. Print and Replace
// may be called from any goroutine, also while ReadLine is waiting: the
// text appears above the prompt and the line being typed stays intact.
type Terminal interface {
	// ReadLine shows prompt and returns the line typed, and the mark of
	// its echo on screen. Ctrl-D on an empty line returns io.EOF. The line
	// is not added to the input history.
	ReadLine(prompt string) (string, Mark, error)
	// AddHistory adds a line to the input history (kept across runs).
	// The chat adds messages and commands only: never an answer to a
	// question, nor what may be a password.
	AddHistory(line string)
	// ReadPassword reads a line without echoing it.
	ReadPassword(prompt string) (string, error)
	// Print shows text (one or more lines) above the prompt.
	Print(text string) Mark
	// Replace rewrites block m with text, in place, and reports whether
	// it could: m must still be on screen and redrawable with everything
	// printed after it (which is redrawn below it).
	Replace(m Mark, text string) bool
	// SetCompleter sets the tab completion of the input line.
	SetCompleter(func(line string) []string)
}

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

// chat is the interactive front: the terminal, what is typed, what is shown.
type chat struct {
	e    *engine
	term Terminal

	mu     sync.Mutex // guards salons for the completer (liner's goroutine)
	salons []string

	reqs chan inputReq
	cont []string // lines of a message continued with a backslash
	// lineSalon and linePrompt are what the prompt up showed: a message
	// goes to the salon the person saw, even if it changed meanwhile.
	lineSalon  string
	linePrompt string
	// joining: a /join waits for its answer; the next prompt comes then,
	// with the new salon's name.
	joining   bool
	quitAsked bool
	// awaitingLogin: a password was given and no prompt is up until the
	// login's outcome is known.
	awaitingLogin bool
	lastDay       string
	status1       Mark // the countdown line, while shown
}

type inputReq struct {
	password bool
	prompt   string
}

// RunInteractive runs the chat on a terminal until /quit, Ctrl-D or ctx
// ends. It says bye and erases the keys before returning.
func RunInteractive(ctx context.Context, cfg Config, dial Dialer, term Terminal) error {
	c := &chat{term: term, reqs: make(chan inputReq, 1)}
	e := newEngine(ctx, cfg, dial, c)
	c.e = e
	e.showInitial = true
	e.askPassword = c.askPassword
	e.loginDone = c.loginDone
	e.onSalons = c.setSalons
	e.switchOnLoss = true
	term.SetCompleter(func(line string) []string {
		c.mu.Lock()
		defer c.mu.Unlock()
		return Complete(line, c.salons)
	})

	sess, info, err := c.login(ctx)
	if err != nil {
		return err
	}
	e.adopt(sess, info)
	c.notice(fmt.Sprintf("connected to %s as %s", cfg.Addr, info.Pseudo))
	salon := c.chooseSalon()
	e.baseline()
	if salon != "" {
		c.notice("opening " + salon + " (/help for commands)")
		e.open(salon)
	}
	go c.readInput()
	c.requestLine()
	err = e.loop()
	e.finish(2 * time.Second)
	if err != nil {
		for _, it := range e.out.Items() {
			c.notice("not sent: " + clean(strings.ReplaceAll(it.Text, "\n", " / ")))
		}
	}
	return err
}

// login dials (asking about an unknown server) and logs in, asking the
// password again when it is wrong. A server that turns the connection or
// the login away for now is tried again after a growing wait, with the
// same password.
func (c *chat) login(ctx context.Context) (Session, client.LoginInfo, error) {
	cfg := c.e.cfg
	bo := c.e.newBackoff()
	var sess Session
	for {
		var err error
		sess, err = c.e.dial(ctx, c.askTrust)
		if err == nil {
			break
		}
		if !c.e.waitRefused(ctx, err, bo) {
			return nil, client.LoginInfo{}, err
		}
	}
	var pw string
	for again := false; ; {
		var err error
		switch {
		case again:
			again = false // the same password, after a refusal for now
		case cfg.Password != nil:
			pw, err = cfg.Password()
		default:
			pw, err = c.term.ReadPassword("password for " + cfg.Addr + ": ")
			if err == nil && pw == "" {
				continue
			}
		}
		if err != nil {
			sess.Close()
			if errors.Is(err, io.EOF) || errors.Is(err, ErrInterrupted) {
				err = errors.New("login cancelled")
			}
			return nil, client.LoginInfo{}, err
		}
		info, err := sess.Login(ctx, pw)
		switch {
		case err == nil:
			return sess, info, nil
		case client.IsCode(err, lnet.CodeAuth) && cfg.Password == nil:
			c.term.Print("wrong password, try again")
		case client.IsCode(err, lnet.CodeAuth):
			sess.Close()
			return nil, client.LoginInfo{}, fmt.Errorf("the password from %s was refused", cfg.PasswordSource)
		case refusedForNow(err):
			if !c.e.waitRefused(ctx, err, bo) {
				sess.Close()
				return nil, client.LoginInfo{}, err
			}
			again = true
		default:
			sess.Close()
			return nil, client.LoginInfo{}, err
		}
	}
}

// askTrust shows a new server's fingerprint and asks whether to trust it.
func (c *chat) askTrust(addr, fingerprint string) (bool, error) {
	c.term.Print(fmt.Sprintf("The server %s is not known yet. Its identity fingerprint is\n    %s\n"+
		"Check that it is the one the host gave you (librecord serve prints it at start).", addr, fingerprint))
	for {
		ans, _, err := c.term.ReadLine("Trust this server and connect? (yes/no) ")
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		switch strings.ToLower(strings.TrimSpace(ans)) {
		case "yes", "y":
			return true, nil
		case "no", "n", "":
			return false, nil
		}
		c.term.Print("please answer yes or no")
	}
}

func (c *chat) setSalons(s []string) {
	c.mu.Lock()
	c.salons = append([]string(nil), s...)
	c.mu.Unlock()
}

// chooseSalon lists the salons and picks the one to open.
func (c *chat) chooseSalon() string {
	e := c.e
	if len(e.salons) == 0 {
		c.notice("you may open no salon yet: ask the host to grant you one")
		return ""
	}
	c.notice("your salons: " + strings.Join(e.salons, ", "))
	if s := canonical(e.salons, e.cfg.Salon); s != "" {
		return s
	}
	if e.cfg.SalonGiven {
		c.notice("you may not open " + e.cfg.Salon)
	}
	return e.salons[0]
}

func (c *chat) prompt() string {
	// The salon's name is a valid name (client checks what servers
	// send); Printable keeps liner from refusing the prompt whatever
	// comes.
	name := client.Printable(c.e.salon)
	if name == "" {
		name = "librecord"
	}
	if len(c.cont) > 0 {
		return strings.Repeat(" ", max(len(name)-3, 0)) + "...> "
	}
	return name + "> "
}

// readInput is the goroutine that blocks in the terminal's line editor.
func (c *chat) readInput() {
	for {
		var req inputReq
		select {
		case req = <-c.reqs:
		case <-c.e.stop:
			return
		}
		if req.password {
			pw, err := c.term.ReadPassword(req.prompt)
			c.e.post(func() { c.onPassword(pw, err) })
			continue
		}
		line, echo, err := c.term.ReadLine(req.prompt)
		c.e.post(func() { c.onLine(line, echo, err) })
	}
}

func (c *chat) requestLine() {
	if c.e.done || c.joining {
		return
	}
	if c.e.state == stNeedPassword {
		c.reqs <- inputReq{password: true, prompt: "password for " + c.e.cfg.Addr + ": "}
		return
	}
	if len(c.cont) == 0 {
		c.lineSalon = c.e.salon
	}
	c.linePrompt = c.prompt()
	c.reqs <- inputReq{prompt: c.linePrompt}
}

// askPassword is called by the engine when it needs the password again.
// The line editor cannot be interrupted, so the person is asked to press
// Enter; the password prompt comes then. Whatever is typed at the chat
// prompt meanwhile is dropped (onLine): it may be the password.
func (c *chat) askPassword() {
	c.notice("press Enter to log in again (until then, nothing you type is sent)")
}

func (c *chat) onPassword(pw string, err error) {
	e := c.e
	if err != nil {
		e.quit(nil)
		return
	}
	if e.state != stNeedPassword {
		c.requestLine()
		return
	}
	if pw == "" {
		c.requestLine()
		return
	}
	// The next prompt waits for the outcome: a wrong password asks again.
	c.awaitingLogin = true
	e.startLogin(pw)
}

// loginDone is called by the engine when a background login ends.
func (c *chat) loginDone() {
	if c.awaitingLogin {
		c.awaitingLogin = false
		c.requestLine()
	}
}

func (c *chat) onLine(line string, echo Mark, err error) {
	e := c.e
	if err != nil {
		if errors.Is(err, io.EOF) {
			c.cmdQuit("")
			c.requestLine()
			return
		}
		e.quit(err)
		return
	}
	if e.state == stNeedPassword {
		// Typed at the chat prompt while logged out: the person may have
		// typed the password there. Never send it, keep it or show it.
		if strings.TrimSpace(line) != "" {
			if echo != 0 {
				c.term.Replace(echo, c.linePrompt+"(not sent)")
			}
			c.cont = nil
			c.notice("that line was neither sent nor kept: you are logged out; type your password at the password prompt")
		}
		c.requestLine()
		return
	}
	if strings.TrimSpace(line) != "" {
		c.term.AddHistory(line)
	}
	if len(c.cont) > 0 || !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		kept, more := Continues(line)
		if more {
			c.cont = append(c.cont, kept)
			c.requestLine()
			return
		}
		line = kept
		if len(c.cont) > 0 {
			line = strings.Join(append(c.cont, line), "\n")
			c.cont = nil
			echo = 0 // several echo lines: print the pending message below
		}
	}
	in, err := ParseLine(line)
	switch {
	case err != nil:
		c.notice(err.Error())
	case in.Command != "":
		findCommand(in.Command).run(c, in.Arg)
	case in.Text != "":
		c.sendText(in.Text, echo)
	}
	c.requestLine()
}

func (c *chat) sendText(text string, echo Mark) {
	e := c.e
	if c.lineSalon == "" {
		c.notice("no salon is open: /join one first")
		return
	}
	it := e.out.Add(c.lineSalon, text)
	pending := RenderPending(e.info.Pseudo, text, time.Now().In(e.cfg.Location))
	if echo != 0 && c.term.Replace(echo, pending) {
		it.mark = echo
	} else {
		it.mark = c.term.Print(pending)
	}
	e.pump()
}

// notice prints a line of the client, replacing the countdown if shown.
// Notices quote the server (errors, names), so the whole line goes
// through client.Printable.
func (c *chat) notice(text string) {
	line := "-!- " + client.Printable(text)
	if c.status1 != 0 && c.term.Replace(c.status1, line) {
		c.status1 = 0
		return
	}
	c.status1 = 0
	c.term.Print(line)
}

func (c *chat) status(text string) {
	if text == "" {
		c.status1 = 0
		return
	}
	line := "-!- " + client.Printable(text)
	if c.status1 != 0 && c.term.Replace(c.status1, line) {
		return
	}
	c.status1 = c.term.Print(line)
}

func (c *chat) message(salon string, m lnet.Message, own *Item) {
	loc := c.e.cfg.Location
	if at := parseAt(m.At); !at.IsZero() {
		at = at.In(loc)
		day := at.Format("2006-01-02")
		today := time.Now().In(loc).Format("2006-01-02")
		if day != c.lastDay && (c.lastDay != "" || day != today) {
			c.term.Print(dayLine(at))
		}
		c.lastDay = day
	}
	text := RenderMessage(m, loc)
	if own != nil && own.mark != 0 && c.term.Replace(own.mark, text) {
		return
	}
	c.term.Print(text)
}

func (c *chat) failed(it *Item, err error) {
	reason := err.Error()
	var se *client.ServerError
	if errors.As(err, &se) {
		switch se.Code {
		case lnet.CodeForbidden:
			reason = "you may not write in " + it.Salon
		case lnet.CodeTooLarge:
			reason = "message too long"
		}
	}
	c.notice(fmt.Sprintf("not sent (%s): %s", reason, clean(strings.ReplaceAll(it.Text, "\n", " / "))))
}

// online reports whether a request can go out now, and says why not.
func (c *chat) online() bool {
	if c.e.state != stOnline {
		c.notice("not connected right now; try again once reconnected")
		return false
	}
	return true
}

// call runs a request in the background and its result on the loop, so
// the terminal never waits for the network.
func (c *chat) call(do func(ctx context.Context, s Session) func()) {
	e := c.e
	sess, ep := e.sess, e.epoch
	go func() {
		show := do(e.ctx, sess)
		e.post(func() {
			if ep == e.epoch {
				show()
			}
		})
	}()
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
	if e.out.Len() == 0 && e.inFlight == nil {
		e.quit(nil)
		return
	}
	if c.quitAsked {
		for _, it := range e.out.Items() {
			c.notice("not sent: " + clean(strings.ReplaceAll(it.Text, "\n", " / ")))
		}
		e.quit(nil)
		return
	}
	c.quitAsked = true
	c.notice(fmt.Sprintf("%d message(s) not acknowledged yet: quitting once they are sent (/quit again to leave now)", e.out.Len()))
	e.onIdle = func() {
		if c.quitAsked {
			e.quit(nil)
		}
	}
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
	if s := canonical(e.salons, arg); s != "" {
		name = s
	}
	if name == e.salon && e.pollCancel != nil {
		c.notice("already in " + name)
		return
	}
	// Check access first, so that a refused /join leaves the open salon
	// as it was. The next prompt waits for the answer, so that it names
	// the salon open then.
	c.joining = true
	sess, ep := e.sess, e.epoch
	go func() {
		_, err := sess.Fetch(e.ctx, client.FetchRequest{Salon: name, Limit: 1})
		e.post(func() {
			c.joining = false
			defer c.requestLine()
			if e.revoked(sess, err) {
				return
			}
			if ep != e.epoch {
				c.notice("cannot open " + name + " now: the connection changed meanwhile; try again")
				return
			}
			if err != nil {
				c.failure("cannot open "+name, err)
				return
			}
			if canonical(e.salons, name) == "" {
				e.setSalons(append(e.salons, name))
			}
			c.notice("opening " + name)
			e.opened[name] = false
			e.open(name)
		})
	}()
}

func (c *chat) cmdWho(string) {
	e := c.e
	if e.salon == "" {
		c.notice("no salon is open")
		return
	}
	if !c.online() {
		return
	}
	salon := e.salon
	c.call(func(ctx context.Context, s Session) func() {
		who, err := s.Who(ctx, salon)
		return func() {
			if err != nil {
				c.failure("/who", err)
				return
			}
			c.notice(fmt.Sprintf("connected in %s: %s", salon, strings.Join(who, ", ")))
		}
	})
}

func (c *chat) cmdSalons(string) {
	e := c.e
	if !c.online() {
		return
	}
	current := e.salon
	seen := map[string]int64{}
	for k, v := range e.seen {
		seen[k] = v
	}
	c.call(func(ctx context.Context, s Session) func() {
		infos, err := s.Salons(ctx)
		if err != nil {
			return func() { c.failure("/salons", err) }
		}
		unread := map[string]string{}
		for _, in := range infos {
			base, ok := seen[in.Name]
			if in.Name == current || !ok || in.Last <= base {
				continue
			}
			res, err := s.Fetch(ctx, client.FetchRequest{Salon: in.Name, After: base, HasAfter: true, Limit: 100})
			if err != nil {
				continue
			}
			n := strconv.Itoa(len(res.Messages))
			if res.More {
				n += "+"
			}
			unread[in.Name] = n
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
				case unread[in.Name] != "" && unread[in.Name] != "0":
					p += " (" + unread[in.Name] + " unread)"
				}
				parts = append(parts, p)
				if _, ok := e.seen[in.Name]; !ok {
					e.seen[in.Name] = in.Last
				}
			}
			sort.Strings(names)
			e.setSalons(names)
			if len(parts) == 0 {
				c.notice("you may open no salon yet: ask the host to grant you one")
				return
			}
			c.notice("salons: " + strings.Join(parts, ", "))
		}
	})
}

func (c *chat) cmdHistory(arg string) {
	e := c.e
	n := 10
	if arg != "" {
		v, err := strconv.Atoi(arg)
		if err != nil || v < 1 || v > 500 {
			c.notice("usage: /history [N], N from 1 to 500")
			return
		}
		n = v
	}
	if e.salon == "" {
		c.notice("no salon is open")
		return
	}
	before := e.oldest[e.salon]
	if before == 0 {
		c.notice("no earlier messages in " + e.salon)
		return
	}
	if !c.online() {
		return
	}
	salon := e.salon
	c.call(func(ctx context.Context, s Session) func() {
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
			if o := res.Messages[0].ID; o < e.oldest[salon] {
				e.oldest[salon] = o
			}
			var b strings.Builder
			shownSalon := client.Printable(salon)
			fmt.Fprintf(&b, "-!- %d earlier message(s) in %s:", len(res.Messages), shownSalon)
			day := time.Now().In(e.cfg.Location).Format("2006-01-02")
			for _, m := range res.Messages {
				if at := parseAt(m.At); !at.IsZero() {
					if d := at.In(e.cfg.Location).Format("2006-01-02"); d != day {
						b.WriteString("\n" + dayLine(at.In(e.cfg.Location)))
						day = d
					}
				}
				b.WriteString("\n" + RenderMessage(m, e.cfg.Location))
			}
			more := "/history for more"
			if !res.More {
				more = "that is the beginning of " + shownSalon
			}
			b.WriteString("\n-!- end of earlier messages (" + more + ")")
			c.term.Print(b.String())
		}
	})
}
