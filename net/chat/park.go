package chat

import (
	"container/heap"
	"sync"
	"time"

	"librecord/db"
	"librecord/net"
)

// A parked fetch is state, not a goroutine: it is recorded on its salon's
// waiters and in the hub's deadline heap, and whoever wakes it (the group
// commit's notify, the hub's one timer goroutine, the session's parked
// bound, Shutdown) has a goroutine of the hub's pool answer it. A
// connection that closes drops its parked fetches without an answer.

// parked is one long-poll fetch waiting for a message (PROTOCOL.md 3.3).
type parked struct {
	s       *Session
	cred    db.Credential
	req     *net.Request
	limit   int
	reply   Reply
	salonID int64

	deadline time.Time
	index    int // in parking.heap; -1 when not there

	// Guarded by parking.mu.
	done    bool // answered or dropped; off every list
	busy    bool // a goroutine is reading (and maybe answering) it
	again   bool // the salon got a message while busy: read again
	final   bool // answer even with no message (deadline, early, shutdown)
	dropped bool // the connection closed
	stop    func() bool
}

// parking holds the parked fetches of a hub.
type parking struct {
	mu      sync.Mutex
	salons  map[int64]map[*parked]struct{} // waiters per salon, the busy included
	heap    parkHeap                       // parked fetches by deadline
	wake    chan struct{}                  // the earliest deadline moved
	stopped bool
}

type parkHeap []*parked

func (q parkHeap) Len() int           { return len(q) }
func (q parkHeap) Less(i, j int) bool { return q[i].deadline.Before(q[j].deadline) }
func (q parkHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}
func (q *parkHeap) Push(x any) {
	p := x.(*parked)
	p.index = len(*q)
	*q = append(*q, p)
}
func (q *parkHeap) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	p.index = -1
	return p
}

func newParking() *parking {
	return &parking{salons: map[int64]map[*parked]struct{}{}, wake: make(chan struct{}, 1)}
}

// watch records p on its salon's waiters, busy: a message stored from now
// on makes it read again.
func (k *parking) watch(p *parked) {
	p.index = -1
	p.busy = true
	k.mu.Lock()
	set := k.salons[p.salonID]
	if set == nil {
		set = map[*parked]struct{}{}
		k.salons[p.salonID] = set
	}
	set[p] = struct{}{}
	k.mu.Unlock()
}

// remove takes p off every list (k.mu held).
func (k *parking) remove(p *parked) {
	p.done = true
	if set := k.salons[p.salonID]; set != nil {
		delete(set, p)
		if len(set) == 0 {
			delete(k.salons, p.salonID)
		}
	}
	if p.index >= 0 {
		heap.Remove(&k.heap, p.index)
	}
}

// notify wakes the fetches parked on the salon (after a commit).
func (h *Hub) notify(salonID int64) {
	k := h.parking
	k.mu.Lock()
	var start []*parked
	for p := range k.salons[salonID] {
		if p.busy {
			p.again = true
			continue
		}
		p.busy = true
		start = append(start, p)
	}
	k.mu.Unlock()
	mark := h.reads.mark() // after the commit: its answers share a read
	for _, p := range start {
		h.Go(func() { h.runParked(p, true, mark) })
	}
}

// fire makes p answer now, with or without messages (deadline, early,
// shutdown).
func (h *Hub) fire(p *parked) {
	k := h.parking
	k.mu.Lock()
	if p.done {
		k.mu.Unlock()
		return
	}
	if p.index >= 0 {
		heap.Remove(&k.heap, p.index)
	}
	p.final = true
	if p.busy {
		k.mu.Unlock()
		return
	}
	p.busy = true
	k.mu.Unlock()
	mark := h.reads.mark()
	h.Go(func() { h.runParked(p, false, mark) })
}

