package repl

import (
	"context"
	"errors"
	"fmt"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
)

func (e *engine) window() time.Duration {
	switch {
	case e.cfg.ReconnectWindow > 0:
		return e.cfg.ReconnectWindow
	case e.info.SessionTimeout > e.cfg.ResumeMargin:
		return e.info.SessionTimeout - e.cfg.ResumeMargin
	}
	return max(client.DefaultSessionTimeout-e.cfg.ResumeMargin, e.cfg.ResumeMargin)
}

func isConnErr(err error) bool {
	return errors.Is(err, client.ErrConnLost) || errors.Is(err, client.ErrNotConnected) ||
		errors.Is(err, context.DeadlineExceeded)
}

// requestFailed handles the error of a request: a lost connection starts
// the reconnect machine, an auth error ends the session, anything else
// goes to other.
func (e *engine) requestFailed(err error, other func(error)) {
	switch {
	case e.revoked(e.sess, err):
	case isConnErr(err):
		e.connectionLost()
	case errors.Is(err, context.Canceled), errors.Is(err, client.ErrClosed):
	default:
		other(err)
	}
}

// connectionLost starts resuming, for up to the reconnect window.
func (e *engine) connectionLost() {
	if e.state != stOnline || e.done {
		return
	}
	e.state = stResuming
	e.epoch++
	e.inFlight = nil
	e.stopPoller()
	e.deadline = time.Now().Add(e.window())
	e.showCountdown()
	sess, ep, deadline, retry := e.sess, e.epoch, e.deadline, e.cfg.RetryDelay
	go func() {
		for {
			ctx, cancel := context.WithDeadline(e.ctx, deadline)
			err := sess.Resume(ctx)
			cancel()
			if err == nil || client.IsCode(err, lnet.CodeUnknownSession) || e.ctx.Err() != nil ||
				errors.Is(err, client.ErrClosed) || client.IsCode(err, lnet.CodeCrypto) || loginErrorFatal(err) {
				e.post(func() { e.onResume(ep, err) })
				return
			}
			if time.Until(deadline) <= 0 {
				e.post(func() { e.onResume(ep, err) })
				return
			}
			select {
			case <-e.ctx.Done():
			case <-time.After(min(retry, time.Until(deadline))):
			}
		}
	}()
}

func (e *engine) onResume(ep int, err error) {
	if ep != e.epoch || e.done {
		return
	}
	if err == nil {
		e.state = stOnline
		e.epoch++
		e.front.notice("the connection was lost; reconnected")
		if e.unsynced {
			e.resync() // lost while comparing after a login: again
			return
		}
		e.pump()
		e.startPoller()
		return
	}
	e.sess.Close() // erase the keys (PROTOCOL.md 5)
	e.epoch++
	if client.IsCode(err, lnet.CodeUnknownSession) || client.IsCode(err, lnet.CodeCrypto) {
		// The server says it no longer has the session (restart, expiry):
		// the relogin delay would only make the user wait.
		e.front.notice("the server no longer knows this session (it restarted, the session timed out, " +
			"or the host changed your password or account); logging in again")
		e.reloginSpread()
		return
	}
	e.state = stReloginWait
	e.deadline = time.Now().Add(e.cfg.ReloginDelay)
	e.front.notice(fmt.Sprintf("could not resume the session within %s; keys erased", e.window()))
	e.showCountdown()
	e.after(e.cfg.ReloginDelay, func() {
		if e.state == stReloginWait {
			e.relogin()
		}
	})
}
