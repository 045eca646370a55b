package chat

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net"
	"librecord/net/workers"
)

// Store is what the chat rules need from storage; *db.DB implements it.
type Store interface {
	Authenticate(ctx context.Context, password string) (db.Credential, error)
	Valid(ctx context.Context, c db.Credential) (bool, error)
	ChangePassword(ctx context.Context, c db.Credential, current, next string) (db.Credential, error)
	Access(ctx context.Context, userID int64, name string) (db.Salon, error)
	UserSalons(ctx context.Context, userID int64) ([]db.Salon, error)
	UsersWithAccess(ctx context.Context, salonID int64) ([]int64, error)
	InsertMessages(ctx context.Context, msgs []db.NewMessage) ([]db.Stored, error)
	LookupCid(ctx context.Context, userID int64, cid string) (db.Stored, bool, error)
	// Changes is the database's change counter (db.DB.Changes): access
	// and credentials found at one value stay true until it moves.
	Changes(ctx context.Context) (int64, error)
	// The pages of a fetch stop reading once what they read no longer
	// fits in one answer (db.Budget); the zero Budget reads up to limit.
	LatestWithin(ctx context.Context, salonID int64, limit int, b db.Budget) ([]db.Message, bool, error)
	BeforeWithin(ctx context.Context, salonID, id int64, limit int, b db.Budget) ([]db.Message, bool, error)
	AfterWithin(ctx context.Context, salonID, id int64, limit int, b db.Budget) ([]db.Message, bool, error)
}

// Config holds the chat rules' timings and limits. Every field is a flag
// of librecord serve.
type Config struct {
	SessionTimeout time.Duration // a logged-in session with no request for this long ends
	Poll           time.Duration // fetch cadence announced to clients at login
	LoginLimit     int           // failed logins per source (IPv4 address, IPv6 /64) within LoginWindow; 0 = no limit
	LoginBlock     int           // failed logins per IPv6 /48 within LoginWindow; 0 = no limit
	LoginWindow    time.Duration
	MaxSessions    int // logged-in sessions per user; 0 = no limit
	// LoginHashes is how many password checks run at once, those from
	// sources with no recent failure first; 0 means the store's default
	// bound (db.Options.MaxConcurrentHashes: min(CPUs, 4)).
	LoginHashes int
	MaxParked   int // parked fetches per session; past it the oldest answers early; 0 = no limit
	// LogPerSource and LogTotal bound the log lines a minute that peers
	// not logged in can cause, per source and in total; 0 = no limit.
	LogPerSource int
	LogTotal     int
	// LogSummary is how often suppressed log lines are counted in one
	// line; 0 means a minute.
	LogSummary time.Duration
	SendRate   float64 // sends a second per session; 0 = no limit
	SendBurst  int
	MaxMessage int // largest text, in bytes
	MaxFetch   int // largest fetch limit
	// MaxBody is the largest answer body that fits in one frame once
	// sealed; fetch answers are trimmed to it.
	MaxBody int
	// MaxBatch bounds how many messages one group commit stores.
	MaxBatch int
	// Observer is told of logins, acks, commits, fetches and storage
	// errors (serve --metrics); nil: nobody. Not a flag.
	Observer Observer
}

// Peer is where a connection comes from: its address, for logs, and
// its source, for the per-source limits (net.SourceOfAddr).
type Peer struct {
	Addr   string
	Source net.Source
}

// Conn is the connection a session is attached to, as chat sees it.
type Conn interface {
	// Close closes the connection at once; the server later calls
	// Hub.Detach.
	Close()
	// Finish closes the connection once the answers queued on it so far
	// are written; the server later calls Hub.Detach.
	Finish()
}

// Reply carries the one answer of a request back to the connection the
// request came on. Its methods never block, but Room.
type Reply interface {
	Send(body []byte)      // seal and send
	SendClose(body []byte) // send, then close the connection
	Drop()                 // no answer will come (the connection is going away)
	Done() <-chan struct{} // closed when the connection closes
	// AfterClose arranges for f to run (in its own goroutine) once the
	// connection closes, at once if it is closed; stop cancels that and
	// reports whether it did.
	AfterClose(f func()) (stop func() bool)
	// Room waits until the connection can take a large answer (its peer
	// has read enough of what it owes) and returns the function to call
	// once the answer is sent; nil if the connection closed meanwhile.
	// A parked fetch calls it before reading what it answers.
	Room() (release func())
}

