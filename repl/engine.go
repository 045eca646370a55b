package repl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"librecord/crypto"
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
	// sleep waits between refused logins (tests replace it); nil waits
	// for real, or until the context ends.
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
	// Password reads the password without asking (password file or
	// environment); nil means ask the person.
	Password func() (string, error)
	// PasswordSource names where Password reads from, for messages.
	PasswordSource string
	// Location is the time zone of displayed times (default Local).
	Location *time.Location
}

func (c *Config) defaults() {
	if c.ReloginDelay <= 0 {
		c.ReloginDelay = 7 * time.Second
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
// how things are shown.
type front interface {
	// message shows an incoming message; own is the outbox item it
	// confirms, when it is one the user sent from this client.
	message(salon string, m lnet.Message, own *Item)
	// notice tells the user something (a line of its own).
	notice(text string)
	// status shows the countdown line; "" ends it.
	status(text string)
	// failed reports a message the server refused for good.
	failed(it *Item, err error)
}

// engine is the chat's state machine: the session, the open salon, the
// poller, the outbox and the reconnect logic. All its fields belong to the
// goroutine running loop; other goroutines talk to it with post.
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
	// showInitial: show the last messages when a salon opens (scripted
	// use only shows what arrives after it started).
	showInitial bool
	fetchLimit  int

	pollCancel context.CancelFunc // stops the poller; nil when none runs
	// unsynced: logged in again, and the cursors not yet compared with
	// the server's history; nothing is sent or polled until they are.
	unsynced bool

	out      Outbox
	inFlight *Item           // the send waiting for its answer
	retrying bool            // a re-send is scheduled
	acked    map[int64]*Item // message ids of our acked sends not shown yet
	held     []lnet.Message  // fetched messages waiting for an ack to decide
	heldFor  string          // salon of held

	deadline time.Time // end of the current countdown
	gaveUpAt time.Time // scripted: stop trying to log in again after this
	// loginBackoff spaces out logins again that the server refuses for
	// now; reset by a successful login.
	loginBackoff *backoff

	done    bool
	exitErr error
	// onIdle is called when the outbox is empty and nothing is in flight.
	onIdle func()
	// onDone is called when an item leaves the outbox (acked or refused).
	onDone func(*Item)
	// askPassword asks the person for the password (interactive use).
	askPassword func()
	// loginDone is called when a login in the background ends, whatever
	// its outcome.
	loginDone func()
	// onSalons is called when the list of salons the user may open
	// changes.
	onSalons func([]string)
	// switchOnLoss: when access to the open salon is removed, open the
	// previous or first salon left (interactive use).
	switchOnLoss bool
	// giveUp: stop trying to log in again after a reconnect window
	// (scripted use), rather than trying for ever.
	giveUp bool
}

func newEngine(ctx context.Context, cfg Config, dial Dialer, f front) *engine {
	cfg.defaults()
	return &engine{
		cfg: cfg, dial: dial, front: f, ctx: ctx,
		events:     make(chan func(), 64),
		stop:       make(chan struct{}),
		seen:       map[string]int64{},
		anchor:     map[string]lnet.Message{},
		oldest:     map[string]int64{},
		opened:     map[string]bool{},
		acked:      map[int64]*Item{},
		fetchLimit: 50,
		state:      stClosed,
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
	tick := time.NewTicker(time.Second)
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
func (e *engine) finish(timeout time.Duration) {
	if e.sess == nil {
		return
	}
	if e.state == stOnline {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		e.sess.Bye(ctx)
		cancel()
	}
	e.sess.Close()
	e.sess = nil
	e.state = stClosed
}

func (e *engine) poll() time.Duration {
	switch {
	case e.cfg.Poll > 0:
		return e.cfg.Poll
	case e.info.Poll > 0:
		return e.info.Poll
	}
	return 3 * time.Second
}

// wait is the long-poll wait: the cadence minus half a second of margin,
// so that a fetch still goes out at least every poll (PROTOCOL.md 5).
func (e *engine) wait() time.Duration {
	w := e.poll() - 500*time.Millisecond
	if w > 25*time.Second {
		w = 25 * time.Second
	}
	if w < 0 {
		w = 0
	}
	return w
}

func (e *engine) window() time.Duration {
	switch {
	case e.cfg.ReconnectWindow > 0:
		return e.cfg.ReconnectWindow
	case e.info.SessionTimeout > 5*time.Second:
		return e.info.SessionTimeout - 5*time.Second
	}
	return 25 * time.Second
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
	if e.onSalons != nil {
		e.onSalons(e.salons)
	}
}

// loginErrorFatal reports whether a login error should stop the program
// rather than be retried.
func loginErrorFatal(err error) bool {
	var changed *client.KeyMismatchError
	var pinned *client.PinnedMismatchError
	var unknown *client.UnknownServerError
	var proto *client.ProtocolError
	return errors.As(err, &changed) || errors.As(err, &unknown) || errors.As(err, &proto) ||
		errors.As(err, &pinned) || errors.Is(err, client.ErrNotTrusted) ||
		errors.Is(err, crypto.ErrBadIdentity) || errors.Is(err, crypto.ErrBadHello)
}

// baseline records, for salons not seen yet, their newest message id, so
// that /salons counts what arrived since login.
func (e *engine) baseline() {
	sess, ep := e.sess, e.epoch
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		infos, err := sess.Salons(ctx)
		if err != nil {
			return
		}
		e.post(func() {
			if ep != e.epoch {
				return
			}
			for _, s := range infos {
				if _, ok := e.seen[s.Name]; !ok {
					e.seen[s.Name] = s.Last
				}
			}
		})
	}()
}

// open makes salon the open one and (re)starts the poller on it.
func (e *engine) open(salon string) {
	e.flushHeld()
	if salon != e.salon && e.salon != "" {
		e.prev = e.salon
	}
	e.salon = salon
	e.startPoller()
}

// stopPoller stops the goroutine that long-polls the open salon, if any.
func (e *engine) stopPoller() {
	if e.pollCancel != nil {
		e.pollCancel()
		e.pollCancel = nil
	}
}

// startPoller (re)starts the goroutine that long-polls the open salon.
func (e *engine) startPoller() {
	e.stopPoller()
	if e.state != stOnline || e.unsynced || e.salon == "" {
		return
	}
	ctx, cancel := context.WithCancel(e.ctx)
	e.pollCancel = cancel
	sess, salon, ep := e.sess, e.salon, e.epoch
	initial := !e.opened[salon]
	after := e.seen[salon]
	wait, poll, limit := e.wait(), e.poll(), e.fetchLimit
	go func() {
		for {
			req := client.FetchRequest{Salon: salon, Limit: limit, After: after, HasAfter: true, Wait: wait}
			if initial {
				// First look at the salon: its latest messages.
				req = client.FetchRequest{Salon: salon, Limit: 10}
			}
			start := time.Now()
			res, err := sess.Fetch(ctx, req)
			if ctx.Err() != nil {
				return
			}
			first := initial
			e.post(func() { e.onFetched(ep, sess, salon, first, res, err) })
			if err != nil {
				return
			}
			initial = false
			if n := len(res.Messages); n > 0 {
				after = res.Messages[n-1].ID
				continue // what is new shows at once: park again
			}
			if req.Wait > 0 && time.Since(start) >= req.Wait/2 {
				continue // the wait served as the cadence
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(poll - time.Since(start)):
			}
		}
	}()
}

func (e *engine) onFetched(ep int, sess Session, salon string, initial bool, res client.Messages, err error) {
	if e.revoked(sess, err) {
		return
	}
	if ep != e.epoch || salon != e.salon || e.done {
		return
	}
	if client.IsCode(err, lnet.CodeForbidden) {
		e.salonLost(salon)
		return
	}
	if err != nil {
		e.requestFailed(err, func(err error) {
			e.front.notice(fmt.Sprintf("cannot read salon %s: %v", salon, err))
			e.stopPoller()
		})
		return
	}
	msgs := res.Messages
	if n := len(msgs); n > 0 {
		if msgs[n-1].ID > e.seen[salon] {
			e.seen[salon] = msgs[n-1].ID
			e.anchor[salon] = msgs[n-1]
		}
		if o := e.oldest[salon]; o == 0 || msgs[0].ID < o {
			e.oldest[salon] = msgs[0].ID
		}
	}
	if initial {
		e.opened[salon] = true
		if !e.showInitial {
			return
		}
		if len(msgs) == 0 {
			e.front.notice(salon + " has no messages yet")
		}
	}
	e.held = append(e.held, msgs...)
	e.heldFor = salon
	e.drain()
}

// drain shows the held messages in order. A message by our own pseudo
// while a send is in flight waits for that send's answer, so that it can be
// recognised as the message we sent (scripted use does not echo it; the
// terminal turns the pending line into it).
func (e *engine) drain() {
	for len(e.held) > 0 {
		m := e.held[0]
		own := e.acked[m.ID]
		if own == nil && e.inFlight != nil && !m.System && m.Pseudo == e.info.Pseudo {
			return
		}
		e.held = e.held[1:]
		delete(e.acked, m.ID)
		e.front.message(e.heldFor, m, own)
	}
}

// flushHeld shows whatever is held, undecided or not.
func (e *engine) flushHeld() {
	for _, m := range e.held {
		own := e.acked[m.ID]
		delete(e.acked, m.ID)
		e.front.message(e.heldFor, m, own)
	}
	e.held = nil
}

// pump sends the outbox head if nothing is in flight. One message at a
// time keeps them in order whatever the retries.
func (e *engine) pump() {
	if e.state != stOnline || e.unsynced || e.inFlight != nil || e.retrying || e.done {
		return
	}
	it := e.out.Head()
	if it == nil {
		if e.onIdle != nil {
			e.onIdle()
		}
		return
	}
	e.inFlight = it
	sess, ep := e.sess, e.epoch
	go func() {
		ack, err := sess.Send(e.ctx, it.Salon, it.Text, it.CID)
		e.post(func() { e.onSent(ep, sess, it, ack, err) })
	}()
}

func (e *engine) onSent(ep int, sess Session, it *Item, ack client.Ack, err error) {
	if e.revoked(sess, err) {
		return // the item stays in the outbox, sent again after login
	}
	if ep != e.epoch || e.inFlight != it {
		return // the connection changed meanwhile; the item is re-sent
	}
	e.inFlight = nil
	switch {
	case err == nil:
		e.out.Remove(it)
		e.acked[ack.Msg] = it
		e.settled(it)
	case client.IsCode(err, lnet.CodeRateLimited), client.IsCode(err, lnet.CodeUnavailable):
		// Nothing was stored: wait and send the same message again.
		e.retrying = true
		e.after(e.cfg.RetryDelay, func() {
			e.retrying = false
			e.pump()
		})
	case isConnErr(err):
		e.connectionLost()
		return
	case errors.Is(err, context.Canceled):
		return
	default:
		// forbidden, too_large, bad_request, internal: sending it again
		// would get the same answer.
		e.out.Remove(it)
		e.front.failed(it, err)
		e.settled(it)
	}
	e.drain()
	e.pump()
}

// settled calls onDone the first time it leaves the outbox (an item acked
// again after a new login has left it before).
func (e *engine) settled(it *Item) {
	if e.onDone != nil && !it.settled {
		it.settled = true
		e.onDone(it)
	}
}

func isConnErr(err error) bool {
	return errors.Is(err, client.ErrConnLost) || errors.Is(err, client.ErrNotConnected) ||
		errors.Is(err, context.DeadlineExceeded)
}

// requestFailed handles the error of a request: a lost connection starts
// the reconnect machine, an auth error ends the session, anything else
// goes to other.
func (e *engine) requestFailed(err error, other func(error)) {
	switch {
	case e.revoked(e.sess, err):
	case isConnErr(err):
		e.connectionLost()
	case errors.Is(err, context.Canceled), errors.Is(err, client.ErrClosed):
	default:
		other(err)
	}
}

// revoked reports whether err is the server's auth answer to a request of
// sess, the session in use: the host changed the password or removed the
// account, and the server ended the session (PROTOCOL.md 3.7). It then
// handles it with sessionRevoked. The epoch is not checked: the connection
// the server closed after that answer may have been noticed first.
func (e *engine) revoked(sess Session, err error) bool {
	if !client.IsCode(err, lnet.CodeAuth) {
		return false
	}
	if sess == e.sess {
		e.sessionRevoked()
	}
	return true
}

// sessionRevoked ends a session the server no longer accepts: erase the
// keys, say why, and log in again at once. The outbox is kept: its items
// go out after login, with their cids.
func (e *engine) sessionRevoked() {
	if e.done || (e.state != stOnline && e.state != stResuming) {
		return // already over, or logging in again
	}
	e.epoch++
	e.inFlight = nil
	e.stopPoller()
	e.sess.Close()
	e.front.status("")
	msg := "your password was changed or your account removed by the host: log in again"
	if e.cfg.Password != nil {
		msg += " (with the password from " + e.cfg.PasswordSource + ")"
	}
	e.front.notice(msg)
	e.relogin()
}

// salonLost handles a forbidden answer to the poll of the open salon: the
// host revoked the user's access to it, or removed the user (then the
// salons request gets auth, and the session is over).
func (e *engine) salonLost(salon string) {
	e.stopPoller()
	e.opened[salon] = false // a later /join shows its last messages again
	sess, ep := e.sess, e.epoch
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		infos, err := sess.Salons(ctx)
		e.post(func() { e.onSalonLost(ep, sess, salon, infos, err) })
	}()
}

func (e *engine) onSalonLost(ep int, sess Session, salon string, infos []lnet.SalonInfo, err error) {
	if e.revoked(sess, err) || ep != e.epoch || e.done || e.salon != salon {
		return
	}
	if err != nil {
		e.requestFailed(err, func(err error) {
			e.front.notice(fmt.Sprintf("cannot read salon %s: %v", salon, err))
		})
		return
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
		if _, ok := e.seen[in.Name]; !ok {
			e.seen[in.Name] = in.Last
		}
	}
	e.setSalons(names)
	msg := "the host removed your access to salon " + salon
	if !e.switchOnLoss {
		e.front.notice(msg)
		e.open("")
		return
	}
	next := canonical(names, e.prev)
	if next == "" && len(names) > 0 {
		next = names[0]
	}
	switch {
	case next != "":
		msg += "; back to " + next + " (/salons lists your salons, /join SALON opens one)"
	case len(names) == 0:
		msg += "; no salon is open, and you may open none: ask the host to grant you one"
	}
	e.front.notice(msg)
	e.open(next)
}

// connectionLost starts resuming, for up to the reconnect window.
func (e *engine) connectionLost() {
	if e.state != stOnline || e.done {
		return
	}
	e.state = stResuming
	e.epoch++
	e.inFlight = nil
	e.stopPoller()
	e.deadline = time.Now().Add(e.window())
	e.showCountdown()
	sess, ep, deadline, retry := e.sess, e.epoch, e.deadline, e.cfg.RetryDelay
	go func() {
		for {
			ctx, cancel := context.WithDeadline(e.ctx, deadline)
			err := sess.Resume(ctx)
			cancel()
			if err == nil || client.IsCode(err, lnet.CodeUnknownSession) || e.ctx.Err() != nil ||
				errors.Is(err, client.ErrClosed) || client.IsCode(err, lnet.CodeCrypto) || loginErrorFatal(err) {
				e.post(func() { e.onResume(ep, err) })
				return
			}
			if time.Until(deadline) <= 0 {
				e.post(func() { e.onResume(ep, err) })
				return
			}
			select {
			case <-e.ctx.Done():
			case <-time.After(min(retry, time.Until(deadline))):
			}
		}
	}()
}

func (e *engine) onResume(ep int, err error) {
	if ep != e.epoch || e.done {
		return
	}
	if err == nil {
		e.state = stOnline
		e.epoch++
		e.front.notice("the connection was lost; reconnected")
		if e.unsynced {
			e.resync() // lost while comparing after a login: again
			return
		}
		e.pump()
		e.startPoller()
		return
	}
	e.sess.Close() // erase the keys (PROTOCOL.md 5)
	e.epoch++
	if client.IsCode(err, lnet.CodeUnknownSession) || client.IsCode(err, lnet.CodeCrypto) {
		// The server says it no longer has the session (restart, expiry):
		// the relogin delay would only make the user wait.
		e.front.notice("the server no longer knows this session (it restarted, the session timed out, " +
			"or the host changed your password or account); logging in again")
		e.reloginSpread()
		return
	}
	e.state = stReloginWait
	e.deadline = time.Now().Add(e.cfg.ReloginDelay)
	e.front.notice(fmt.Sprintf("could not resume the session within %s; keys erased", e.window()))
	e.showCountdown()
	e.after(e.cfg.ReloginDelay, func() {
		if e.state == stReloginWait {
			e.relogin()
		}
	})
}

// reloginSpread logs in anew after the server forgot the session. From a
// password source, it first waits a random part of ReloginJitter: after a
// restart every client learns it at once, and would otherwise all hash
// their passwords on the server in the same instant. A person typing the
// password spreads the logins anyway: they are asked at once.
func (e *engine) reloginSpread() {
	if e.cfg.Password == nil || e.cfg.ReloginJitter <= 0 {
		e.relogin()
		return
	}
	d := e.cfg.jitter(e.cfg.ReloginJitter)
	if d <= 0 {
		e.relogin()
		return
	}
	e.state = stReloginWait
	e.deadline = time.Now().Add(d)
	e.showCountdown()
	ep := e.epoch
	e.after(d, func() {
		if e.state == stReloginWait && ep == e.epoch && !e.done {
			e.relogin()
		}
	})
}

// relogin logs in anew from the password source, or asks the person.
func (e *engine) relogin() {
	if e.cfg.Password == nil {
		e.state = stNeedPassword
		e.front.status("")
		e.needPassword()
		return
	}
	pw, err := e.cfg.Password()
	if err != nil {
		e.quit(fmt.Errorf("read password: %w", err))
		return
	}
	e.startLogin(pw)
}

// needPassword is set by the interactive chat: ask the person.
func (e *engine) needPassword() {
	if e.askPassword != nil {
		e.askPassword()
	}
}

// startLogin dials and logs in with pw in the background.
func (e *engine) startLogin(pw string) {
	e.state = stLoggingIn
	e.epoch++
	ep := e.epoch
	go func() {
		// The session bounds the dial and the login itself; the login may
		// take longer than the reconnect window when the server is hashing
		// a burst of passwords.
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		sess, err := e.dial(ctx, nil)
		var info client.LoginInfo
		if err == nil {
			info, err = sess.Login(ctx, pw)
			if err != nil {
				sess.Close()
			}
		}
		e.post(func() { e.onLogin(ep, pw, sess, info, err) })
	}()
}

func (e *engine) onLogin(ep int, pw string, sess Session, info client.LoginInfo, err error) {
	if e.loginDone != nil && !client.IsCode(err, lnet.CodeAuth) {
		defer e.loginDone()
	}
	if ep != e.epoch || e.done {
		if err == nil {
			sess.Close()
		}
		return
	}
	if err == nil {
		e.adopt(sess, info)
		e.gaveUpAt = time.Time{}
		e.loginBackoff = nil
		e.front.notice("logged in again as " + info.Pseudo)
		// A salon no longer allowed answers forbidden to the poll:
		// salonLost says so and moves on.
		e.unsynced = true
		e.resync()
		return
	}
	switch {
	case client.IsCode(err, lnet.CodeAuth):
		if e.cfg.Password != nil {
			e.quit(fmt.Errorf("the password from %s was refused", e.cfg.PasswordSource))
			return
		}
		e.front.notice("wrong password (or the host removed your account)")
		e.state = stNeedPassword
		if e.loginDone != nil {
			e.loginDone()
		}
		return
	case loginErrorFatal(err):
		e.quit(err)
		return
	}
	// Unreachable, refused for now, timed out: try again a bit later.
	if e.cfg.Password != nil && e.noRetryAfter() {
		e.quit(fmt.Errorf("cannot log in again: %w", err))
		return
	}
	e.state = stReloginWait
	if !refusedForNow(err) {
		// Unreachable (a restart): every RetryDelay, to be back soon.
		e.deadline = time.Now().Add(e.cfg.RetryDelay)
		e.front.status(fmt.Sprintf("cannot log in again (%v); retrying", err))
		e.after(e.cfg.RetryDelay, func() {
			if e.state == stReloginWait && ep == e.epoch {
				e.startLogin(pw)
			}
		})
		return
	}
	// The server turned us away (a full source, too many sessions, too
	// many failed logins): wait longer each time.
	if e.loginBackoff == nil {
		e.loginBackoff = e.newBackoff()
	}
	d := e.loginBackoff.next()
	e.deadline = time.Now().Add(d)
	e.front.status(fmt.Sprintf("%s; logging in again in %s", refusal(err), fmtWait(d)))
	go func() {
		if e.cfg.sleep(e.ctx, d) != nil {
			return
		}
		e.post(func() {
			if e.state == stReloginWait && ep == e.epoch {
				e.startLogin(pw)
			}
		})
	}()
}

// rewound is a salon whose history went back, and where to read it from.
type rewound struct {
	salon string
	after int64         // the new cursor
	at    *lnet.Message // the message at after, when known
	shown bool          // messages of it were shown: say so
}

// resync compares the cursors with the server's history after a new login,
// then sends and polls. A host who restored a backup sent the server's
// history back: its newest message in a salon may be older than the one
// seen, and new messages reuse ids already seen, so a cursor kept as it was
// would skip them.
func (e *engine) resync() {
	sess, ep := e.sess, e.epoch
	seen, anchors, limit := maps.Clone(e.seen), maps.Clone(e.anchor), e.fetchLimit
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		infos, rw, err := checkHistory(ctx, sess, seen, anchors, limit)
		e.post(func() { e.onResynced(ep, sess, infos, rw, err) })
	}()
}

