package chat

import (
	"sync"
	"time"
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

// refund gives back a token spent on a send that stored nothing.
func (b *bucket) refund() {
	if b.rate > 0 {
		b.tokens = min(b.tokens+1, b.burst)
	}
}

// loginLimiter counts failed logins per address over a sliding window
// (PROTOCOL.md 3.1). Attempts in progress count as possible failures: an
// attempt that could exceed the limit if they all failed waits for them to
// finish, so parallel connections from one address get no more than limit
// guesses per window, while honest parallel logins (a household behind one
// address, everyone reconnecting after a restart) are only delayed.
type loginLimiter struct {
	mu       sync.Mutex
	changed  *sync.Cond // an attempt ended
	limit    int
	window   time.Duration
	failures map[string][]time.Time
	inflight map[string]int
}

func newLoginLimiter(limit int, window time.Duration) *loginLimiter {
	l := &loginLimiter{limit: limit, window: window,
		failures: map[string][]time.Time{}, inflight: map[string]int{}}
	l.changed = sync.NewCond(&l.mu)
	return l
}

// begin reports whether addr may try a password now; if so, end must
// follow. It may wait for attempts of the same address in progress.
func (l *loginLimiter) begin(addr string, now func() time.Time) bool {
	if l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) > 4096 {
		l.sweep(now())
	}
	for {
		recent := len(l.prune(addr, now()))
		if recent >= l.limit {
			return false
		}
		if recent+l.inflight[addr] < l.limit {
			l.inflight[addr]++
			return true
		}
		l.changed.Wait()
	}
}

// end records the outcome of an attempt begin allowed.
func (l *loginLimiter) end(addr string, failed bool, now time.Time) {
	if l.limit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight[addr]--; l.inflight[addr] <= 0 {
		delete(l.inflight, addr)
	}
	if failed {
		l.failures[addr] = append(l.prune(addr, now), now)
	}
	l.changed.Broadcast()
}

// prune drops failures older than the window and returns the rest.
func (l *loginLimiter) prune(addr string, now time.Time) []time.Time {
	f := l.failures[addr]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.failures, addr)
		return nil
	}
	l.failures[addr] = f
	return f
}

func (l *loginLimiter) sweep(now time.Time) {
	for addr := range l.failures {
		l.prune(addr, now)
	}
}