// Hub holds the sessions and applies the chat rules. Create it with New.
type Hub struct {
	store  Store
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	logins *loginLimiter
	hashes *hashGate
	quiet  *quietLog
	cache  *cache
	// windows are the salons' recent messages (window.go).
	windows windows
	reads   counterReads
	workers *workers.Pool

	mu       sync.Mutex
	sessions map[[8]byte]*Session
	perUser  map[int64]int // logged-in sessions per user

	jobs       chan job
	subMu      sync.RWMutex // guards closing jobs
	closed     bool
	writerDone chan struct{}
	stopping   chan struct{}
	stopOnce   sync.Once
	bg         sync.WaitGroup // parked fetches
	parking    *parking

	// timedOut, when set (tests), runs in idle between its first look,
	// which found the session's clock run out, and its locked decision.
	timedOut func(*Session)
}

// Session is one session: the manual's "temporary file" (pseudo, address,
// keys and counters, last active salon, liveness clock). It lives in
// memory only.
type Session struct {
	hub    *Hub
	ch     *crypto.Channel
	signer [8]byte
	id     string // hex signer id, for logs

	// credMu orders a password change (write) against the credential
	// checks of the session's other requests (read), so that none of
	// them sees the database changed and the session's credential not.
	credMu sync.RWMutex

	mu         sync.Mutex
	peer       Peer
	conn       Conn
	cred       db.Credential
	loggedIn   bool
	ended      bool
	erased     bool
	lastActive time.Time
	parked     int
	parkedQ    []*parked // parked fetches not yet pushed out, oldest first
	lastSalon  int64
	timer      *time.Timer
	sends      bucket
	// passwdRe and passwdAnswer are the id and the answer of the
	// session's last successful passwd, sent again to a retry of that id
	// (PROTOCOL.md 3.8); erased with the keys.
	passwdRe     int64
	passwdAnswer []byte
}

// New returns a Hub storing into store; call Shutdown to stop it.
func New(store Store, cfg Config, log *slog.Logger) *Hub {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.LoginHashes <= 0 {
		cfg.LoginHashes = min(runtime.NumCPU(), 4)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		store: store, cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		logins:     newLoginLimiter(cfg.LoginLimit, cfg.LoginBlock, cfg.LoginWindow),
		hashes:     newHashGate(cfg.LoginHashes),
		quiet:      newQuietLog(log, cfg.LogPerSource, cfg.LogTotal, cfg.LogSummary),
		cache:      newCache(),
		windows:    windows{m: map[int64]*window{}},
		sessions:   map[[8]byte]*Session{},
		perUser:    map[int64]int{},
		parking:    newParking(),
		workers:    workers.New(workerLinger),
		jobs:       make(chan job, 4*cfg.MaxBatch),
		writerDone: make(chan struct{}),
		stopping:   make(chan struct{}),
	}
	go h.writer()
	go h.timers()
	return h
}

// workerLinger is how long a goroutine of the hub's pool waits for its
// next task before it ends.
const workerLinger = 5 * time.Second

// Go runs f on a goroutine of the hub's pool (net/workers), whose stack
// has grown with earlier tasks already: the transport runs each request
// and each connection's writer there, the hub each woken long-poll.
func (h *Hub) Go(f func()) { h.workers.Go(f) }

// Channel is the session's sealing state (keys and counters).
func (s *Session) Channel() *crypto.Channel { return s.ch }

// LoggedIn reports whether login succeeded on this session.
func (s *Session) LoggedIn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loggedIn
}

// Pseudo is the logged-in user's pseudo, "" before login.
func (s *Session) Pseudo() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cred.Pseudo
}

// ID is a short public name of the session for logs (its signer id in hex).
func (s *Session) ID() string { return s.id }

// ErrSessionKeyInUse is returned by NewSession for a hello whose signing
// key already names a live session: session keys are fresh per session,
// so only a replayed or forged hello can do that.
var ErrSessionKeyInUse = errors.New("session key already in use")

// NewSession registers the session a hello just created on conn, coming
// from peer. The hub takes ownership of ch.
func (h *Hub) NewSession(ch *crypto.Channel, peer Peer, conn Conn) (*Session, error) {
	s := &Session{hub: h, ch: ch, signer: ch.PeerSignerID(), peer: peer, conn: conn,
		sends: newBucket(h.cfg.SendRate, h.cfg.SendBurst)}
	s.id = hex.EncodeToString(s.signer[:])
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, taken := h.sessions[s.signer]; taken {
		return nil, ErrSessionKeyInUse
	}
	h.sessions[s.signer] = s
	return s, nil
}

