package chat

import (
	"math"
	"strconv"
	"strings"
	"time"

	"librecord/db"
	"librecord/net"
)

// fetch answers a fetch (PROTOCOL.md 3.3): read the messages around the
// cursor from the indexes, and when a long-poll finds nothing new, park
// until the salon gets a message, the wait ends or the connection closes.
func (h *Hub) fetch(s *Session, cred db.Credential, gen int64, req *net.Request, reply Reply) {
	limit := req.Limit
	if limit == 0 {
		limit = net.DefaultFetchLimit
	}
	if limit < 1 || limit > h.cfg.MaxFetch {
		reply.Send(net.ErrorBody(req.ID, net.CodeBadRequest, "limit must be 1 to "+strconv.Itoa(h.cfg.MaxFetch)))
		return
	}
	salon, e := h.access(gen, cred.UserID, req.Salon, req.ID)
	if e != nil {
		reply.Send(e.Body())
		return
	}
	if !req.HasAfter || req.WaitMS == 0 {
		p, err := h.query(gen, salon, req, limit)
		h.answer(s, salon, req, p, err, reply)
		return
	}
	// Watch before reading, so that a message stored in between wakes us.
	p := &parked{s: s, cred: cred, req: req, limit: limit, reply: reply, salonID: salon.ID}
	h.parking.watch(p)
	pg, err := h.query(gen, salon, req, limit)
	if err != nil || pg.len() > 0 {
		h.parking.mu.Lock()
		h.parking.remove(p)
		h.parking.mu.Unlock()
		h.answer(s, salon, req, pg, err, reply)
		return
	}
	h.park(p)
}

// parkKnown parks a long-poll without reading the change counter, when
// what the last read left in memory says it would park: the user may open
// the salon, the credential is valid, and the salon's window has nothing
// after the cursor. Parking is not answering: whatever wakes the fetch
// reads the counter before it answers (answerParked), so access and the
// credential are still checked at answer time (PROTOCOL.md 4), and a
// fetch that memory would answer, or cannot decide, takes the reading
// path. It reports whether it parked the fetch.
func (h *Hub) parkKnown(s *Session, cred db.Credential, req *net.Request, reply Reply) bool {
	limit := req.Limit
	if limit == 0 {
		limit = net.DefaultFetchLimit
	}
	if !req.HasAfter || req.WaitMS <= 0 || limit < 1 || limit > h.cfg.MaxFetch || !net.ValidName(req.Salon) {
		return false
	}
	gen, salon, ok := h.cache.allowed(cred, req.Salon)
	if !ok {
		return false
	}
	// Watch before reading, so that a message stored in between wakes us.
	p := &parked{s: s, cred: cred, req: req, limit: limit, reply: reply, salonID: salon.ID}
	h.parking.watch(p)
	if items, _, ok := h.fromWindow(gen, salon.ID, req, limit); !ok || len(items) > 0 {
		h.parking.mu.Lock()
		h.parking.remove(p)
		h.parking.mu.Unlock()
		return false
	}
	h.park(p)
	return true
}

// answerParked answers a parked fetch when it wakes, with a read of the
// change counter that started after mark, the event that woke it. Access is checked
// again, before the credential: a user who lost access to the salon
// (revoked or removed) gets forbidden and no message (PROTOCOL.md 4); one
// whose password changed gets auth and the session ends. With onlyNew it
// answers only if there are messages (or an error) and reports whether it
// did.
func (h *Hub) answerParked(s *Session, cred db.Credential, req *net.Request, limit int, reply Reply, onlyNew bool, mark uint64) bool {
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended {
		reply.Drop()
		return true
	}
	gen, err := h.changes(mark)
	if err != nil {
		reply.Send(h.storeError(req.ID, err, "check access").Body())
		return true
	}
	salon, e := h.access(gen, cred.UserID, req.Salon, req.ID)
	if e != nil {
		reply.Send(e.Body())
		return true
	}
	if !h.checkValid(s, gen, req.ID, reply) {
		return true
	}
	p, err := h.query(gen, salon, req, limit)
	if err == nil && p.len() == 0 && onlyNew {
		return false
	}
	h.answer(s, salon, req, p, err, reply)
	return true
}

// page is what a fetch answers: messages read from the database, or items
// of the salon's window (encoded already), and whether more exist.
type page struct {
	msgs  []db.Message
	items []windowItem
	more  bool
}

func (p page) len() int { return len(p.msgs) + len(p.items) }

