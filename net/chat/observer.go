package chat

import (
	"errors"
	"time"

	"librecord/db"
)

// Login outcomes an Observer is told of.
const (
	LoginOK          = "ok"
	LoginFailed      = "failed"            // wrong password: counted against the source
	LoginDisabled    = "disabled"          // right password of a disabled user: not counted
	LoginRateLimited = "rate_limited"      // refused unchecked: too many failures from the source
	LoginTooMany     = "too_many_sessions" // right password, the user's sessions at the cap: not counted
)

// Observer is told of the hub's events, for metrics (Config.Observer).
// Its methods are called on the hub's goroutines, the group-commit writer
// included: they must be quick and never block.
type Observer interface {
	Login(outcome string)
	// Acked: a send was acknowledged (a stored message, or a retry of one).
	Acked()
	// Committed: one group commit stored n messages (or failed) in took.
	Committed(n int, took time.Duration, err error)
	// FetchRead: a fetch read its messages from storage in took.
	FetchRead(took time.Duration)
	// Delivered: a fetch answer carried n messages.
	Delivered(n int)
	// StorageError: a request was answered unavailable or internal.
	StorageError()
}

type nopObserver struct{}

func (nopObserver) Login(string)                        {}
func (nopObserver) Acked()                              {}
func (nopObserver) Committed(int, time.Duration, error) {}
func (nopObserver) FetchRead(time.Duration)             {}
func (nopObserver) Delivered(int)                       {}
func (nopObserver) StorageError()                       {}

// refusedLogin is the outcome of a login Authenticate refused with err (ErrAuth).
func refusedLogin(err error) string {
	if errors.Is(err, db.ErrDisabled) {
		return LoginDisabled
	}
	return LoginFailed
}

// observer is the hub's Observer, or one that ignores everything.
func (h *Hub) observer() Observer {
	if h.cfg.Observer == nil {
		return nopObserver{}
	}
	return h.cfg.Observer
}
