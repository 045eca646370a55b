package repl

import (
	"context"
	"fmt"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
)

// DefaultRetryMax is Config.RetryMax by default.
const DefaultRetryMax = time.Minute

// backoff spaces out the attempts a server turns away for now: the n-th
// wait is half of min(base·2^n, max) plus a random part of the other half
// ("equal jitter"), so that the clients a full server refused together do
// not all come back in the same instant, and none knocks faster than
// base.
type backoff struct {
	base, max time.Duration
	jitter    func(upTo time.Duration) time.Duration
	n         int
	waited    time.Duration // sum of the waits handed out
}

func (e *engine) newBackoff() *backoff {
	return &backoff{base: e.cfg.RetryDelay, max: e.cfg.RetryMax, jitter: e.cfg.jitter}
}

// next returns the wait before the next attempt.
func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 30 && b.base<<b.n < b.max {
		d = b.base << b.n
	}
	b.n++
	d = d/2 + b.jitter(d-d/2)
	b.waited += d
	return d
}

// refusedForNow reports whether err is a server turning a connection or
// a login away for the moment (PROTOCOL.md 4): unavailable (too many
// connections from this address, or storage trouble) or rate_limited (too
// many failed logins from this address, or too many sessions of this
// user). Trying again at once would only be refused again.
func refusedForNow(err error) bool {
	return client.IsCode(err, lnet.CodeUnavailable) || client.IsCode(err, lnet.CodeRateLimited)
}

// refusal says in words what a refusal for now means.
func refusal(err error) string {
	if client.IsCode(err, lnet.CodeUnavailable) {
		return fmt.Sprintf("the server turned the connection away for now (%v)", err)
	}
	return fmt.Sprintf("the server refused the login for now (%v)", err)
}

// waitRefused handles err from a first dial or login: when it is a
// refusal for now it says so, waits the next delay of bo and reports
// true (try again). It reports false for any other error, when ctx ends,
// and, for the scripted chat, once the waits would pass a reconnect
// window: whoever runs it then learns that the server kept refusing.
func (e *engine) waitRefused(ctx context.Context, err error, bo *backoff) bool {
	if !refusedForNow(err) {
		return false
	}
	before := bo.waited
	d := bo.next()
	if e.giveUp && bo.waited > e.window() {
		bo.waited = before
		return false
	}
	e.front.notice(fmt.Sprintf("%s; trying again in %s", refusal(err), fmtWait(d)))
	return e.cfg.sleep(ctx, d) == nil
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fmtWait shows a wait to a person: whole seconds, or milliseconds below one.
func fmtWait(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
