package chat

import (
	"errors"
	"time"

	"librecord/db"
)

// job is one entry of the group-commit queue: a message to store (nil for
// a marker that only needs its turn) and what to do once it is durable.
type job struct {
	msg  *db.NewMessage
	done func(db.Stored, error) // called on the writer goroutine; must not block
	// window, when not 0, asks for a window of that salon (window.go):
	// a long-poll found none.
	window int64
	// checked: the send's access and credential were found in memory,
	// as of change counter checkedAt (sendKnown). The writer stores it
	// only if its own counter read, made after the job was queued, finds
	// the counter there still; otherwise done gets errRecheck.
	checked   bool
	checkedAt int64
}

// errRecheck: the change counter moved between a send's check in memory
// and the group commit; nothing was stored, the send is checked again.
var errRecheck = errors.New("change counter moved since the check")

var errShutdown = errors.New("chat hub is shutting down")

// submit queues j for the writer. It blocks while the queue is full.
func (h *Hub) submit(j job) error {
	h.subMu.RLock()
	defer h.subMu.RUnlock()
	if h.closed {
		return errShutdown
	}
	h.jobs <- j
	return nil
}

// writer is the single goroutine that stores messages. Whatever queued up
// while the previous transaction was syncing goes into the next one, so
// many concurrent sends share one commit and one fsync (group commit).
func (h *Hub) writer() {
	defer close(h.writerDone)
	batch := make([]job, 0, h.cfg.MaxBatch)
	for j := range h.jobs {
		batch = append(batch[:0], j)
	fill:
		for len(batch) < h.cfg.MaxBatch {
			select {
			case j, ok := <-h.jobs:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		h.commit(batch)
	}
}

// commit stores a batch in one transaction, then answers every job in
// queue order and wakes the fetches parked on the salons concerned.
func (h *Hub) commit(batch []job) {
	// The counter before storing: the windows the commit fills are
	// complete as of it (window.go), and the sends checked in memory are
	// checked at it.
	gen, genErr := h.changes(h.reads.mark())
	var msgs []db.NewMessage
	var salonIDs []int64
	for i, j := range batch {
		if j.checked && (genErr != nil || gen != j.checkedAt) {
			if j.done != nil {
				j.done(db.Stored{}, errRecheck)
			}
			batch[i].msg, batch[i].done = nil, nil
			continue
		}
		if j.msg != nil {
			msgs = append(msgs, *j.msg)
			salonIDs = append(salonIDs, j.msg.SalonID)
		}
		if j.window != 0 {
			salonIDs = append(salonIDs, j.window)
		}
	}
	if genErr == nil {
		h.prepareWindows(gen, salonIDs)
	} else {
		h.dropWindows(-1) // they would miss what this commit stores
	}
	stored, errs := h.insert(msgs)
	if genErr == nil {
		h.fillWindows(gen, msgs, stored, errs)
	}
	k := 0
	salons := map[int64]bool{}
	for _, j := range batch {
		var st db.Stored
		var err error
		if j.msg != nil {
			st, err = stored[k], errs[k]
			k++
			if err == nil && st.Err != nil {
				err = st.Err // this message alone was refused (its salon is gone)
			}
			if err == nil && !st.Duplicate {
				salons[j.msg.SalonID] = true
			}
		}
		if j.done != nil {
			j.done(st, err)
		}
	}
	for id := range salons {
		h.notify(id)
	}
}

// insert stores msgs in one transaction. When that fails for a reason
// other than busy storage, it stores them one by one, so that one message
// the database refuses does not fail the others.
func (h *Hub) insert(msgs []db.NewMessage) ([]db.Stored, []error) {
	errs := make([]error, len(msgs))
	if len(msgs) == 0 {
		return nil, errs
	}
	start := time.Now()
	stored, err := h.store.InsertMessages(h.ctx, msgs)
	h.observer().Committed(len(msgs), time.Since(start), err)
	if err == nil && len(stored) != len(msgs) {
		err = errors.New("storage returned a result per message count that does not match")
	}
	if err == nil {
		return stored, errs
	}
	if errors.Is(err, db.ErrBusy) || len(msgs) == 1 {
		for i := range errs {
			errs[i] = err
		}
		return make([]db.Stored, len(msgs)), errs
	}
	h.log.Warn("group commit failed, storing one by one", "count", len(msgs), "err", err)
	stored = make([]db.Stored, len(msgs))
	for i := range msgs {
		one, err := h.store.InsertMessages(h.ctx, msgs[i:i+1])
		if err == nil && len(one) != 1 {
			err = errors.New("storage returned no result")
		}
		if err != nil {
			errs[i] = err
			continue
		}
		stored[i] = one[0]
	}
	return stored, errs
}