// Lookup returns the live session whose peer signs with signerID, or nil.
func (h *Hub) Lookup(signerID [8]byte) *Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[signerID]
}

// Touch restarts the session's clock: an envelope of it passed the checks.
func (h *Hub) Touch(s *Session) {
	s.mu.Lock()
	s.lastActive = time.Now()
	s.mu.Unlock()
}

// Resume moves s to conn (PROTOCOL.md 3.5) and returns the connection it
// was on, for the caller to close. It fails with unknown_session when the
// session ended meanwhile or its credential is no longer valid (the
// session then ends).
func (h *Hub) Resume(s *Session, conn Conn, peer Peer, re int64) (Conn, *net.Error) {
	unknown := &net.Error{Code: net.CodeUnknownSession, Message: "no such session; start over with a hello and a login"}
	s.mu.Lock()
	ended, logged := s.ended, s.loggedIn
	s.mu.Unlock()
	if ended {
		return nil, unknown
	}
	if logged {
		ok, err := h.validNow(s)
		if err != nil {
			return nil, h.storeError(re, err, "check credential")
		}
		if !ok {
			h.end(s, "credential no longer valid")
			return nil, unknown
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, unknown
	}
	old := s.conn
	s.conn, s.peer = conn, peer
	s.lastActive = time.Now()
	if s.loggedIn {
		h.log.Info("session resumed", "session", s.id, "pseudo", s.cred.Pseudo, "addr", peer.Addr)
	} else {
		h.quiet.emit(peer.Source, slog.LevelInfo, "session resumed before login", "session", s.id, "addr", peer.Addr)
	}
	return old, nil
}

// Detach tells the hub that conn, which s was attached to, is closed and
// flushed. A session that never logged in ends with its connection; a
// logged-in one stays resumable until its timeout.
func (h *Hub) Detach(s *Session, conn Conn) {
	s.mu.Lock()
	if s.conn != conn {
		s.mu.Unlock()
		return
	}
	s.conn = nil
	ended, logged := s.ended, s.loggedIn
	s.mu.Unlock()
	switch {
	case ended:
		s.erase()
	case !logged:
		h.end(s, "connection closed before login")
	}
}

func (s *Session) erase() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.erased {
		s.erased = true
		s.ch.Erase()
		clear(s.passwdAnswer)
		s.passwdAnswer = nil
	}
}

// ending is what forget saw of a session it ended.
type ending struct {
	conn   Conn // the connection the session lived on, nil if none
	logged bool
	pseudo string
	salon  int64 // last active salon
}

