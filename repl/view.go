package repl

import (
	"context"
	"maps"

	lnet "librecord/net"
)

// What the fronts (chat.go, script.go) may ask of the engine. They call
// these on the loop's goroutine and never touch the engine's fields: the
// engine's state stays the engine's.

// openSalon is the salon open now, or "".
func (e *engine) openSalon() string { return e.salon }

// salonList is the salons the user may open, as last learned.
func (e *engine) salonList() []string { return append([]string(nil), e.salons...) }

// pseudo is the user's pseudo, as the server spelled it at login.
func (e *engine) pseudo() string { return e.info.Pseudo }

// connected reports whether requests can go out now.
func (e *engine) connected() bool { return e.state == stOnline }

// loggedOut reports whether the engine waits for the person to give the
// password again.
func (e *engine) loggedOut() bool { return e.state == stNeedPassword }

// over reports whether the loop is ending.
func (e *engine) over() bool { return e.done }

// stopped is closed when the loop has returned.
func (e *engine) stopped() <-chan struct{} { return e.stop }

// connect dials a new session, asking ask about an unknown server.
func (e *engine) connect(ctx context.Context, ask AskTrust) (Session, error) { return e.dial(ctx, ask) }

// queue adds a message typed for salon to the outbox and sends it when
// its turn comes. n numbers it (scripted use: the input line); 0 numbers
// it in typing order.
func (e *engine) queue(n int, salon, text string) *Item {
	var it *Item
	if n > 0 {
		it = e.out.AddLine(n, salon, text)
	} else {
		it = e.out.Add(salon, text)
	}
	e.pump()
	return it
}

// waiting returns the messages not acked yet, oldest first.
func (e *engine) waiting() []*Item { return e.out.Items() }

// idleNow reports whether nothing waits to be sent nor is in flight.
func (e *engine) idleNow() bool { return e.out.Len() == 0 && e.inFlight == nil }

// polling reports whether salon is open and its poller runs.
func (e *engine) polling(salon string) bool { return salon == e.salon && e.pollCancel != nil }

// openNew opens salon, just found readable: it joins the salon list if
// it was not on it, and its last messages are shown.
func (e *engine) openNew(salon string) {
	if canonical(e.salons, salon) == "" {
		e.setSalons(append(e.salons, salon))
	}
	e.opened[salon] = false
	e.open(salon)
}

// seenNow returns, per salon, the newest message id seen.
func (e *engine) seenNow() map[string]int64 { return maps.Clone(e.seen) }

// noteSalons records the server's list of salons: a salon not seen yet
// counts as read up to its newest message.
func (e *engine) noteSalons(infos []lnet.SalonInfo) {
	for _, in := range infos {
		if _, ok := e.seen[in.Name]; !ok {
			e.seen[in.Name] = in.Last
		}
	}
}

// oldestShown is the id of the oldest message of salon shown, or 0.
func (e *engine) oldestShown(salon string) int64 { return e.oldest[salon] }

// shownBack records that messages of salon from id on were shown.
func (e *engine) shownBack(salon string, id int64) {
	if o := e.oldest[salon]; o == 0 || id < o {
		e.oldest[salon] = id
	}
}

// request runs do in the background with the session in use, and the
// function it returns on the loop, so that a front never waits for the
// network. When the connection changed meanwhile, stale runs instead (if
// not nil).
func (e *engine) request(do func(ctx context.Context, s Session) func(), stale func()) {
	sess, ep := e.sess, e.epoch
	go func() {
		show := do(e.ctx, sess)
		e.post(func() {
			switch {
			case ep == e.epoch:
				show()
			case stale != nil:
				stale()
			}
		})
	}()
}
