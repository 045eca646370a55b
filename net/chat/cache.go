package chat

import (
	"bytes"
	"strings"
	"sync"

	"librecord/db"
)

// cache keeps, in memory, what the fetch cycle would otherwise ask the
// database before every answer: which salons a user may open, and which
// credential of a user is valid. Everything in it was read at one value
// of the database's change counter (db.DB.Changes), which every change
// that can take access or a login away moves, from this process or any
// other; the hub reads the counter before each answer and the cache is
// emptied when it moved. So access and credentials are still checked at
// answer time (PROTOCOL.md 4), by one point query instead of three.
//
// Only positive answers are kept: a refusal is rare and asks the database
// again, so a peer naming salons it may not open cannot grow the cache.
type cache struct {
	mu     sync.Mutex
	gen    int64 // the counter the entries were read at
	known  bool  // gen has been read once
	access map[accessKey]db.Salon
	valid  map[int64][]byte // user id -> the password identifier found valid
}

type accessKey struct {
	user int64
	name string // lower case: names match ignoring ASCII case
}

func newCache() *cache {
	return &cache{access: map[accessKey]db.Salon{}, valid: map[int64][]byte{}}
}

// observe records the counter just read, emptying the cache if it moved;
// it reports whether it moved.
func (c *cache) observe(gen int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && c.gen == gen {
		return false
	}
	c.gen, c.known = gen, true
	clear(c.access)
	clear(c.valid)
	return true
}

// salon returns the cached salon the user may open, if any, read at gen.
func (c *cache) salon(gen, user int64, name string) (db.Salon, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known || c.gen != gen {
		return db.Salon{}, false
	}
	s, ok := c.access[accessKey{user, strings.ToLower(name)}]
	return s, ok
}

// putSalon keeps a salon the user may open, read from the database after
// the counter read gen; dropped if the counter has moved since.
func (c *cache) putSalon(gen, user int64, name string, s db.Salon) {
	s.Last = 0 // moves with every message: never served from here
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && c.gen == gen {
		c.access[accessKey{user, strings.ToLower(name)}] = s
	}
}

// isValid reports whether cred was found valid at gen.
func (c *cache) isValid(gen int64, cred db.Credential) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.valid[cred.UserID]
	return ok && c.known && c.gen == gen && bytes.Equal(h, cred.Hash)
}

// putValid keeps cred as valid, read from the database after the counter
// read gen; dropped if the counter has moved since.
func (c *cache) putValid(gen int64, cred db.Credential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && c.gen == gen {
		c.valid[cred.UserID] = cred.Hash
	}
}

// current returns the counter the cache was last brought up to, if any.
func (c *cache) current() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.known
}

// allowed reports whether memory holds, at the counter last read (gen),
// cred as valid and the salon name open to its user.
func (c *cache) allowed(cred db.Credential, name string) (gen int64, salon db.Salon, ok bool) {
	gen, ok = c.current()
	if !ok || !c.isValid(gen, cred) {
		return 0, db.Salon{}, false
	}
	salon, ok = c.salon(gen, cred.UserID, name)
	return gen, salon, ok
}

// counterReads shares reads of the change counter between answers. An
// answer may use any read that started after the event it answers (the
// request's arrival, the commit that woke a long-poll, the end of its
// wait), never one that started before: what it sees is then at least as
// new as a read of its own would be. The events are marks: the number of
// reads started when the event happened. A commit wakes every long-poll
// of its salon at once, and their answers, prepared over a few
// milliseconds as their peers read, share one read.
type counterReads struct {
	mu      sync.Mutex
	started uint64       // reads started so far; a mark
	cur     *counterRead // the read running, if any
	next    *counterRead // the read the next callers share; not started
	last    *counterRead // the newest read that succeeded
}

type counterRead struct {
	seq  uint64 // started as the seq-th read
	done chan struct{}
	n    int64
	err  error
}

// mark returns a mark for an event happening now: reads whose seq is
// greater started after it.
func (c *counterReads) mark() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// readChanges reads the change counter with a read that starts after
// mark, sharing one that did or does already.
func (h *Hub) readChanges(mark uint64) (int64, error) {
	c := &h.reads
	c.mu.Lock()
	if r := c.last; r != nil && r.seq > mark {
		c.mu.Unlock()
		return r.n, nil
	}
	r := c.cur
	if r == nil || r.seq <= mark {
		if c.next == nil {
			c.next = &counterRead{done: make(chan struct{})}
		}
		r = c.next
		if c.cur == nil {
			c.start(r)
			c.mu.Unlock()
			h.runReads(r)
			return r.n, r.err
		}
	}
	c.mu.Unlock()
	<-r.done
	return r.n, r.err
}

// start makes r the running read (c.mu held).
func (c *counterReads) start(r *counterRead) {
	c.started++
	r.seq = c.started
	c.cur = r
	if c.next == r {
		c.next = nil
	}
}

// runReads runs r, then has the read that callers joined meanwhile run in
// a goroutine of its own (the caller of r goes on with its answer).
func (h *Hub) runReads(r *counterRead) {
	r.n, r.err = h.store.Changes(h.ctx)
	c := &h.reads
	c.mu.Lock()
	c.cur = nil
	if r.err == nil {
		c.last = r
	}
	next := c.next
	if next != nil {
		c.start(next)
	}
	c.mu.Unlock()
	close(r.done)
	if next != nil {
		h.Go(func() { h.runReads(next) })
	}
}

// changes reads the database's change counter with a read that started
// after mark, and brings the cache up to date with it; the answer being
// prepared checks access and credentials at the value returned.
func (h *Hub) changes(mark uint64) (int64, error) {
	gen, err := h.readChanges(mark)
	if err != nil {
		return 0, err
	}
	if h.cache.observe(gen) {
		h.dropWindows(gen) // of an older counter: unused, and rebuilt by commits
	}
	return gen, nil
}