// forget marks s ended, forgets it at once (no resume) and stops its
// clock; h.mu and s.mu are held. It reports false if s had already ended.
func (h *Hub) forget(s *Session) (ending, bool) {
	if s.ended {
		return ending{}, false
	}
	s.ended = true
	if h.sessions[s.signer] == s {
		delete(h.sessions, s.signer)
	}
	if s.loggedIn {
		if h.perUser[s.cred.UserID]--; h.perUser[s.cred.UserID] <= 0 {
			delete(h.perUser, s.cred.UserID)
		}
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	return ending{conn: s.conn, logged: s.loggedIn, pseudo: s.cred.Pseudo, salon: s.lastSalon}, true
}

// forgetIf forgets s under the hub's and the session's locks (in that
// order, as everywhere) when cond, called under them, holds (nil: always).
// It reports false if s had already ended or cond did not hold.
func (h *Hub) forgetIf(s *Session, cond func() bool) (ending, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cond != nil && !cond() {
		return ending{}, false
	}
	return h.forget(s)
}

// end ends a session: it is forgotten, "<pseudo> disconnected" is posted
// in its last active salon when it was logged in, and the connection it
// lives on is closed at once. It reports whether this call ended it.
func (h *Hub) end(s *Session, reason string) bool {
	e, ok := h.forgetIf(s, nil)
	if ok {
		h.finish(s, e, reason, false)
	}
	return ok
}

// finish does what follows forget: log, post "<pseudo> disconnected",
// and close the connection the session lived on, at once or once the
// answers queued on it are written (flush). A session with no connection
// left has its keys erased now; otherwise Detach erases them.
func (h *Hub) finish(s *Session, e ending, reason string, flush bool) {
	if e.logged {
		h.log.Info("session ended", "session", s.id, "pseudo", e.pseudo, "reason", reason)
		if e.salon != 0 {
			h.announce(e.salon, e.pseudo)
		}
	}
	switch {
	case e.conn == nil:
		s.erase()
	case flush:
		e.conn.Finish()
	default:
		e.conn.Close()
	}
}

// announce posts "<pseudo> disconnected" as a system message, without
// waiting for it to be stored.
func (h *Hub) announce(salonID int64, pseudo string) {
	msg := &db.NewMessage{SalonID: salonID, Text: pseudo + " disconnected", System: true}
	err := h.submit(job{msg: msg, done: func(_ db.Stored, err error) {
		if err != nil {
			h.log.Error("post disconnection", "salon_id", salonID, "err", err)
		}
	}})
	if err != nil {
		h.log.Warn("disconnection not posted: shutting down", "salon_id", salonID)
	}
}

// idle is the session clock's timer function. It decides and ends under
// the hub's and the session's locks, so that a resume either finds the
// session ended or keeps it alive (its clock restarted), never both.
func (h *Hub) idle(s *Session) {
	select {
	case <-h.stopping:
		return
	default:
	}
	// A first look under the session's lock alone: most fires find a
	// session active meanwhile, and re-arm without the hub's lock.
	s.mu.Lock()
	out := h.expired(s)
	s.mu.Unlock()
	if !out {
		return
	}
	if h.timedOut != nil {
		h.timedOut(s)
	}
	e, out := h.forgetIf(s, func() bool { return h.expired(s) })
	if out {
		h.finish(s, e, "timeout", false)
	}
}

// expired reports whether s's clock ran out; if it has not, it re-arms
// the clock for the time left. s.mu is held.
func (h *Hub) expired(s *Session) bool {
	if s.ended || s.parked > 0 {
		return false // unpark re-arms the clock
	}
	if left := h.cfg.SessionTimeout - time.Since(s.lastActive); left > 0 {
		s.timer.Reset(left)
		return false
	}
	return true
}

// park stops the session's clock while fetch p of it is parked. It
// returns the fetch that must answer early, if any: more than max fetches
// of the session are parked and it is the oldest (max 0: no bound).
func (s *Session) park(p *parked, max int) (early *parked) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parked++
	s.parkedQ = append(s.parkedQ, p)
	if max > 0 && len(s.parkedQ) > max {
		early = s.parkedQ[0]
		s.parkedQ[0] = nil
		s.parkedQ = s.parkedQ[1:]
	}
	return early
}

// unpark restarts the clock when the last parked fetch is answered.
func (s *Session) unpark(p *parked) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.parkedQ {
		if q == p {
			s.parkedQ = append(s.parkedQ[:i], s.parkedQ[i+1:]...)
			break
		}
	}
	s.parked--
	s.lastActive = time.Now()
	if s.parked == 0 && s.timer != nil && !s.ended {
		s.timer.Reset(s.hub.cfg.SessionTimeout)
	}
}

func (s *Session) setLastSalon(id int64) {
	s.mu.Lock()
	s.lastSalon = id
	s.mu.Unlock()
}

// Handle answers one request of session s through reply. It may return
// before the answer is sent (send waits for its commit, a fetch may park),
// and never blocks on the connection. portions is the request frame's
// portion count.
func (h *Hub) Handle(s *Session, req *net.Request, portions int, reply Reply) {
	mark := h.reads.mark()
	s.mu.Lock()
	ended, logged, cred := s.ended, s.loggedIn, s.cred
	s.mu.Unlock()
	if ended {
		reply.Drop()
		return
	}
	fail := func(code, msg string) { reply.Send(net.ErrorBody(req.ID, code, msg)) }
	if !logged {
		if req.Op != net.OpLogin {
			fail(net.CodeBadRequest, "log in first")
			return
		}
		h.login(s, req, reply)
		return
	}
	switch req.Op {
	case net.OpLogin:
		fail(net.CodeBadRequest, "already logged in")
		return
	case net.OpResume:
		fail(net.CodeBadRequest, "resume is only accepted as the first envelope on a new connection")
		return
	case net.OpBye:
		h.bye(s, req, reply)
		return
	case net.OpPasswd:
		h.passwd(s, req, reply)
		return
	}
	// What memory can decide needs no read of the change counter before
	// the answer's own (PROTOCOL.md 4 holds: see parkKnown, sendKnown).
	if req.Op == net.OpFetch && h.parkKnown(s, cred, req, reply) ||
		req.Op == net.OpSend && h.sendKnown(s, cred, req, portions, reply) {
		return
	}
	h.handleRead(s, cred, mark, req, portions, reply)
}

