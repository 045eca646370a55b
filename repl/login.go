package repl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"librecord/crypto"
	lnet "librecord/net"
	"librecord/net/client"
)

// loginErrorFatal reports whether a login error should stop the program
// rather than be retried.
func loginErrorFatal(err error) bool {
	var changed *client.KeyMismatchError
	var pinned *client.PinnedMismatchError
	var unknown *client.UnknownServerError
	var proto *client.ProtocolError
	return errors.As(err, &changed) || errors.As(err, &unknown) || errors.As(err, &proto) ||
		errors.As(err, &pinned) || errors.Is(err, client.ErrNotTrusted) ||
		errors.Is(err, crypto.ErrBadIdentity) || errors.Is(err, crypto.ErrBadHello)
}

// reloginSpread logs in anew after the server forgot the session. From a
// password source, it first waits a random part of ReloginJitter: after a
// restart every client learns it at once, and would otherwise all hash
// their passwords on the server in the same instant. A person typing the
// password spreads the logins anyway: they are asked at once.
func (e *engine) reloginSpread() {
	if e.cfg.Password == nil || e.cfg.ReloginJitter <= 0 {
		e.relogin()
		return
	}
	d := e.cfg.jitter(e.cfg.ReloginJitter)
	if d <= 0 {
		e.relogin()
		return
	}
	e.state = stReloginWait
	e.deadline = time.Now().Add(d)
	e.showCountdown()
	ep := e.epoch
	go func() {
		if e.cfg.sleep(e.ctx, d) != nil {
			return
		}
		e.post(func() {
			if e.state == stReloginWait && ep == e.epoch && !e.done {
				e.relogin()
			}
		})
	}()
}

// relogin logs in anew from the password source, or asks the person.
func (e *engine) relogin() {
	if e.cfg.Password == nil {
		e.state = stNeedPassword
		e.front.status("")
		e.front.askPassword()
		return
	}
	pw, err := e.cfg.Password()
	if err != nil {
		e.quit(fmt.Errorf("read password: %w", err))
		return
	}
	e.startLogin(pw)
}

// startLogin dials and logs in with pw in the background.
func (e *engine) startLogin(pw string) {
	e.state = stLoggingIn
	e.epoch++
	ep := e.epoch
	go func() {
		// The session bounds the dial and the login itself; the login may
		// take longer than the reconnect window when the server is hashing
		// a burst of passwords.
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		sess, err := e.dial(ctx, nil)
		var info client.LoginInfo
		if err == nil {
			info, err = sess.Login(ctx, pw)
			if err != nil {
				sess.Close()
			}
		}
		e.post(func() { e.onLogin(ep, pw, sess, info, err) })
	}()
}

func (e *engine) onLogin(ep int, pw string, sess Session, info client.LoginInfo, err error) {
	if !client.IsCode(err, lnet.CodeAuth) {
		defer e.front.loginDone()
	}
	if ep != e.epoch || e.done {
		if err == nil {
			sess.Close()
		}
		return
	}
	if err == nil {
		e.adopt(sess, info)
		e.gaveUpAt = time.Time{}
		e.loginBackoff = nil
		e.front.notice("logged in again as " + info.Pseudo)
		// A salon no longer allowed answers forbidden to the poll:
		// salonLost says so and moves on.
		e.unsynced = true
		e.resync()
		return
	}
	switch {
	case client.IsCode(err, lnet.CodeAuth):
		if e.cfg.Password != nil {
			e.quit(fmt.Errorf("the password from %s was refused", e.cfg.PasswordSource))
			return
		}
		e.front.notice("wrong password (or the host removed your account)")
		e.state = stNeedPassword
		e.front.loginDone()
		return
	case loginErrorFatal(err):
		e.quit(err)
		return
	}
	// Unreachable, refused for now, timed out: try again a bit later.
	if e.cfg.Password != nil && e.noRetryAfter() {
		e.quit(fmt.Errorf("cannot log in again: %w", err))
		return
	}
	e.state = stReloginWait
	if !refusedForNow(err) {
		// Unreachable (a restart): every RetryDelay, to be back soon.
		e.deadline = time.Now().Add(e.cfg.RetryDelay)
		e.front.status(fmt.Sprintf("cannot log in again (%v); retrying", err))
		e.after(e.cfg.RetryDelay, func() {
			if e.state == stReloginWait && ep == e.epoch {
				e.startLogin(pw)
			}
		})
		return
	}
	// The server turned us away (a full source, too many sessions, too
	// many failed logins): wait longer each time.
	if e.loginBackoff == nil {
		e.loginBackoff = e.newBackoff()
	}
	d := e.loginBackoff.next()
	e.deadline = time.Now().Add(d)
	e.front.status(fmt.Sprintf("%s; logging in again in %s", refusal(err), fmtWait(d)))
	go func() {
		if e.cfg.sleep(e.ctx, d) != nil {
			return
		}
		e.post(func() {
			if e.state == stReloginWait && ep == e.epoch {
				e.startLogin(pw)
			}
		})
	}()
}

// noRetryAfter reports whether the scripted chat should give up logging
// in: it tries for one reconnect window, then fails so that whoever runs
// it learns which lines were not sent.
func (e *engine) noRetryAfter() bool {
	if !e.giveUp {
		return false
	}
	if e.gaveUpAt.IsZero() {
		e.gaveUpAt = time.Now().Add(e.window())
	}
	return time.Now().After(e.gaveUpAt)
}
