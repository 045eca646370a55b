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

// counterReads shares reads of the change counter between the answers
// prepared at the same moment (a commit wakes every long-poll of its
// salon at once): an answer waits for a read that starts after it asked,
// never for one already running, so what it sees is at least as new as a
// read of its own would be.
type counterReads struct {
	mu      sync.Mutex
	running bool
	next    *counterRead // the read the next callers share; not started
}

type counterRead struct {
	done chan struct{}
	n    int64
	err  error
}

// readChanges reads the change counter, sharing the read with the
// callers that ask while another read runs.
func (h *Hub) readChanges() (int64, error) {
	c := &h.reads
	c.mu.Lock()
	if c.next == nil {
		c.next = &counterRead{done: make(chan struct{})}
	}
	r := c.next
	lead := !c.running
	if lead {
		c.running, c.next = true, nil
	}
	c.mu.Unlock()
	if lead {
		h.runReads(r)
	}
	<-r.done
	return r.n, r.err
}

// runReads runs r, then has the read that callers joined meanwhile run in
// a goroutine of its own (the caller of r goes on with its answer).
func (h *Hub) runReads(r *counterRead) {
	r.n, r.err = h.store.Changes(h.ctx)
	close(r.done)
	c := &h.reads
	c.mu.Lock()
	next := c.next
	c.next = nil
	c.running = next != nil
	c.mu.Unlock()
	if next != nil {
		go h.runReads(next)
	}
}

// changes reads the database's change counter and brings the cache up to
// date with it; the answer being prepared checks access and credentials
// at the value returned.
func (h *Hub) changes() (int64, error) {
	gen, err := h.readChanges()
	if err != nil {
		return 0, err
	}
	if h.cache.observe(gen) {
		h.dropWindows(gen) // of an older counter: unused, and rebuilt by commits
	}
	return gen, nil
}