// checkHistory asks the server, for each salon with a cursor, whether its
// history went back: its newest id is below the cursor, or the message at
// the cursor is not the one seen there. The new cursor of such a salon is
// its newest message stored no later than the one seen last (ids are not
// to be trusted across a restore, the server's clock is), within the
// latest page of limit messages.
func checkHistory(ctx context.Context, sess Session, seen map[string]int64, anchors map[string]lnet.Message,
	limit int) ([]lnet.SalonInfo, []rewound, error) {
	infos, err := sess.Salons(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []rewound
	for _, in := range infos {
		cur := seen[in.Name]
		if cur == 0 {
			continue // no cursor, or an empty salon: every id is new
		}
		a, anchored := anchors[in.Name]
		anchored = anchored && a.ID == cur
		back := in.Last < cur
		if !back && anchored {
			res, err := sess.Fetch(ctx, client.FetchRequest{Salon: in.Name, Before: cur + 1, Limit: 1})
			if client.IsCode(err, lnet.CodeForbidden) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			n := len(res.Messages)
			back = n == 0 || res.Messages[n-1] != a
		}
		if !back {
			continue
		}
		r := rewound{salon: in.Name, after: in.Last}
		if anchored {
			res, err := sess.Fetch(ctx, client.FetchRequest{Salon: in.Name, Limit: limit})
			if client.IsCode(err, lnet.CodeForbidden) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			r.shown, r.after = true, 0
			if res.More && len(res.Messages) > 0 {
				r.after = res.Messages[0].ID - 1
			}
			for i := len(res.Messages) - 1; i >= 0; i-- {
				if m := res.Messages[i]; !storedAfter(m, a) {
					r.after, r.at = m.ID, &m
					break
				}
			}
		}
		out = append(out, r)
	}
	return infos, out, nil
}

// storedAfter reports whether the server stored m after a, by its clock.
func storedAfter(m, a lnet.Message) bool {
	tm, ta := parseAt(m.At), parseAt(a.At)
	if tm.IsZero() || ta.IsZero() {
		return m.At > a.At
	}
	return tm.After(ta)
}

func (e *engine) onResynced(ep int, sess Session, infos []lnet.SalonInfo, rw []rewound, err error) {
	if e.revoked(sess, err) || ep != e.epoch || e.done {
		return
	}
	if err != nil {
		lost := true
		e.requestFailed(err, func(err error) {
			lost = false
			e.front.notice(fmt.Sprintf("could not compare with the server's history (%v): "+
				"messages may be missing if the host restored a backup", err))
		})
		if lost {
			return // resuming compares again
		}
	}
	for _, r := range rw {
		if r.salon == e.heldFor {
			// Fetched before the restore: show them as they were, with
			// the acks of then.
			e.flushHeld()
		}
	}
	e.requeueAcked()
	for _, r := range rw {
		e.seen[r.salon] = r.after
		delete(e.anchor, r.salon)
		if r.at != nil {
			e.anchor[r.salon] = *r.at
		}
		if o := e.oldest[r.salon]; o > r.after+1 {
			e.oldest[r.salon] = r.after + 1
		}
		if r.shown {
			e.front.notice(fmt.Sprintf("the server's history of %s went back (restored from a backup?): "+
				"showing from message %d", r.salon, r.after+1))
		}
	}
	for _, in := range infos {
		if _, ok := e.seen[in.Name]; !ok {
			e.seen[in.Name] = in.Last
		}
	}
	e.unsynced = false
	e.pump()
	e.startPoller()
}

// requeueAcked puts the lines of the open salon that were acked but not
// shown yet back at the head of the outbox. Their ack ids came from before
// the new login: after a restore they may name someone else's message.
// Sent again with the same cid, each gets the server's answer of now: the
// same id if the message is still stored, else it is stored again. Acks of
// other salons are dropped: nothing shows them any more.
func (e *engine) requeueAcked() {
	var items []*Item
	for id, it := range e.acked {
		delete(e.acked, id)
		if it.Salon == e.salon {
			items = append(items, it)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Line < items[j].Line })
	e.out.Requeue(items)
}

// noRetryAfter reports whether the scripted chat should give up logging
// in: it tries for one reconnect window, then fails so that whoever runs
// it learns which lines were not sent.
func (e *engine) noRetryAfter() bool {
	if !e.giveUp {
		return false
	}
	if e.gaveUpAt.IsZero() {
		e.gaveUpAt = time.Now().Add(e.window())
	}
	return time.Now().After(e.gaveUpAt)
}

// showCountdown refreshes the status line while disconnected.
func (e *engine) showCountdown() {
	left := time.Until(e.deadline).Round(time.Second)
	if left < 0 {
		left = 0
	}
	waiting := ""
	if n := e.out.Len(); n == 1 {
		waiting = ", 1 message waiting"
	} else if n > 1 {
		waiting = fmt.Sprintf(", %d messages waiting", n)
	}
	switch e.state {
	case stResuming:
		e.front.status(fmt.Sprintf("connection lost; reconnecting, %s left%s", fmtSecs(left), waiting))
	case stReloginWait:
		e.front.status(fmt.Sprintf("not connected; logging in again in %s%s", fmtSecs(left), waiting))
	}
}

func fmtSecs(d time.Duration) string { return fmt.Sprintf("%ds", int(d/time.Second)) }

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
