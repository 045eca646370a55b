package chat

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"librecord/net"
)

// quietLog rate-limits the log lines that peers who have not logged in
// can cause (connections opened and closed, broken frames, rejected
// envelopes, refusals, failed logins): per source and in total, each a
// token bucket of lines a minute. Lines past either are counted, and a
// summary "log lines suppressed" goes out once per summary period while
// any are. Its table of sources is bounded (maxTracked).
type quietLog struct {
	log       *slog.Logger
	perSource int // lines a minute per source; 0 = no limit
	every     time.Duration

	mu         sync.Mutex
	total      bucket
	sources    map[net.Source]*bucket
	overflow   bucket // shared by new sources while the table is full
	suppressed int
	timer      *time.Timer
	stopped    bool
}

func newQuietLog(log *slog.Logger, perSource, total int, every time.Duration) *quietLog {
	if every <= 0 {
		every = time.Minute
	}
	return &quietLog{log: log, perSource: perSource, every: every,
		total:    newBucket(float64(total)/60, total),
		overflow: newBucket(float64(perSource)/60, perSource),
		sources:  map[net.Source]*bucket{}}
}

// emit logs one line caused by a peer of src, unless src or everyone
// together is over the limit.
func (q *quietLog) emit(src net.Source, level slog.Level, msg string, args ...any) {
	if !q.allow(src, time.Now()) {
		return
	}
	q.log.Log(context.Background(), level, msg, args...)
}

func (q *quietLog) allow(src net.Source, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	ok := true
	if q.perSource > 0 {
		ok = q.sourceBucket(src, now).take(now)
	}
	// A line refused per source spends nothing of the total.
	if ok && !q.total.take(now) {
		ok = false
	}
	if !ok {
		q.suppressed++
		if q.timer == nil && !q.stopped {
			q.timer = time.AfterFunc(q.every, q.summary)
		}
	}
	return ok
}

// sourceBucket returns src's bucket, making room in the table first.
func (q *quietLog) sourceBucket(src net.Source, now time.Time) *bucket {
	if b, ok := q.sources[src]; ok {
		return b
	}
	if len(q.sources) >= maxTracked {
		// A bucket that refilled holds nothing worth keeping.
		for k, b := range q.sources {
			if b.full(now) {
				delete(q.sources, k)
			}
		}
		if len(q.sources) >= maxTracked {
			return &q.overflow
		}
	}
	b := newBucket(float64(q.perSource)/60, q.perSource)
	q.sources[src] = &b
	return &b
}

// summary logs how many lines were suppressed since the last summary.
func (q *quietLog) summary() {
	q.mu.Lock()
	n := q.suppressed
	q.suppressed = 0
	q.timer = nil
	q.mu.Unlock()
	if n > 0 {
		q.log.Warn("log lines suppressed", "count", n, "about", "peers not logged in")
	}
}

// stop writes the last summary and arms no more timers.
func (q *quietLog) stop() {
	q.mu.Lock()
	q.stopped = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.mu.Unlock()
	q.summary()
}

// tracked is how many sources the table holds (tests).
func (q *quietLog) tracked() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.sources)
}
