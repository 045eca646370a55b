package repl

import (
	"context"
	"errors"

	lnet "librecord/net"
	"librecord/net/client"
)

// pump sends the outbox head if nothing is in flight. One message at a
// time keeps them in order whatever the retries.
func (e *engine) pump() {
	if e.state != stOnline || e.unsynced || e.inFlight != nil || e.retrying || e.done {
		return
	}
	it := e.out.Head()
	if it == nil {
		e.front.idle()
		return
	}
	e.inFlight = it
	sess, ep := e.sess, e.epoch
	go func() {
		ack, err := sess.Send(e.ctx, it.Salon, it.Text, it.CID)
		e.post(func() { e.onSent(ep, sess, it, ack, err) })
	}()
}

func (e *engine) onSent(ep int, sess Session, it *Item, ack client.Ack, err error) {
	if e.revoked(sess, err) {
		return // the item stays in the outbox, sent again after login
	}
	if ep != e.epoch || e.inFlight != it {
		return // the connection changed meanwhile; the item is re-sent
	}
	e.inFlight = nil
	switch {
	case err == nil:
		e.out.Remove(it)
		e.acked[ack.Msg] = it
		e.settled(it)
	case client.IsCode(err, lnet.CodeRateLimited), client.IsCode(err, lnet.CodeUnavailable):
		// Nothing was stored: wait and send the same message again.
		e.retrying = true
		e.after(e.cfg.RetryDelay, func() {
			e.retrying = false
			e.pump()
		})
	case isConnErr(err):
		e.connectionLost()
		return
	case errors.Is(err, context.Canceled):
		return
	default:
		// forbidden, too_large, bad_request, internal: sending it again
		// would get the same answer.
		e.out.Remove(it)
		e.front.failed(it, err)
		e.settled(it)
	}
	e.drain()
	e.pump()
}

// settled tells the front the first time it leaves the outbox (an item
// acked again after a new login has left it before).
func (e *engine) settled(it *Item) {
	if !it.settled {
		it.settled = true
		e.front.settled(it)
	}
}
