package repl

import (
	"context"
	"fmt"

	lnet "librecord/net"
	"librecord/net/client"
)

// revoked reports whether err is the server's auth answer to a request of
// sess, the session in use: the host changed the password or removed the
// account, and the server ended the session (PROTOCOL.md 3.7). It then
// handles it with sessionRevoked. The epoch is not checked: the connection
// the server closed after that answer may have been noticed first.
func (e *engine) revoked(sess Session, err error) bool {
	if !client.IsCode(err, lnet.CodeAuth) {
		return false
	}
	if sess == e.sess {
		e.sessionRevoked()
	}
	return true
}

// sessionRevoked ends a session the server no longer accepts: erase the
// keys, say why, and log in again at once. The outbox is kept: its items
// go out after login, with their cids.
func (e *engine) sessionRevoked() {
	if e.done || (e.state != stOnline && e.state != stResuming) {
		return // already over, or logging in again
	}
	e.epoch++
	e.inFlight = nil
	e.stopPoller()
	e.sess.Close()
	e.front.status("")
	msg := "your password was changed or your account removed by the host: log in again"
	if e.cfg.Password != nil {
		msg += " (with the password from " + e.cfg.PasswordSource + ")"
	}
	e.front.notice(msg)
	e.relogin()
}

// salonLost handles a forbidden answer to the poll of the open salon: the
// host revoked the user's access to it, or removed the user (then the
// salons request gets auth, and the session is over).
func (e *engine) salonLost(salon string) {
	e.stopPoller()
	e.opened[salon] = false // a later /join shows its last messages again
	sess, ep := e.sess, e.epoch
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, e.cfg.RequestTimeout)
		defer cancel()
		infos, err := sess.Salons(ctx)
		e.post(func() { e.onSalonLost(ep, sess, salon, infos, err) })
	}()
}

func (e *engine) onSalonLost(ep int, sess Session, salon string, infos []lnet.SalonInfo, err error) {
	if e.revoked(sess, err) || ep != e.epoch || e.done || e.salon != salon {
		return
	}
	if err != nil {
		e.requestFailed(err, func(err error) {
			e.front.notice(fmt.Sprintf("cannot read salon %s: %v", salon, err))
		})
		return
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
	}
	e.noteSalons(infos)
	e.setSalons(names)
	msg := "the host removed your access to salon " + salon
	if !e.switchOnLoss {
		e.front.notice(msg)
		e.open("")
		return
	}
	next := canonical(names, e.prev)
	if next == "" && len(names) > 0 {
		next = names[0]
	}
	switch {
	case next != "":
		msg += "; back to " + next + " (/salons lists your salons, /join SALON opens one)"
	case len(names) == 0:
		msg += "; no salon is open, and you may open none: ask the host to grant you one"
	}
	e.front.notice(msg)
	e.open(next)
}
