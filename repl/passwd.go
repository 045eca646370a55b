package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"librecord/db/atomicfile"
	lnet "librecord/net"
	"librecord/net/client"
)

// /passwd (PROTOCOL.md 3.8): the current password is asked without echo,
// the server draws the new one, which is shown once; neither enters the
// input history. The scripted chat has no commands (every line is a
// message): there is no place there to show a secret safely.

// secretCommand reports whether an input line may hold a password and
// must stay out of the input history: /passwd with anything after it
// (the person may have typed the password there). A continued message
// is never a command.
func secretCommand(line string, continued bool) bool {
	if continued || strings.HasPrefix(line, "//") || !strings.HasPrefix(line, "/") {
		return false
	}
	name, arg, _ := strings.Cut(strings.TrimSpace(line[1:]), " ")
	return name == "passwd" && strings.TrimSpace(arg) != ""
}

func (c *chat) cmdPasswd(arg string) {
	if arg != "" {
		c.notice("usage: /passwd, without argument: your current password is asked without echo (that line was not kept)")
		return
	}
	if !c.online() {
		return
	}
	c.asking = true
	c.notice("changing your password; press Enter on an empty line or Ctrl-C to cancel")
	c.reqs <- inputReq{password: true, prompt: "current password: ", answer: c.onCurrentPassword}
}

// endAsking gives the prompt back to the chat.
func (c *chat) endAsking() {
	c.asking = false
	c.requestLine()
}

func (c *chat) onCurrentPassword(current string, err error) {
	if err != nil || current == "" {
		if err != nil && !errors.Is(err, ErrInterrupted) && !errors.Is(err, io.EOF) {
			c.e.quit(err)
			return
		}
		c.notice("/passwd cancelled: your password was not changed")
		c.endAsking()
		return
	}
	if !c.e.connected() {
		c.notice("/passwd: not connected right now; your password was not changed; try again once reconnected")
		c.endAsking()
		return
	}
	// The answer matters even when the connection changed meanwhile (the
	// password changed): the same function shows it either way.
	var (
		sess  Session
		fresh string
		perr  error
	)
	answer := func() { c.passwdDone(sess, fresh, perr) }
	c.e.request(func(ctx context.Context, s Session) func() {
		sess = s
		fresh, perr = s.Passwd(ctx, current)
		return answer
	}, answer)
}

func (c *chat) passwdDone(sess Session, fresh string, err error) {
	switch {
	case err == nil:
	case client.IsCode(err, lnet.CodeAuth):
		c.notice("/passwd: wrong current password; your password was not changed")
		c.endAsking()
		return
	case client.IsCode(err, lnet.CodeRateLimited):
		c.notice("/passwd: too many wrong passwords from your address for now; your password was not changed; try again later")
		c.endAsking()
		return
	case isConnErr(err):
		c.notice("/passwd: the connection was lost before the server answered: your password may have changed " +
			"or not. Try logging in with your current password; if it is refused, ask the host for a new one " +
			"(librecord user reset-password)")
		c.endAsking()
		if sess == c.e.sess {
			c.e.requestFailed(err, func(error) {})
		}
		return
	case errors.As(err, new(*client.ProtocolError)):
		c.notice("/passwd: the server's answer is not usable (" + err.Error() + "): your password may have changed " +
			"or not. Try logging in with your current password; if it is refused, ask the host for a new one")
		c.endAsking()
		return
	default:
		c.notice("/passwd: " + err.Error() + "; your password was not changed")
		c.endAsking()
		return
	}
	c.e.passwordChanged(fresh)
	c.status1 = 0
	c.term.Print("-!- Your password was changed. Your new password is:\n\n" +
		"        " + client.Printable(fresh) + "\n\n" +
		"    Store it now (in a password manager): it is shown only this once and cannot be recovered.\n" +
		"    Your old password no longer works, and your other devices are logged out.")
	if c.cfg.PasswordFile == "" {
		c.endAsking()
		return
	}
	c.askRewrite(fresh)
}

// askRewrite offers to put the new password in the password file, so that
// logging in again from it keeps working.
func (c *chat) askRewrite(fresh string) {
	file := c.cfg.PasswordFile
	c.reqs <- inputReq{prompt: "Rewrite " + file + " with the new password? (yes/no) ", answer: func(ans string, err error) {
		if err != nil && !errors.Is(err, io.EOF) {
			c.e.quit(err)
			return
		}
		switch strings.ToLower(strings.TrimSpace(ans)) {
		case "yes", "y":
			if err := SavePasswordFile(file, fresh); err != nil {
				c.notice("could not rewrite " + file + ": " + err.Error() + "; put the new password in it yourself, " +
					"or the next start from it will fail")
			} else {
				c.notice(file + " now holds the new password")
			}
		case "no", "n", "":
			c.notice(file + " still holds the old password: put the new one in it, or the next start from it will fail")
		default:
			c.term.Print("please answer yes or no")
			c.askRewrite(fresh)
			return
		}
		c.endAsking()
	}}
}

// passwordChanged records the new password after /passwd: a login again
// from the password source uses it (the file may not hold it).
func (e *engine) passwordChanged(fresh string) {
	if e.cfg.Password != nil {
		e.cfg.Password = func() (string, error) { return fresh, nil }
	}
}

// SavePasswordFile replaces the first line of the password file at path
// (the password, as `librecord chat --password-file` reads it) with pw,
// keeping its line end (none, \n or \r\n) and any lines after it. The file
// is replaced atomically with mode 0600; a symbolic link is followed, and
// its target replaced, as for known_servers.
func SavePasswordFile(path, pw string) error {
	target, err := client.ResolveLink(path)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(target)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	first, rest, hasEnd := strings.Cut(string(old), "\n")
	end := ""
	if hasEnd {
		end = "\n"
		if strings.HasSuffix(first, "\r") {
			end = "\r\n"
		}
	}
	data := pw + end + rest
	return atomicfile.Write(target, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, data)
		if err != nil {
			return fmt.Errorf("write %s: %w", target, err)
		}
		return nil
	})
}
