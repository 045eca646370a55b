package repl

import (
	"context"
	"fmt"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
)

// Sizes of the fetches, and the protocol's bound on a long poll.
const (
	initialMessages = 10 // shown when a salon opens
	fetchLimit      = 50 // per fetch of what is new
	// maxWait is the longest wait_ms a server accepts (PROTOCOL.md 3.3).
	maxWait = 25 * time.Second
)

// poll is the fetch cadence: the configured one, else the server's.
func (e *engine) poll() time.Duration {
	switch {
	case e.cfg.Poll > 0:
		return e.cfg.Poll
	case e.info.Poll > 0:
		return e.info.Poll
	}
	return client.DefaultPoll
}

// wait is the long-poll wait: the cadence minus Config.PollMargin,
// so that a fetch still goes out at least every poll (PROTOCOL.md 5).
func (e *engine) wait() time.Duration {
	w := e.poll() - e.cfg.PollMargin
	if w > maxWait {
		w = maxWait
	}
	if w < 0 {
		w = 0
	}
	return w
}

// baseline records, for salons not seen yet, their newest message id, so
// that /salons counts what arrived since login.
func (e *engine) baseline() {
	sess, ep := e.sess, e.epoch
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, e.cfg.RequestTimeout)
		defer cancel()
		infos, err := sess.Salons(ctx)
		if err != nil {
			return
		}
		e.post(func() {
			if ep != e.epoch {
				return
			}
			e.noteSalons(infos)
		})
	}()
}

// open makes salon the open one and (re)starts the poller on it.
func (e *engine) open(salon string) {
	e.flushHeld()
	if salon != e.salon && e.salon != "" {
		e.prev = e.salon
	}
	e.salon = salon
	e.startPoller()
}

// stopPoller stops the goroutine that long-polls the open salon, if any.
func (e *engine) stopPoller() {
	if e.pollCancel != nil {
		e.pollCancel()
		e.pollCancel = nil
	}
}

// startPoller (re)starts the goroutine that long-polls the open salon.
func (e *engine) startPoller() {
	e.stopPoller()
	if e.state != stOnline || e.unsynced || e.salon == "" {
		return
	}
	ctx, cancel := context.WithCancel(e.ctx)
	e.pollCancel = cancel
	sess, salon, ep := e.sess, e.salon, e.epoch
	initial := !e.opened[salon]
	after := e.seen[salon]
	wait, poll, limit := e.wait(), e.poll(), fetchLimit
	go func() {
		for {
			req := client.FetchRequest{Salon: salon, Limit: limit, After: after, HasAfter: true, Wait: wait}
			if initial {
				// First look at the salon: its latest messages.
				req = client.FetchRequest{Salon: salon, Limit: initialMessages}
			}
			start := time.Now()
			res, err := sess.Fetch(ctx, req)
			if ctx.Err() != nil {
				return
			}
			first := initial
			e.post(func() { e.onFetched(ep, sess, salon, first, res, err) })
			if err != nil {
				return
			}
			initial = false
			if n := len(res.Messages); n > 0 {
				after = res.Messages[n-1].ID
				continue // what is new shows at once: park again
			}
			if req.Wait > 0 && time.Since(start) >= req.Wait/2 {
				continue // the wait served as the cadence
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(poll - time.Since(start)):
			}
		}
	}()
}

func (e *engine) onFetched(ep int, sess Session, salon string, initial bool, res client.Messages, err error) {
	if e.revoked(sess, err) {
		return
	}
	if ep != e.epoch || salon != e.salon || e.done {
		return
	}
	if client.IsCode(err, lnet.CodeForbidden) {
		e.salonLost(salon)
		return
	}
	if err != nil {
		e.requestFailed(err, func(err error) {
			e.front.notice(fmt.Sprintf("cannot read salon %s: %v", salon, err))
			e.stopPoller()
		})
		return
	}
	msgs := res.Messages
	if n := len(msgs); n > 0 {
		if msgs[n-1].ID > e.seen[salon] {
			e.seen[salon] = msgs[n-1].ID
			e.anchor[salon] = msgs[n-1]
		}
		e.shownBack(salon, msgs[0].ID)
	}
	if initial {
		e.opened[salon] = true
		if !e.showInitial {
			return
		}
		if len(msgs) == 0 {
			e.front.notice(salon + " has no messages yet")
		}
	}
	for _, m := range msgs {
		e.held = append(e.held, fetched{m, initial})
	}
	e.heldFor = salon
	e.drain()
}

// fetched is a message fetched and not shown yet; backlog: from the first
// page of a salon just opened.
type fetched struct {
	lnet.Message
	backlog bool
}

// drain shows the held messages in order. A message by our own pseudo
// while a send is in flight waits for that send's answer, so that it can be
// recognised as the message we sent (scripted use does not echo it; the
// terminal turns the pending line into it).
func (e *engine) drain() {
	for len(e.held) > 0 {
		h := e.held[0]
		own := e.acked[h.ID]
		if own == nil && e.inFlight != nil && !h.System && h.Pseudo == e.info.Pseudo {
			return
		}
		e.held = e.held[1:]
		delete(e.acked, h.ID)
		e.front.message(e.heldFor, h.Message, own, h.backlog)
	}
}

// flushHeld shows whatever is held, undecided or not.
func (e *engine) flushHeld() {
	for _, h := range e.held {
		own := e.acked[h.ID]
		delete(e.acked, h.ID)
		e.front.message(e.heldFor, h.Message, own, h.backlog)
	}
	e.held = nil
}
