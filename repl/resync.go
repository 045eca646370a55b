package repl

import (
	"context"
	"fmt"
	"maps"
	"sort"

	lnet "librecord/net"
	"librecord/net/client"
)

// rewound is a salon whose history went back, and where to read it from.
type rewound struct {
	salon string
	after int64         // the new cursor
	at    *lnet.Message // the message at after, when known
	shown bool          // messages of it were shown: say so
}

// resync compares the cursors with the server's history after a new login,
// then sends and polls. A host who restored a backup sent the server's
// history back: its newest message in a salon may be older than the one
// seen, and new messages reuse ids already seen, so a cursor kept as it was
// would skip them.
func (e *engine) resync() {
	sess, ep := e.sess, e.epoch
	seen, anchors, limit := maps.Clone(e.seen), maps.Clone(e.anchor), fetchLimit
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, e.cfg.RequestTimeout)
		defer cancel()
		infos, rw, err := checkHistory(ctx, sess, seen, anchors, limit)
		e.post(func() { e.onResynced(ep, sess, infos, rw, err) })
	}()
}

// checkHistory asks the server, for each salon with a cursor, whether its
// history went back: its newest id is below the cursor, or the message at
// the cursor is not the one seen there. The new cursor of such a salon is
// its newest message stored no later than the one seen last (ids are not
// to be trusted across a restore, the server's clock is), within the
// latest page of limit messages.
func checkHistory(ctx context.Context, sess Session, seen map[string]int64, anchors map[string]lnet.Message,
	limit int) ([]lnet.SalonInfo, []rewound, error) {
	infos, err := sess.Salons(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []rewound
	for _, in := range infos {
		cur := seen[in.Name]
		if cur == 0 {
			continue // no cursor, or an empty salon: every id is new
		}
		a, anchored := anchors[in.Name]
		anchored = anchored && a.ID == cur
		back := in.Last < cur
		if !back && anchored {
			res, err := sess.Fetch(ctx, client.FetchRequest{Salon: in.Name, Before: cur + 1, Limit: 1})
			if client.IsCode(err, lnet.CodeForbidden) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			n := len(res.Messages)
			back = n == 0 || res.Messages[n-1] != a
		}
		if !back {
			continue
		}
		r := rewound{salon: in.Name, after: in.Last}
		if anchored {
			res, err := sess.Fetch(ctx, client.FetchRequest{Salon: in.Name, Limit: limit})
			if client.IsCode(err, lnet.CodeForbidden) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			r.shown, r.after = true, 0
			if res.More && len(res.Messages) > 0 {
				r.after = res.Messages[0].ID - 1
			}
			for i := len(res.Messages) - 1; i >= 0; i-- {
				if m := res.Messages[i]; !storedAfter(m, a) {
					r.after, r.at = m.ID, &m
					break
				}
			}
		}
		out = append(out, r)
	}
	return infos, out, nil
}

// storedAfter reports whether the server stored m after a, by its clock.
func storedAfter(m, a lnet.Message) bool {
	tm, ta := parseAt(m.At), parseAt(a.At)
	if tm.IsZero() || ta.IsZero() {
		return m.At > a.At
	}
	return tm.After(ta)
}

func (e *engine) onResynced(ep int, sess Session, infos []lnet.SalonInfo, rw []rewound, err error) {
	if e.revoked(sess, err) || ep != e.epoch || e.done {
		return
	}
	if err != nil {
		lost := true
		e.requestFailed(err, func(err error) {
			lost = false
			e.front.notice(fmt.Sprintf("could not compare with the server's history (%v): "+
				"messages may be missing if the host restored a backup", err))
		})
		if lost {
			return // resuming compares again
		}
	}
	for _, r := range rw {
		if r.salon == e.heldFor {
			// Fetched before the restore: show them as they were, with
			// the acks of then.
			e.flushHeld()
		}
	}
	e.requeueAcked()
	for _, r := range rw {
		e.seen[r.salon] = r.after
		delete(e.anchor, r.salon)
		if r.at != nil {
			e.anchor[r.salon] = *r.at
		}
		if o := e.oldest[r.salon]; o > r.after+1 {
			e.oldest[r.salon] = r.after + 1
		}
		if r.shown {
			e.front.notice(fmt.Sprintf("the server's history of %s went back (restored from a backup?): "+
				"showing from message %d", r.salon, r.after+1))
		}
	}
	e.noteSalons(infos)
	e.unsynced = false
	e.pump()
	e.startPoller()
}

// requeueAcked puts the lines of the open salon that were acked but not
// shown yet back at the head of the outbox. Their ack ids came from before
// the new login: after a restore they may name someone else's message.
// Sent again with the same cid, each gets the server's answer of now: the
// same id if the message is still stored, else it is stored again. Acks of
// other salons are dropped: nothing shows them any more.
func (e *engine) requeueAcked() {
	var items []*Item
	for id, it := range e.acked {
		delete(e.acked, id)
		if it.Salon == e.salon {
			items = append(items, it)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Line < items[j].Line })
	e.out.Requeue(items)
}