// query reads the messages around the request's cursor: at most limit,
// and little more than one answer holds (messagesBody still trims to the
// frame); from the salon's window when it holds them as of the change
// counter gen.
func (h *Hub) query(gen int64, salon db.Salon, req *net.Request, limit int) (page, error) {
	defer func(start time.Time) { h.observer().FetchRead(time.Since(start)) }(time.Now())
	if items, more, ok := h.fromWindow(gen, salon.ID, req, limit); ok {
		return page{items: items, more: more}, nil
	}
	// Every item costs messagesBody at least minItem plus its text (JSON
	// escaping only adds), so once the count passes the room left by the
	// answer's fixed parts, the messages read cannot all go out.
	b := db.Budget{Bytes: max(h.itemsRoom(req, salon.Name), 1), PerMessage: minItem}
	var p page
	var err error
	switch {
	case req.HasAfter:
		p.msgs, p.more, err = h.store.AfterWithin(h.ctx, salon.ID, req.After, limit, b)
	case req.HasBefore:
		p.msgs, p.more, err = h.store.BeforeWithin(h.ctx, salon.ID, req.Before, limit, b)
	default:
		p.msgs, p.more, err = h.store.LatestWithin(h.ctx, salon.ID, limit, b)
	}
	return p, err
}

// minItem is the size of the shortest message item: one-digit id, no
// pseudo, no text, not system.
var minItem = len(net.Encode(net.Message{ID: 1, At: net.TimeFormat}))

// itemsRoom is how many bytes a messages answer to req has for its items
// and the commas between them.
func (h *Hub) itemsRoom(req *net.Request, salon string) int {
	return h.cfg.MaxBody - net.MessagesOverhead(req.ID, salon)
}

// answer sends a fetch's messages, or the storage error that prevented
// reading them.
func (h *Hub) answer(s *Session, salon db.Salon, req *net.Request, p page, err error, reply Reply) {
	if err != nil {
		reply.Send(h.storeError(req.ID, err, "fetch").Body())
		return
	}
	s.setLastSalon(salon.ID)
	reply.Send(h.pageBody(req, salon.Name, p))
}

// pageBody writes the messages answer of p (messagesBody).
func (h *Hub) pageBody(req *net.Request, salon string, p page) []byte {
	items := p.items
	if p.msgs != nil {
		items = make([]windowItem, len(p.msgs))
		for i, m := range p.msgs {
			items[i] = windowItem{id: m.ID, item: encodeItem(m)}
		}
	}
	return h.messagesBody(req, salon, items, p.more)
}

// messagesBody writes a messages answer that fits in one frame: when the
// messages would not fit, it keeps those nearest the cursor (the oldest
// after "after", the newest otherwise) and sets more.
func (h *Hub) messagesBody(req *net.Request, salon string, msgs []windowItem, more bool) []byte {
	items := make([][]byte, len(msgs))
	for i, m := range msgs {
		items[i] = m.item
	}
	room := h.itemsRoom(req, salon)
	size := 0 // of the items kept and their commas
	keep := 0 // how many items fit, counted from the cursor
	for keep < len(items) {
		i := keep
		if !req.HasAfter {
			i = len(items) - 1 - keep
		}
		add := len(items[i])
		if keep > 0 {
			add++ // comma
		}
		if size+add > room && keep > 0 {
			break
		}
		if size+add > room {
			// Only a message stored under larger limits gets here; it
			// goes out alone rather than never.
			h.log.Warn("stored message larger than the frame limit", "msg", msgs[i].id)
		}
		size += add
		keep++
	}
	if keep < len(items) {
		more = true
		if req.HasAfter {
			items = items[:keep]
		} else {
			items = items[len(items)-keep:]
		}
	}
	h.observer().Delivered(len(items))
	return net.AppendMessages(nil, req.ID, salon, more, items)
}

// LargestBodies returns the size of the largest send request and of the
// largest messages answer carrying one message, for texts of at most
// maxMessage bytes. Text is counted as a JSON encoder without HTML
// escaping writes it at worst: two bytes for one ('"' as \", or U+2028,
// three bytes, as \u2028); allowed control characters (newline, tab) also
// take two. Ids are the largest int64, names the longest allowed.
func LargestBodies(maxMessage int) (send, answer int) {
	const maxID = math.MaxInt64
	longName := strings.Repeat("x", net.MaxNameLength)
	text := strings.Repeat(`"`, maxMessage)
	send = len((&net.Request{Op: net.OpSend, ID: maxID, Salon: longName, Text: text, Cid: strings.Repeat(`"`, net.MaxCidLength)}).Encode())
	item := net.Encode(net.Message{ID: maxID, At: net.TimeFormat, Pseudo: longName, System: true, Text: text})
	answer = net.MessagesOverhead(maxID, longName) + len(item)
	return send, answer
}
