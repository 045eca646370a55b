package repl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	lnet "librecord/net"
	"librecord/net/client"
)

// MaxScriptLine bounds one input line of scripted use; longer lines are
// reported as not sent (no server accepts them in one frame anyway).
const MaxScriptLine = 1 << 20

// NotSentError lists the input lines a scripted chat could not send.
type NotSentError struct {
	Lines []NotSent
}

// NotSent is one input line that was not sent, and why.
type NotSent struct {
	Line   int
	Reason string
}

func (e *NotSentError) Error() string {
	var parts []string
	for _, l := range e.Lines {
		parts = append(parts, fmt.Sprintf("line %d (%s)", l.Line, l.Reason))
	}
	return fmt.Sprintf("%d line(s) not sent: %s", len(e.Lines), strings.Join(parts, ", "))
}

// script is the scripted front: messages as lines on out, notices on
// errOut.
type script struct {
	e   *engine
	cfg Config
	// slots holds one token per input line read and not settled yet:
	// at most its capacity of lines wait in memory, so that a huge input
	// is read as it is sent.
	slots      chan struct{}
	out        *bufio.Writer
	errOut     io.Writer
	notSent    []NotSent
	lastStatus string
	inputDone  bool
	inputErr   error
}

// RunScript sends every line of in, in order, as a message to cfg.Salon,
// and writes the messages arriving meanwhile to out, one per line (see
// ScriptLine). At the end of in it waits for every ack, says bye and
// returns nil, or a *NotSentError naming the lines that were not sent.
// Notices (reconnecting, ...) go to errOut.
func RunScript(ctx context.Context, cfg Config, dial Dialer, in io.Reader, out, errOut io.Writer) error {
	if cfg.Password == nil {
		return errors.New("no password: scripted use reads it from --password-file or LIBRECORD_PASSWORD")
	}
	if cfg.ByeTimeout <= 0 {
		cfg.ByeTimeout = 5 * time.Second // a script is not in a hurry
	}
	cfg.defaults()
	s := &script{cfg: cfg, out: bufio.NewWriter(out), errOut: errOut, slots: make(chan struct{}, 256)}
	defer s.out.Flush()
	e := newEngine(ctx, cfg, dial, s, mode{giveUp: true})
	s.e = e

	sess, info, err := s.login(ctx)
	if err != nil {
		return err
	}
	e.adopt(sess, info)
	salon := canonical(info.Salons, cfg.Salon)
	if salon == "" {
		e.finish()
		return fmt.Errorf("%s may not write in salon %q (their salons: %s)", client.Printable(info.Pseudo), cfg.Salon,
			client.Printable(strings.Join(info.Salons, ", ")))
	}
	e.open(salon)

	go s.read(in, salon)

	err = e.loop()
	e.finish()
	s.out.Flush()
	if err != nil && !errors.As(err, new(*NotSentError)) {
		s.unsent("not sent")
		if len(s.notSent) > 0 {
			return fmt.Errorf("%w; %w", err, &NotSentError{Lines: s.notSent})
		}
		return err
	}
	s.unsent("not sent before the end")
	if len(s.notSent) > 0 {
		return &NotSentError{Lines: s.notSent}
	}
	return nil
}

// login dials and logs in from the password source. A server that turns
// the connection or the login away for now is tried again after a growing
// wait, for up to a reconnect window in all.
func (s *script) login(ctx context.Context) (Session, client.LoginInfo, error) {
	e := s.e
	bo := e.newBackoff()
	for {
		sess, err := e.connect(ctx, nil)
		if err != nil {
			if e.waitRefused(ctx, err, bo) {
				continue
			}
			return nil, client.LoginInfo{}, refusedErr(err, bo)
		}
		for {
			var pw string
			pw, err = s.cfg.Password()
			if err != nil {
				sess.Close()
				return nil, client.LoginInfo{}, fmt.Errorf("read password: %w", err)
			}
			var info client.LoginInfo
			info, err = sess.Login(ctx, pw)
			if err == nil {
				return sess, info, nil
			}
			if !e.waitRefused(ctx, err, bo) {
				break
			}
		}
		sess.Close()
		if client.IsCode(err, lnet.CodeAuth) {
			return nil, client.LoginInfo{}, fmt.Errorf("the password from %s was refused", s.cfg.PasswordSource)
		}
		return nil, client.LoginInfo{}, refusedErr(err, bo)
	}
}

