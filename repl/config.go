package repl

import (
	"context"
	"math/rand/v2"
	"time"
)

// Config is the chat's settings. Zero durations take the value the server
// announced at login, or the protocol's default.
type Config struct {
	Addr  string
	Salon string
	// SalonGiven: the salon was asked for explicitly (not the default).
	SalonGiven bool
	// Poll is the fetch cadence (default: poll_ms from login, else 3 s).
	Poll time.Duration
	// ReconnectWindow is how long resuming is tried (default:
	// session_timeout_ms minus 5 s, else 25 s).
	ReconnectWindow time.Duration
	// ReloginDelay is the wait between giving up resuming and logging in
	// again (default 7 s).
	ReloginDelay time.Duration
	// RetryDelay is the pause between resume or login attempts and before
	// re-sending a message the server refused for now (default 1 s). It
	// is also the first wait after a server turned a connection or a login
	// away for now (unavailable, rate_limited); each further refusal
	// doubles the wait, up to RetryMax, with jitter.
	RetryDelay time.Duration
	// RetryMax bounds the wait between refused logins (default
	// DefaultRetryMax).
	RetryMax time.Duration
	// sleep waits between refused logins and before a login again
	// spread by ReloginJitter (tests replace it); nil waits for real, or
	// until the context ends.
	sleep func(ctx context.Context, d time.Duration) error
	// ReloginJitter bounds the random wait before logging in again from
	// the password source when the server answered that it no longer
	// knows the session (it restarted): every client of that server learns
	// it at about the same moment, and spreading their logins over this
	// long keeps the server's password hashing from queueing them all.
	// Unlike the other durations, 0 means no wait (commands sets 3 s).
	ReloginJitter time.Duration
	// jitter draws the wait in [0, upTo] (tests replace it); nil is uniform.
	jitter func(upTo time.Duration) time.Duration
	// PollMargin is how much shorter than the poll cadence a long poll
	// parks, so that a fetch still goes out at least every poll
	// (PROTOCOL.md 5; default 500 ms).
	PollMargin time.Duration
	// ResumeMargin is how much shorter than the server's session timeout
	// resuming is tried, when ReconnectWindow is not set (default 5 s):
	// a resume sent at the last moment would find the session gone.
	ResumeMargin time.Duration
	// RequestTimeout bounds the requests the chat makes on its own (the
	// salon list after a login or a lost access, the history check after
	// a new login; default 10 s).
	RequestTimeout time.Duration
	// ByeTimeout bounds the wait for the server's answer to bye when the
	// chat ends (default 2 s interactive, 5 s scripted).
	ByeTimeout time.Duration
	// CountdownEvery is how often the status line counts down while
	// disconnected (default 1 s).
	CountdownEvery time.Duration
	// Password reads the password without asking (password file or
	// environment); nil means ask the person.
	Password func() (string, error)
	// PasswordSource names where Password reads from, for messages.
	PasswordSource string
	// PasswordFile is the file Password reads, when it is one: after
	// /passwd the chat offers to rewrite it with the new password
	// (SavePasswordFile).
	PasswordFile string
	// NoBell: a message that mentions the user is highlighted without
	// ringing the terminal's bell.
	NoBell bool
	// Location is the time zone of displayed times (default Local).
	Location *time.Location
}

func (c *Config) defaults() {
	if c.ReloginDelay <= 0 {
		c.ReloginDelay = 7 * time.Second
	}
	if c.PollMargin <= 0 {
		c.PollMargin = 500 * time.Millisecond
	}
	if c.ResumeMargin <= 0 {
		c.ResumeMargin = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.ByeTimeout <= 0 {
		c.ByeTimeout = 2 * time.Second
	}
	if c.CountdownEvery <= 0 {
		c.CountdownEvery = time.Second
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryDelay)
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.Location == nil {
		c.Location = time.Local
	}
	if c.ReloginJitter < 0 {
		c.ReloginJitter = 0
	}
	if c.jitter == nil {
		c.jitter = uniformJitter
	}
}

// uniformJitter draws a duration uniformly in [0, upTo].
func uniformJitter(upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	return rand.N(upTo + 1)
}
