package chat

import (
	"sync"
	"time"

	"librecord/net"
)

// bucket is a token bucket: rate tokens a second, at most burst saved up.
// A rate of 0 turns it off. Not safe for concurrent use (Session.mu guards it).
type bucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take spends one token if there is one.
func (b *bucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket would be full at now: it has been idle
// long enough to hold nothing worth remembering.
func (b *bucket) full(now time.Time) bool {
	if b.rate <= 0 || b.last.IsZero() {
		return true
	}
	return b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
}

// refund gives back a token spent on a send that stored nothing.
func (b *bucket) refund() {
	if b.rate > 0 {
		b.tokens = min(b.tokens+1, b.burst)
	}
}

// maxTracked bounds every per-source table of the chat rules (failed
// logins, log lines): past it, entries that no longer hold anything are
// swept, and if that is not enough the stalest entry is dropped, so that
// no number of sources can grow them.
const maxTracked = 16384

// loginLimiter counts failed logins per source over a sliding window
// (PROTOCOL.md 3.1 and 4): per IPv4 address or IPv6 /64 (limit), and
// also per IPv6 /48 (blockLimit), so that rotating addresses inside a
// network buys no guesses. Attempts in progress count as possible
// failures: an attempt that could exceed a limit if they all failed waits
// for them to finish, so parallel connections from one source get no more
// than limit guesses per window, while honest parallel logins (a
// household behind one address, everyone reconnecting after a restart)
// are only delayed.
type loginLimiter struct {
	mu         sync.Mutex
	changed    *sync.Cond // an attempt ended
	limit      int
	blockLimit int
	window     time.Duration
	failures   map[net.Source][]time.Time // sources and /48 blocks alike
	inflight   map[net.Source]int
}

func newLoginLimiter(limit, blockLimit int, window time.Duration) *loginLimiter {
	l := &loginLimiter{limit: limit, blockLimit: blockLimit, window: window,
		failures: map[net.Source][]time.Time{}, inflight: map[net.Source]int{}}
	l.changed = sync.NewCond(&l.mu)
	return l
}

// counted is one table key an attempt counts in, with its budget.
type counted struct {
	key   net.Source
	limit int
}

// keys returns where an attempt from src counts: its source and, for
// IPv6, its /48; a zero limit counts nowhere.
func (l *loginLimiter) keys(src net.Source) []counted {
	ks := make([]counted, 0, 2)
	if l.limit > 0 {
		ks = append(ks, counted{src, l.limit})
	}
	if block, ok := src.Block(); ok && l.blockLimit > 0 {
		ks = append(ks, counted{block, l.blockLimit})
	}
	return ks
}

// begin reports whether src may try a password now; if so, end must
// follow. It may wait for attempts of the same source in progress. clean
// says src (and its block) had no failure in the window.
func (l *loginLimiter) begin(src net.Source, now func() time.Time) (ok, clean bool) {
	ks := l.keys(src)
	if len(ks) == 0 {
		return true, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		t := now()
		room, clean := true, true
		for _, k := range ks {
			recent := len(l.prune(k.key, t))
			if recent >= k.limit {
				return false, false
			}
			if recent+l.inflight[k.key] >= k.limit {
				room = false
			}
			clean = clean && recent == 0
		}
		if room {
			for _, k := range ks {
				l.inflight[k.key]++
			}
			return true, clean
		}
		l.changed.Wait()
	}
}

// end records the outcome of an attempt begin allowed.
func (l *loginLimiter) end(src net.Source, failed bool, now time.Time) {
	ks := l.keys(src)
	if len(ks) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range ks {
		if l.inflight[k.key]--; l.inflight[k.key] <= 0 {
			delete(l.inflight, k.key)
		}
		if failed {
			f := l.prune(k.key, now)
			if f == nil {
				l.makeRoom(now)
			}
			l.failures[k.key] = append(f, now)
		}
	}
	l.changed.Broadcast()
}

// prune drops failures older than the window and returns the rest.
func (l *loginLimiter) prune(key net.Source, now time.Time) []time.Time {
	f := l.failures[key]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.failures, key)
		return nil
	}
	l.failures[key] = f
	return f
}

// makeRoom keeps the table under maxTracked before a new key goes in:
// it sweeps out what left the window and, if the table is still full,
// drops the key whose last failure is oldest.
func (l *loginLimiter) makeRoom(now time.Time) {
	if len(l.failures) < maxTracked {
		return
	}
	for key := range l.failures {
		l.prune(key, now)
	}
	for len(l.failures) >= maxTracked {
		var stalest net.Source
		var at time.Time
		first := true
		for key, f := range l.failures {
			if last := f[len(f)-1]; first || last.Before(at) {
				stalest, at, first = key, last, false
			}
		}
		delete(l.failures, stalest)
	}
}

// tracked is how many keys the table holds (tests).
func (l *loginLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failures)
}

// hashGate admits password checks (one Argon2id hash each) a few at a
// time, first those from sources with no failed login in the window, in
// arrival order: a flood of guesses, which fail, queues behind the first
// attempt of any source, so a user's login waits for a few hashes rather
// than for the whole flood. It sits in front of the store's own bound on
// concurrent hashes and admits as many at once.
type hashGate struct {
	mu      sync.Mutex
	free    int
	waiting [2][]chan struct{} // clean sources first, then the others; FIFO each
}

func newHashGate(n int) *hashGate { return &hashGate{free: n} }

// acquire waits for a slot; clean says the attempt's source has no
// recent failure. It returns false if done closed first.
func (g *hashGate) acquire(clean bool, done <-chan struct{}) bool {
	class := 1
	if clean {
		class = 0
	}
	g.mu.Lock()
	if g.free > 0 && len(g.waiting[0]) == 0 && (class == 0 || len(g.waiting[1]) == 0) {
		g.free--
		g.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	g.waiting[class] = append(g.waiting[class], ch)
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-done:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	q := g.waiting[class]
	for i, w := range q {
		if w == ch {
			g.waiting[class] = append(q[:i], q[i+1:]...)
			return false
		}
	}
	// Granted meanwhile: hand the slot on.
	g.releaseLocked()
	return false
}

// release gives a slot back, to the first waiter of the best class.
func (g *hashGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked()
}

func (g *hashGate) releaseLocked() {
	for class := range g.waiting {
		if q := g.waiting[class]; len(q) > 0 {
			close(q[0])
			q[0] = nil
			g.waiting[class] = q[1:]
			return
		}
	}
	g.free++
}