// park records p, which found nothing to answer, until it is woken; its
// session's clock stops meanwhile.
func (h *Hub) park(p *parked) {
	k := h.parking
	h.bg.Add(1)
	early := p.s.park(p, h.cfg.MaxParked)
	p.deadline = time.Now().Add(time.Duration(p.req.WaitMS) * time.Millisecond)
	k.mu.Lock()
	heap.Push(&k.heap, p)
	first := p.index == 0
	if k.stopped && !p.final {
		heap.Remove(&k.heap, p.index)
		p.final = true
	}
	k.mu.Unlock()
	if first {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
	stop := p.reply.AfterClose(func() { h.dropParked(p) })
	k.mu.Lock()
	p.stop = stop
	run, onlyNew := false, true
	switch {
	case p.dropped:
		// The connection closed while parking: dropParked saw it busy.
		k.remove(p)
		k.mu.Unlock()
		h.unparked(p, true)
		if early != nil {
			h.fire(early)
		}
		return
	case p.final: // the wait ended, pushed out or shutting down
		run, onlyNew = true, false
	case p.again:
		p.again = false
		run = true
	default:
		p.busy = false
	}
	k.mu.Unlock()
	if run {
		mark := h.reads.mark()
		h.Go(func() { h.runParked(p, onlyNew, mark) })
	}
	if early != nil {
		h.fire(early)
	}
}

// dropParked drops a parked fetch whose connection closed.
func (h *Hub) dropParked(p *parked) {
	k := h.parking
	k.mu.Lock()
	if p.done {
		k.mu.Unlock()
		return
	}
	p.dropped = true
	if p.busy {
		k.mu.Unlock() // the goroutine reading it drops it
		return
	}
	k.remove(p)
	k.mu.Unlock()
	h.unparked(p, true)
}

// unparked ends p's parking, once it is off every list: no answer came
// when drop.
func (h *Hub) unparked(p *parked, drop bool) {
	if p.stop != nil {
		p.stop()
	}
	if drop {
		p.reply.Drop()
	}
	p.s.unpark(p)
	h.bg.Done()
}

// runParked reads for a woken parked fetch and answers it; with onlyNew,
// only if there are messages, else it waits again. mark is the event that
// woke it (counterReads).
func (h *Hub) runParked(p *parked, onlyNew bool, mark uint64) {
	k := h.parking
	for {
		answered := h.answerWoken(p, onlyNew, mark)
		k.mu.Lock()
		switch {
		case answered || p.dropped:
			k.remove(p)
			k.mu.Unlock()
			h.unparked(p, !answered)
			return
		case p.final:
			onlyNew = false
			mark = h.reads.mark()
		case p.again:
			p.again = false
			mark = h.reads.mark()
		default:
			p.busy = false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
	}
}

// answerWoken answers p one at a time with the connection's other woken
// fetches, as the peer reads; it reports whether p is done (answered, or
// dropped with its connection).
func (h *Hub) answerWoken(p *parked, onlyNew bool, mark uint64) bool {
	release := p.reply.Room()
	if release == nil {
		p.reply.Drop()
		return true
	}
	defer release()
	return h.answerParked(p.s, p.cred, p.req, p.limit, p.reply, onlyNew, mark)
}

// timers fires the parked fetches whose wait ended: one goroutine for
// the hub.
func (h *Hub) timers() {
	k := h.parking
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		k.mu.Lock()
		var due []*parked
		now := time.Now()
		for len(k.heap) > 0 && !k.heap[0].deadline.After(now) {
			due = append(due, k.heap[0])
			heap.Pop(&k.heap)
		}
		next := time.Hour
		if len(k.heap) > 0 {
			next = k.heap[0].deadline.Sub(now)
		}
		k.mu.Unlock()
		for _, p := range due {
			h.fire(p)
		}
		t.Reset(next)
		select {
		case <-t.C:
		case <-k.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-h.stopping:
			return
		}
	}
}

// stopParking answers every parked fetch (Shutdown); those parked later
// answer at once.
func (h *Hub) stopParking() {
	k := h.parking
	k.mu.Lock()
	k.stopped = true
	all := append([]*parked(nil), k.heap...)
	k.mu.Unlock()
	for _, p := range all {
		h.fire(p)
	}
}
