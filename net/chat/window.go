package chat

import (
	"sort"
	"sync"

	"librecord/db"
	"librecord/net"
)

// A salon's window keeps at most windowSize recent messages and
// windowBytes of their encoded items (a frame's worth under the default
// limits); a fetch after an id older than the window reads the database.
const (
	windowSize  = 256
	windowBytes = 256 << 10
)

// A window holds a salon's most recent messages as the group commit
// stored them: in clear (never decrypted again) and with each item of a
// messages answer encoded once, shared by every receiver. A long-poll
// woken by a commit, and the check for something new before parking, are
// answered from it without a query.
//
// It is complete above floor: every message of the salon with a greater
// id is in it, as of the change counter gen, read by the writer before
// the commits that filled it. serve is the only process that stores
// messages; other processes only delete them (message remove, prune,
// salon remove), and every deletion moves the counter, after which the
// window is not used (and is rebuilt by the salon's next commit).
type window struct {
	gen   int64
	floor int64
	items []windowItem // oldest first, ids above floor; never written in place
	bytes int          // of the items' encodings
}

type windowItem struct {
	id   int64
	item []byte // the message as an item of a messages answer
}

// windows are the hub's windows by salon id; the writer goroutine alone
// changes them.
type windows struct {
	mu    sync.Mutex
	m     map[int64]*window
	asked map[int64]bool // salons whose window is asked of the writer
}

// prepareWindows makes sure each salon of salonIDs has a window at gen,
// before the writer stores a batch: a salon with none, or one of an older
// counter, gets an empty one whose floor is its newest stored message
// (read now: the writer is the only one storing messages). A salon whose
// newest message cannot be read gets none.
func (h *Hub) prepareWindows(gen int64, salonIDs []int64) {
	for _, id := range salonIDs {
		h.windows.mu.Lock()
		w := h.windows.m[id]
		delete(h.windows.asked, id)
		h.windows.mu.Unlock()
		if w != nil && w.gen == gen {
			continue
		}
		latest, _, err := h.store.LatestWithin(h.ctx, id, 1, db.Budget{})
		h.windows.mu.Lock()
		if err != nil {
			delete(h.windows.m, id)
		} else {
			w := &window{gen: gen}
			if len(latest) > 0 {
				w.floor = latest[0].ID
			}
			h.windows.m[id] = w
		}
		h.windows.mu.Unlock()
	}
}

// askWindow asks the writer for a window of the salon, which a fetch
// found none of (no message stored since the server started, or since
// the counter moved): the next long-polls there are then answered from
// it. It never waits: when the writer's queue is full, or a request for
// that salon is queued already, it does nothing.
func (h *Hub) askWindow(salonID int64) {
	h.windows.mu.Lock()
	if h.windows.asked == nil {
		h.windows.asked = map[int64]bool{}
	}
	if h.windows.asked[salonID] {
		h.windows.mu.Unlock()
		return
	}
	h.windows.asked[salonID] = true
	h.windows.mu.Unlock()
	h.subMu.RLock()
	defer h.subMu.RUnlock()
	if h.closed {
		return
	}
	select {
	case h.jobs <- job{window: salonID}:
	default:
		h.windows.mu.Lock()
		delete(h.windows.asked, salonID)
		h.windows.mu.Unlock()
	}
}

// fillWindows adds what a commit stored (at gen) to the salons' windows,
// in id order, before anyone hears of it. msgs[i] was stored as stored[i]
// unless errs[i].
func (h *Hub) fillWindows(gen int64, msgs []db.NewMessage, stored []db.Stored, errs []error) {
	h.windows.mu.Lock()
	defer h.windows.mu.Unlock()
	for i, m := range msgs {
		w := h.windows.m[m.SalonID]
		if w == nil {
			continue
		}
		st := stored[i]
		switch {
		case errs[i] != nil:
			// Not stored: this window still holds every message.
			continue
		case st.Err != nil || st.Duplicate:
			continue
		case w.gen != gen || (len(w.items) > 0 && st.ID <= w.items[len(w.items)-1].id):
			delete(h.windows.m, m.SalonID) // ids only grow; be safe
			continue
		}
		item := encodeItem(db.Message{ID: st.ID, At: st.At, Pseudo: m.Pseudo, Text: m.Text, System: m.System})
		w2 := &window{gen: w.gen, floor: w.floor, bytes: w.bytes + len(item),
			items: append(w.items, windowItem{id: st.ID, item: item})}
		for len(w2.items) > windowSize || (w2.bytes > windowBytes && len(w2.items) > 1) {
			w2.floor = w2.items[0].id
			w2.bytes -= len(w2.items[0].item)
			w2.items = w2.items[1:]
		}
		h.windows.m[m.SalonID] = w2
	}
}

// fromWindow answers a fetch after req.After from the salon's window, if
// the window is of counter gen and complete from there: the first limit
// messages after the cursor, and whether more exist. ok is false when
// the database must answer.
func (h *Hub) fromWindow(gen, salonID int64, req *net.Request, limit int) (items []windowItem, more, ok bool) {
	if !req.HasAfter {
		return nil, false, false
	}
	h.windows.mu.Lock()
	w := h.windows.m[salonID]
	h.windows.mu.Unlock()
	if w == nil || w.gen != gen {
		if h.jobs != nil {
			h.askWindow(salonID)
		}
		return nil, false, false
	}
	if req.After < w.floor {
		return nil, false, false
	}
	i := sort.Search(len(w.items), func(i int) bool { return w.items[i].id > req.After })
	items = w.items[i:]
	if len(items) > limit {
		return items[:limit], true, true
	}
	return items, false, true
}

// dropWindows forgets the windows of another change counter than keep
// (-1: every window).
func (h *Hub) dropWindows(keep int64) {
	h.windows.mu.Lock()
	defer h.windows.mu.Unlock()
	for id, w := range h.windows.m {
		if w.gen != keep {
			delete(h.windows.m, id)
		}
	}
}

// encodeItem writes a message as an item of a messages answer.
func encodeItem(m db.Message) []byte {
	pseudo := m.Pseudo
	if m.System {
		pseudo = ""
	}
	return net.Encode(net.Message{ID: m.ID, At: formatTime(m.At), Pseudo: pseudo, System: m.System, Text: m.Text})
}
