package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	// Bell rings the terminal's bell.
	Bell()
}

// chat is the interactive front: the terminal, what is typed, what is shown.
type chat struct {
	e    *engine
	cfg  Config
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
	// asking: a command (/passwd) asks its own questions; the chat
	// prompt waits until it is done.
	asking  bool
	lastDay string
	status1 Mark // the countdown line, while shown
}

type inputReq struct {
	password bool
	prompt   string
	// answer, when set, takes what is typed (on the loop) instead of the
	// chat: the answer to a command's question, never kept in the input
	// history.
	answer func(line string, err error)
}

// RunInteractive runs the chat on a terminal until /quit, Ctrl-D or ctx
// ends. It says bye and erases the keys before returning.
func RunInteractive(ctx context.Context, cfg Config, dial Dialer, term Terminal) error {
	cfg.defaults()
	c := &chat{cfg: cfg, term: term, reqs: make(chan inputReq, 1)}
	e := newEngine(ctx, cfg, dial, c, mode{showInitial: true, switchOnLoss: true})
	c.e = e
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
	e.finish()
	if err != nil {
		for _, it := range e.waiting() {
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
	cfg := c.cfg
	bo := c.e.newBackoff()
	var sess Session
	for {
		var err error
		sess, err = c.e.connect(ctx, c.askTrust)
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

// salonsChanged keeps the salons for the completer.
func (c *chat) salonsChanged(s []string) {
	c.mu.Lock()
	c.salons = append([]string(nil), s...)
	c.mu.Unlock()
}

// chooseSalon lists the salons and picks the one to open.
func (c *chat) chooseSalon() string {
	salons := c.e.salonList()
	if len(salons) == 0 {
		c.notice("you may open no salon yet: ask the host to grant you one")
		return ""
	}
	c.notice("your salons: " + strings.Join(salons, ", "))
	if s := canonical(salons, c.cfg.Salon); s != "" {
		return s
	}
	if c.cfg.SalonGiven {
		c.notice("you may not open " + c.cfg.Salon)
	}
	return salons[0]
}

func (c *chat) prompt() string {
	// The salon's name is a valid name (client checks what servers
	// send); Printable keeps liner from refusing the prompt whatever
	// comes.
	name := client.Printable(c.e.openSalon())
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
		case <-c.e.stopped():
			return
		}
		switch {
		case req.password && req.answer != nil:
			pw, err := c.term.ReadPassword(req.prompt)
			c.e.post(func() { req.answer(pw, err) })
		case req.password:
			pw, err := c.term.ReadPassword(req.prompt)
			c.e.post(func() { c.onPassword(pw, err) })
		case req.answer != nil:
			line, _, err := c.term.ReadLine(req.prompt)
			c.e.post(func() { req.answer(line, err) })
		default:
			line, echo, err := c.term.ReadLine(req.prompt)
			c.e.post(func() { c.onLine(line, echo, err) })
		}
	}
}

func (c *chat) requestLine() {
	if c.e.over() || c.joining || c.asking {
		return
	}
	if c.e.loggedOut() {
		c.reqs <- inputReq{password: true, prompt: "password for " + c.cfg.Addr + ": "}
		return
	}
	if len(c.cont) == 0 {
		c.lineSalon = c.e.openSalon()
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
	if !e.loggedOut() {
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
	if e.loggedOut() {
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
	if strings.TrimSpace(line) != "" && !secretCommand(line, len(c.cont) > 0) {
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
	if c.lineSalon == "" {
		c.notice("no salon is open: /join one first")
		return
	}
	pending := RenderPending(c.e.pseudo(), text, time.Now().In(c.cfg.Location))
	mark := echo
	if echo == 0 || !c.term.Replace(echo, pending) {
		mark = c.term.Print(pending)
	}
	c.e.queue(0, c.lineSalon, text).mark = mark
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

func (c *chat) message(salon string, m lnet.Message, own *Item, backlog bool) {
	loc := c.cfg.Location
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
	if !c.mentionsMe(m) {
		c.term.Print(text)
		return
	}
	c.term.Print(highlight(text))
	if !backlog && !c.cfg.NoBell {
		c.term.Bell()
	}
}

// mentionsMe reports whether m mentions the user (see mentionOf).
func (c *chat) mentionsMe(m lnet.Message) bool { return mentionOf(m, c.e.pseudo()) }

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

// idle is called by the engine when every message is acked: a /quit
// waiting for them ends the chat.
func (c *chat) idle() {
	if c.quitAsked {
		c.e.quit(nil)
	}
}

// settled: the interactive chat shows acks and refusals as messages come.
func (c *chat) settled(*Item) {}
