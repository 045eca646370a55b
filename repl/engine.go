package repl

import (
	"context"
	"strings"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
)

// Session is what the REPL needs of a protocol session; *client.Session
// implements it, tests use a fake. Its requests bound their own waits
// (client.Config: the reply margin, the login timeout): the REPL does not
// add deadlines of its own to a login.
type Session interface {
	Login(ctx context.Context, password string) (client.LoginInfo, error)
	Send(ctx context.Context, salon, text, cid string) (client.Ack, error)
	Fetch(ctx context.Context, f client.FetchRequest) (client.Messages, error)
	Salons(ctx context.Context) ([]lnet.SalonInfo, error)
	Who(ctx context.Context, salon string) ([]string, error)
	// Passwd changes the user's password and returns the new one
	// (client.Session.Passwd: it resumes and resends when the answer is
	// lost).
	Passwd(ctx context.Context, current string) (string, error)
	Resume(ctx context.Context) error
	Bye(ctx context.Context) error
	Close()
}

// AskTrust asks the person whether to trust a server seen for the first
// time.
type AskTrust func(addr, fingerprint string) (bool, error)

// Dialer opens a new session (connection, hellos, identity check). ask is
// nil when there is nobody to ask.
type Dialer func(ctx context.Context, ask AskTrust) (Session, error)

// Connection states of the reconnect state machine.
type connState int

const (
	stOnline       connState = iota
	stResuming               // connection lost, resuming within the window
	stReloginWait            // resume failed, waiting the relogin delay
	stNeedPassword           // waiting for the person to give the password
	stLoggingIn              // dialing and logging in again
	stClosed                 // quitting
)

// front is what differs between the interactive and the scripted chat:
// how things are shown, and what the person (or the script) is asked or
// told when the engine's state changes. The engine calls it on the loop's
// goroutine only.
type front interface {
	// message shows an incoming message; own is the outbox item it
	// confirms, when it is one the user sent from this client; backlog:
	// it was stored before the salon was opened (the last messages shown
	// on opening it), news to nobody.
	message(salon string, m lnet.Message, own *Item, backlog bool)
	// notice tells the user something (a line of its own).
	notice(text string)
	// status shows the countdown line; "" ends it.
	status(text string)
	// failed reports a message the server refused for good.
	failed(it *Item, err error)
	// settled is called when an item leaves the outbox for the first
	// time (acked, or refused for good).
	settled(it *Item)
	// idle is called when the outbox is empty and nothing is in flight.
	idle()
	// askPassword asks the person for the password again (the engine is
	// logged out and has no password source).
	askPassword()
	// loginDone is called when a login in the background ends, whatever
	// its outcome but a wrong password from a password source.
	loginDone()
	// salonsChanged is called with the salons the user may open, when
	// they change.
	salonsChanged(salons []string)
}

// mode is how the engine behaves for its front.
type mode struct {
	// showInitial: show the last messages when a salon opens (scripted
	// use only shows what arrives after it started).
	showInitial bool
	// switchOnLoss: when access to the open salon is removed, open the
	// previous or first salon left (interactive use).
	switchOnLoss bool
	// giveUp: stop trying to log in again after a reconnect window
	// (scripted use), rather than trying for ever.
	giveUp bool
}

// engine is the chat's state machine: the session, the open salon, the
// poller, the outbox and the reconnect logic. All its fields belong to the
// goroutine running loop; other goroutines talk to it with post.
// Its methods live by concern: poll.go (the open salon's poller and what
// it shows), send.go (the outbox, one send at a time), reconnect.go
// (resuming a lost connection), login.go (logging in again), revoke.go
// (the host took a password or a salon away), resync.go (after a restored
// backup), countdown.go (the status line); view.go is all a front may ask.
type engine struct {
	cfg   Config
	dial  Dialer
	front front

	ctx    context.Context
	events chan func()
	stop   chan struct{} // closed when loop returns

	sess   Session
	info   client.LoginInfo
	state  connState
	epoch  int // bumped on every connection change; stale events are dropped
	salons []string
	salon  string
	prev   string // the salon open before salon, to go back to

	seen map[string]int64 // per salon: newest message id seen
	// anchor is, per salon, the message at seen when it was fetched: after
	// a new login it tells whether the server's history still has it.
	anchor map[string]lnet.Message
	oldest map[string]int64 // per salon: oldest message id shown
	opened map[string]bool  // salon whose last messages were shown

	pollCancel context.CancelFunc // stops the poller; nil when none runs
	// unsynced: logged in again, and the cursors not yet compared with
	// the server's history; nothing is sent or polled until they are.
	unsynced bool

	out      Outbox
	inFlight *Item           // the send waiting for its answer
	retrying bool            // a re-send is scheduled
	acked    map[int64]*Item // message ids of our acked sends not shown yet
	held     []fetched       // fetched messages waiting for an ack to decide
	heldFor  string          // salon of held

	deadline time.Time // end of the current countdown
	gaveUpAt time.Time // scripted: stop trying to log in again after this
	// loginBackoff spaces out logins again that the server refuses for
	// now; reset by a successful login.
	loginBackoff *backoff

	done    bool
	exitErr error
	mode
}

func newEngine(ctx context.Context, cfg Config, dial Dialer, f front, m mode) *engine {
	cfg.defaults()
	return &engine{
		cfg: cfg, dial: dial, front: f, ctx: ctx, mode: m,
		events: make(chan func(), 64),
		stop:   make(chan struct{}),
		seen:   map[string]int64{},
		anchor: map[string]lnet.Message{},
		oldest: map[string]int64{},
		opened: map[string]bool{},
		acked:  map[int64]*Item{},
		state:  stClosed,
	}
}

// post runs f on the loop's goroutine. It never blocks once the loop is
// over.
func (e *engine) post(f func()) {
	select {
	case e.events <- f:
	case <-e.stop:
	}
}

// after posts f after d.
func (e *engine) after(d time.Duration, f func()) {
	time.AfterFunc(d, func() { e.post(f) })
}

// loop runs events until quit. It returns the error quit was given.
func (e *engine) loop() error {
	defer close(e.stop)
	tick := time.NewTicker(e.cfg.CountdownEvery)
	defer tick.Stop()
	for !e.done {
		select {
		case f := <-e.events:
			f()
		case <-tick.C:
			e.showCountdown()
		case <-e.ctx.Done():
			e.quit(nil)
		}
	}
	return e.exitErr
}

// quit ends the loop; the caller says bye afterwards.
func (e *engine) quit(err error) {
	if e.done {
		return
	}
	e.done = true
	e.exitErr = err
	e.stopPoller()
}

// finish says bye (when online) or just erases the keys.
func (e *engine) finish() {
	if e.sess == nil {
		return
	}
	if e.state == stOnline {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ByeTimeout)
		e.sess.Bye(ctx)
		cancel()
	}
	e.sess.Close()
	e.sess = nil
	e.state = stClosed
}

// adopt makes sess, just logged in, the session in use.
func (e *engine) adopt(sess Session, info client.LoginInfo) {
	e.sess = sess
	e.info = info
	e.state = stOnline
	e.epoch++
	e.setSalons(info.Salons)
}

func (e *engine) setSalons(list []string) {
	e.salons = append([]string(nil), list...)
	e.front.salonsChanged(e.salons)
}

// canonical returns the salon of list named s, ignoring case as the server
// does, or "".
func canonical(list []string, s string) string {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return x
		}
	}
	return ""
}