// handleRead serves a logged-in session's request after a read of the
// change counter that started after mark (its arrival): the credential,
// then the op.
func (h *Hub) handleRead(s *Session, cred db.Credential, mark uint64, req *net.Request, portions int, reply Reply) {
	gen, err := h.changes(mark)
	if err != nil {
		reply.Send(h.storeError(req.ID, err, "check credential").Body())
		return
	}
	if !h.checkValid(s, gen, req.ID, reply) {
		return
	}
	switch req.Op {
	case net.OpSend:
		h.send(s, cred, gen, req, portions, reply)
	case net.OpFetch:
		h.fetch(s, cred, gen, req, reply)
	case net.OpSalons:
		h.salons(cred, req, reply)
	case net.OpWho:
		h.who(cred, gen, req, reply)
	default:
		reply.Send(net.ErrorBody(req.ID, net.CodeBadRequest, "unknown op"))
	}
}

// valid reports whether the session's credential is still valid (its
// user not removed or disabled, its password not changed elsewhere) as of
// the change counter gen, read just before.
func (h *Hub) valid(s *Session, gen int64) (bool, error) {
	s.credMu.RLock()
	defer s.credMu.RUnlock()
	s.mu.Lock()
	cred := s.cred
	s.mu.Unlock()
	if h.cache.isValid(gen, cred) {
		return true, nil
	}
	ok, err := h.store.Valid(h.ctx, cred)
	if ok && err == nil {
		h.cache.putValid(gen, cred)
	}
	return ok, err
}

// validNow is valid at the change counter as it is now.
func (h *Hub) validNow(s *Session) (bool, error) {
	gen, err := h.changes(h.reads.mark())
	if err != nil {
		return false, err
	}
	return h.valid(s, gen)
}

// checkValid ends the session with an auth error when its user was removed
// or its password changed since login (as of the change counter gen).
func (h *Hub) checkValid(s *Session, gen, re int64, reply Reply) bool {
	ok, err := h.valid(s, gen)
	return h.afterValid(s, ok, err, re, reply)
}

// afterValid answers a failed credential check (ok false or err) and
// reports whether the request may go on.
func (h *Hub) afterValid(s *Session, ok bool, err error, re int64, reply Reply) bool {
	if err != nil {
		reply.Send(h.storeError(re, err, "check credential").Body())
		return false
	}
	if !ok {
		// The answer goes on the connection the request came on; the
		// session may have moved to another one since (resume), which
		// closes too once its own answers are written.
		e, ended := h.forgetIf(s, nil)
		reply.SendClose(net.ErrorBody(re, net.CodeAuth, "your account or password changed: log in again"))
		if ended {
			h.finish(s, e, "credential no longer valid", true)
		}
		return false
	}
	return true
}

// storeError turns a storage error into an answer: unavailable when
// storage is busy or full (retry), internal otherwise (logged).
func (h *Hub) storeError(re int64, err error, what string) *net.Error {
	h.observer().StorageError()
	if errors.Is(err, db.ErrBusy) {
		h.log.Warn("storage unavailable", "op", what, "err", err)
		return &net.Error{Re: re, Code: net.CodeUnavailable, Message: "storage unavailable, nothing was stored: retry"}
	}
	h.log.Error("storage error", "op", what, "err", err)
	return &net.Error{Re: re, Code: net.CodeInternal, Message: "internal error"}
}