// refusedErr says how long the server kept refusing, if it did.
func refusedErr(err error, bo *backoff) error {
	if refusedForNow(err) && bo.waited > 0 {
		return fmt.Errorf("the server kept refusing for %s: %w", fmtWait(bo.waited), err)
	}
	return err
}

// unsent records what is still in the outbox.
func (s *script) unsent(reason string) {
	for _, it := range s.e.waiting() {
		s.notSent = append(s.notSent, NotSent{Line: it.Line, Reason: reason})
	}
}

// read feeds the input lines to the loop, in order.
func (s *script) read(in io.Reader, salon string) {
	br := bufio.NewReaderSize(in, 64<<10)
	e := s.e
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br, MaxScriptLine)
		if err != nil && line == "" && !tooLong {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			e.post(func() {
				s.inputDone = true
				if err != nil {
					s.inputErr = fmt.Errorf("read input: %w", err)
				}
				e.pump()
			})
			return
		}
		reason := checkText(line)
		if tooLong {
			reason = "line too long"
		}
		if line == "" && !tooLong {
			continue // nothing to send
		}
		select {
		case s.slots <- struct{}{}:
		case <-e.stopped():
			return
		}
		n := n
		e.post(func() {
			if reason != "" {
				s.notSent = append(s.notSent, NotSent{Line: n, Reason: reason})
				fmt.Fprintf(s.errOut, "librecord: line %d not sent: %s\n", n, reason)
				<-s.slots
				return
			}
			e.queue(n, salon, line)
		})
	}
}

// readLine reads one line without its line end (and a \r before it).
// Past max bytes the rest of the line is skipped and tooLong set.
func readLine(br *bufio.Reader, max int) (line string, tooLong bool, err error) {
	var b []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(b)+len(chunk) > max+2 {
			tooLong = true
		} else {
			b = append(b, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return "", true, err
		}
		s := strings.TrimSuffix(string(b), "\n")
		s = strings.TrimSuffix(s, "\r")
		if len(s) > max {
			return "", true, err
		}
		if err != nil && len(b) > 0 && errors.Is(err, io.EOF) {
			err = nil // a last line without line end
		}
		return s, false, err
	}
}

// checkText says why a line cannot be a message (lnet.CheckText,
// PROTOCOL.md 3.2; the caller checks the line's length), or "".
func checkText(s string) string {
	if s == "" {
		return ""
	}
	if e := lnet.CheckText(s, len(s)); e != nil {
		return e.Message
	}
	return ""
}

// message writes m as a line. Mentions are not marked: the line format
// stays fixed for the programs that read it, and a script that cares
// matches its own pseudo in the text.
func (s *script) message(salon string, m lnet.Message, own *Item, _ bool) {
	if own != nil {
		return // our own line, not an incoming message
	}
	s.out.WriteString(ScriptLine(salon, m) + "\n")
	s.out.Flush()
}

// settled frees the line's slot.
func (s *script) settled(*Item) { <-s.slots }

// idle ends the chat once the input is over and every line settled.
func (s *script) idle() {
	if s.inputDone {
		s.e.quit(s.inputErr)
	}
}

// askPassword is never called: scripted use has a password source.
func (s *script) askPassword() {}

func (s *script) loginDone() {}

func (s *script) salonsChanged([]string) {}

func (s *script) notice(text string) {
	s.lastStatus = ""
	fmt.Fprintf(s.errOut, "librecord: %s\n", client.Printable(text))
}

// status prints a countdown once per phase, not every second.
func (s *script) status(text string) {
	phase := strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return -1
		}
		return r
	}, text)
	if text == "" || phase == s.lastStatus {
		return
	}
	s.lastStatus = phase
	fmt.Fprintf(s.errOut, "librecord: %s\n", client.Printable(text))
}

func (s *script) failed(it *Item, err error) {
	s.notSent = append(s.notSent, NotSent{Line: it.Line, Reason: err.Error()})
	fmt.Fprintf(s.errOut, "librecord: line %d not sent: %s\n", it.Line, client.Printable(err.Error()))
}