func (h *Hub) login(s *Session, req *net.Request, reply Reply) {
	s.mu.Lock()
	peer := s.peer
	s.mu.Unlock()
	allowed, clean := h.logins.begin(peer.Source, time.Now)
	if !allowed {
		h.observer().Login(LoginRateLimited)
		h.quiet.emit(peer.Source, slog.LevelWarn, "login refused: too many failures", "addr", peer.Addr, "source", peer.Source.String())
		reply.Send(net.ErrorBody(req.ID, net.CodeRateLimited, "too many failed logins from your address: wait a minute"))
		return
	}
	// A login whose connection closes (the login timeout) is abandoned:
	// it stops waiting for a password hash slot, and never logs in a
	// session nobody will hear "connected" on.
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	go func() {
		select {
		case <-reply.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if !h.hashes.acquire(clean, ctx.Done()) {
		h.logins.end(peer.Source, false, time.Now())
		reply.Drop()
		return
	}
	cred, err := h.store.Authenticate(ctx, req.Password)
	h.hashes.release()
	// A disabled user's login is answered auth but is no failed login (PROTOCOL.md 4).
	h.logins.end(peer.Source, errors.Is(err, db.ErrAuth) && !errors.Is(err, db.ErrDisabled), time.Now())
	if closed(reply) {
		reply.Drop()
		return
	}
	if errors.Is(err, db.ErrAuth) {
		h.observer().Login(refusedLogin(err))
		h.quiet.emit(peer.Source, slog.LevelInfo, "login failed", "addr", peer.Addr)
		reply.Send(net.ErrorBody(req.ID, net.CodeAuth, "wrong password"))
		return
	}
	if err != nil {
		reply.Send(h.storeError(req.ID, err, "login").Body())
		return
	}
	salons, err := h.store.UserSalons(ctx, cred.UserID)
	if err != nil && !closed(reply) {
		reply.Send(h.storeError(req.ID, err, "list salons").Body())
		return
	}
	names := make([]string, len(salons))
	for i, sa := range salons {
		names[i] = sa.Name
	}
	h.mu.Lock()
	s.mu.Lock()
	if s.ended || err != nil || closed(reply) {
		s.mu.Unlock()
		h.mu.Unlock()
		reply.Drop()
		return
	}
	// Refused here, after the password was checked: not a failed login.
	if h.cfg.MaxSessions > 0 && h.perUser[cred.UserID] >= h.cfg.MaxSessions {
		s.mu.Unlock()
		h.mu.Unlock()
		h.observer().Login(LoginTooMany)
		h.quiet.emit(peer.Source, slog.LevelWarn, "login refused: too many sessions", "pseudo", cred.Pseudo, "addr", peer.Addr)
		reply.Send(net.ErrorBody(req.ID, net.CodeRateLimited, "too many sessions: end one (quit another client) or wait for it to time out"))
		return
	}
	h.perUser[cred.UserID]++
	s.cred, s.loggedIn = cred, true
	s.lastActive = time.Now()
	s.timer = time.AfterFunc(h.cfg.SessionTimeout, func() { h.idle(s) })
	s.mu.Unlock()
	h.mu.Unlock()
	h.observer().Login(LoginOK)
	h.log.Info("login", "session", s.id, "pseudo", cred.Pseudo, "addr", peer.Addr)
	reply.Send((&net.Response{
		Op: net.OpConnected, Re: req.ID, Status: net.StatusConnected, Pseudo: cred.Pseudo,
		Salons: names, SessionTimeoutMS: h.cfg.SessionTimeout.Milliseconds(), PollMS: h.cfg.Poll.Milliseconds(),
	}).Encode())
}

// closed reports whether the connection of reply has closed.
func closed(reply Reply) bool {
	select {
	case <-reply.Done():
		return true
	default:
		return false
	}
}

// access returns the salon if the user may open it (as of the change
// counter gen, read just before); a malformed name is forbidden like a
// salon they may not open, and the answer never says whether the salon
// exists. The salon's Last is not set.
func (h *Hub) access(gen, userID int64, name string, re int64) (db.Salon, *net.Error) {
	forbidden := &net.Error{Re: re, Code: net.CodeForbidden, Message: "no access to salon"}
	if !net.ValidName(name) {
		return db.Salon{}, forbidden
	}
	if salon, ok := h.cache.salon(gen, userID, name); ok {
		return salon, nil
	}
	salon, err := h.store.Access(h.ctx, userID, name)
	if err == nil {
		h.cache.putSalon(gen, userID, name, salon)
		salon.Last = 0
	}
	switch {
	case errors.Is(err, db.ErrNotFound), errors.Is(err, db.ErrInvalidName):
		return db.Salon{}, forbidden
	case err != nil:
		return db.Salon{}, h.storeError(re, err, "check access")
	}
	return salon, nil
}

func (h *Hub) send(s *Session, cred db.Credential, gen int64, req *net.Request, portions int, reply Reply) {
	if e := net.CheckText(req.Text, h.cfg.MaxMessage); e != nil {
		e.Re = req.ID
		reply.Send(e.Body())
		return
	}
	if !net.ValidCid(req.Cid) {
		reply.Send(net.ErrorBody(req.ID, net.CodeBadRequest, "cid must be 1 to 64 printable ASCII characters"))
		return
	}
	salon, e := h.access(gen, cred.UserID, req.Salon, req.ID)
	if e != nil {
		reply.Send(e.Body())
		return
	}
	// Dedup comes before the rate limit (PROTOCOL.md 3.2). Within the
	// rate, the writer finds a known cid in the transaction that would
	// store it (db.Stored.Duplicate) and the rate is refunded, so the
	// common send costs no lookup of its own; past the rate, only a retry
	// of a stored message is answered, so the lookup happens here.
	s.mu.Lock()
	allowed := s.sends.take(time.Now())
	s.mu.Unlock()
	if !allowed {
		prev, found, err := h.store.LookupCid(h.ctx, cred.UserID, req.Cid)
		switch {
		case err != nil:
			reply.Send(h.storeError(req.ID, err, "look up cid").Body())
		case found:
			h.ack(s, salon, req, prev, reply)
		default:
			reply.Send(net.ErrorBody(req.ID, net.CodeRateLimited, "sending too fast: slow down"))
		}
		return
	}
	h.queueSend(s, cred, salon, req, portions, reply, job{})
}

// ack answers a send whose message is stored as st.
func (h *Hub) ack(s *Session, salon db.Salon, req *net.Request, st db.Stored, reply Reply) {
	s.setLastSalon(salon.ID)
	h.observer().Acked()
	reply.Send((&net.Response{Op: net.OpAck, Re: req.ID, Msg: st.ID, Portions: st.Portions}).Encode())
}

// sendKnown stores a send that memory finds allowed: valid, a credential
// and access found at the change counter the cache holds, within the
// rate. The group commit's counter read, made after the send was queued,
// is its check at answer time: if the counter moved, nothing is stored
// and the send is checked again by reading (handleRead). It reports
// false, having done nothing, when memory cannot decide; refusals are
// the reading path's to answer.
func (h *Hub) sendKnown(s *Session, cred db.Credential, req *net.Request, portions int, reply Reply) bool {
	if net.CheckText(req.Text, h.cfg.MaxMessage) != nil || !net.ValidCid(req.Cid) || !net.ValidName(req.Salon) {
		return false
	}
	gen, salon, ok := h.cache.allowed(cred, req.Salon)
	if !ok {
		return false
	}
	s.mu.Lock()
	allowed := s.sends.take(time.Now())
	s.mu.Unlock()
	if !allowed {
		return false // a retry past the rate may still get its ack
	}
	h.queueSend(s, cred, salon, req, portions, reply, job{checked: true, checkedAt: gen})
	return true
}

// queueSend queues the send's message for the group commit, its rate
// taken, and acks it once durable; j holds how it was checked.
func (h *Hub) queueSend(s *Session, cred db.Credential, salon db.Salon, req *net.Request, portions int, reply Reply, j job) {
	refund := func() {
		s.mu.Lock()
		s.sends.refund()
		s.mu.Unlock()
	}
	j.msg = &db.NewMessage{SalonID: salon.ID, UserID: cred.UserID, Cid: req.Cid,
		Pseudo: cred.Pseudo, Text: req.Text, Portions: portions}
	j.done = func(st db.Stored, err error) {
		if errors.Is(err, errRecheck) {
			refund()
			mark := h.reads.mark()
			h.Go(func() {
				s.mu.Lock()
				cred := s.cred
				s.mu.Unlock()
				h.handleRead(s, cred, mark, req, portions, reply)
			})
			return
		}
		if errors.Is(err, db.ErrNotFound) { // the salon was removed meanwhile
			refund()
			reply.Send(net.ErrorBody(req.ID, net.CodeForbidden, "no access to salon"))
			return
		}
		if err != nil {
			refund()
			reply.Send(h.storeError(req.ID, err, "store message").Body())
			return
		}
		if st.Duplicate {
			refund()
		}
		h.ack(s, salon, req, st, reply)
	}
	if err := h.submit(j); err != nil {
		refund()
		reply.Send(net.ErrorBody(req.ID, net.CodeUnavailable, "server shutting down, nothing was stored: retry"))
	}
}

func (h *Hub) salons(cred db.Credential, req *net.Request, reply Reply) {
	list, err := h.store.UserSalons(h.ctx, cred.UserID)
	if err != nil {
		reply.Send(h.storeError(req.ID, err, "list salons").Body())
		return
	}
	out := make([]net.SalonInfo, len(list))
	for i, sa := range list {
		out[i] = net.SalonInfo{Name: sa.Name, Last: sa.Last}
	}
	reply.Send((&net.Response{Op: net.OpSalons, Re: req.ID, SalonList: out}).Encode())
}

// who lists the users with a live (logged-in, not timed out) session who
// may open the salon, once each, sorted ignoring case.
func (h *Hub) who(cred db.Credential, gen int64, req *net.Request, reply Reply) {
	salon, e := h.access(gen, cred.UserID, req.Salon, req.ID)
	if e != nil {
		reply.Send(e.Body())
		return
	}
	ids, err := h.store.UsersWithAccess(h.ctx, salon.ID)
	if err != nil {
		reply.Send(h.storeError(req.ID, err, "list members").Body())
		return
	}
	allowed := make(map[int64]bool, len(ids))
	for _, id := range ids {
		allowed[id] = true
	}
	seen := map[int64]bool{}
	pseudos := []string{}
	h.mu.Lock()
	for _, other := range h.sessions {
		other.mu.Lock()
		if other.loggedIn && !other.ended && allowed[other.cred.UserID] && !seen[other.cred.UserID] {
			seen[other.cred.UserID] = true
			pseudos = append(pseudos, other.cred.Pseudo)
		}
		other.mu.Unlock()
	}
	h.mu.Unlock()
	sort.Slice(pseudos, func(i, j int) bool {
		a, b := strings.ToLower(pseudos[i]), strings.ToLower(pseudos[j])
		if a != b {
			return a < b
		}
		return pseudos[i] < pseudos[j]
	})
	reply.Send((&net.Response{Op: net.OpWho, Re: req.ID, Salon: salon.Name, Pseudos: pseudos}).Encode())
}

// bye answers after the session's earlier sends are acked, closes the
// connection, and posts "<pseudo> disconnected" (PROTOCOL.md 3.6). The
// answer goes on the connection the bye came on; if a resume moved the
// session to another connection meanwhile, that one closes too, once the
// answers queued on it are written.
func (h *Hub) bye(s *Session, req *net.Request, reply Reply) {
	e, ok := h.forgetIf(s, nil)
	if !ok {
		reply.Drop()
		return
	}
	h.log.Info("session ended", "session", s.id, "pseudo", e.pseudo, "reason", "bye")
	answer := (&net.Response{Op: net.OpBye, Re: req.ID}).Encode()
	done := func() {
		reply.SendClose(answer)
		if e.conn == nil {
			s.erase()
		} else {
			e.conn.Finish() // a no-op when it is the bye's own connection
		}
	}
	j := job{done: func(db.Stored, error) { done() }}
	if e.salon != 0 {
		j.msg = &db.NewMessage{SalonID: e.salon, Text: e.pseudo + " disconnected", System: true}
	}
	// The job queues behind this session's sends, so their acks go first.
	if err := h.submit(j); err != nil {
		done()
	}
}

// LogStranger logs a line caused by a peer that has not logged in, from
// src, unless that source or all of them together are over their log
// rate (Config.LogPerSource, LogTotal); suppressed lines are counted in
// a periodic summary line.
func (h *Hub) LogStranger(src net.Source, level slog.Level, msg string, args ...any) {
	h.quiet.emit(src, level, msg, args...)
}

// Sessions returns how many sessions are live, logged in or not.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Shutdown stops the hub: session clocks stop, parked fetches are answered,
// queued messages are committed and acked, then the sessions still live
// end, unannounced. The keys of a session with no connection are erased
// at once; those of a session on a connection are erased when the server
// detaches it, once its last answers are written. Call it once no new
// request can arrive. It returns ctx's error if that takes too long.
func (h *Hub) Shutdown(ctx context.Context) error {
	defer h.endAll()
	defer h.quiet.stop()
	h.stopOnce.Do(func() { close(h.stopping) })
	h.stopParking()
	h.mu.Lock()
	for _, s := range h.sessions {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.mu.Unlock()
	}
	h.mu.Unlock()

	parked := make(chan struct{})
	go func() { h.bg.Wait(); close(parked) }()
	select {
	case <-parked:
	case <-ctx.Done():
		return fmt.Errorf("answer parked fetches: %w", ctx.Err())
	}
	h.subMu.Lock()
	if !h.closed {
		h.closed = true
		close(h.jobs)
	}
	h.subMu.Unlock()
	select {
	case <-h.writerDone:
	case <-ctx.Done():
		return fmt.Errorf("commit queued messages: %w", ctx.Err())
	}
	h.cancel()
	return nil
}

// endAll ends every live session without announcing it (Shutdown).
func (h *Hub) endAll() {
	var detached []*Session
	h.mu.Lock()
	for _, s := range h.sessions {
		s.mu.Lock()
		if e, ok := h.forget(s); ok && e.conn == nil {
			detached = append(detached, s)
		}
		s.mu.Unlock()
	}
	h.mu.Unlock()
	for _, s := range detached {
		s.erase()
	}
}
