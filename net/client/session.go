package client

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	stdnet "net"
	"sync"
	"sync/atomic"
	"time"

	"librecord/crypto"
	lnet "librecord/net"
)

// DefaultLoginTimeout is how long a login waits for its answer by
// default. It is longer than the reply margin: the server hashes the
// password with Argon2id (tens of milliseconds each, a few at a time), so
// when hundreds of clients log in at once (after a restart) the last ones
// wait seconds in its queue. PROTOCOL.md 5 only bounds fetches.
const DefaultLoginTimeout = 30 * time.Second

// ErrConnLost is returned for a request whose connection died before its
// answer came, or that went unanswered past its deadline (PROTOCOL.md 5:
// a fetch unanswered within its wait plus the reply margin means the
// connection is dead; a login has Config.LoginTimeout). The session may
// be resumed.
var ErrConnLost = errors.New("connection lost")

// ErrNotConnected is returned for a request made while the session has no
// connection (after a loss, before Resume).
var ErrNotConnected = errors.New("not connected")

// errClosedByPeer is how a connection the server closed (or that broke
// while reading) ends; requests on it fail with ErrConnLost.
var errClosedByPeer = fmt.Errorf("%w: closed by the server", ErrConnLost)

// ErrClosed is returned once the session's keys are erased (Bye or Close).
var ErrClosed = errors.New("session closed")

// ServerError is an error answer of the server (PROTOCOL.md 3.7).
type ServerError struct {
	Code    string
	Message string
}

// Error shows the server's words through Printable, cut to a few hundred
// bytes: the message and the code come from the server.
func (e *ServerError) Error() string {
	if e.Message == "" {
		return "server error " + shown(e.Code)
	}
	return shown(e.Message) + " (" + shown(e.Code) + ")"
}

// IsCode reports whether err is a ServerError with the given code.
func IsCode(err error, code string) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Code == code
}

// ProtocolError is returned when the server's answer breaks PROTOCOL.md
// (a wrong status, an answer of the wrong kind). It is not retried.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "protocol violation by server: " + shown(e.Msg) }

// Config says where and how to connect. Zero durations take the defaults.
type Config struct {
	// Addr is host:port, used as given to key the known-servers file.
	Addr string
	// CheckIdentity decides whether the server's long-lived identity key
	// is acceptable for Addr (section 6). Required.
	CheckIdentity func(addr string, identity ed25519.PublicKey) error
	// MaxPortions bounds the frames read from the server.
	MaxPortions int
	// DialTimeout bounds the TCP connect and the hello exchange.
	DialTimeout time.Duration
	// Dial, when set, opens the connection instead of a TCP connect to
	// Addr (another transport: a WebSocket as a net.Conn carrying the
	// section 1 byte stream). Its ctx ends after DialTimeout. Addr still
	// names the server in errors and to CheckIdentity.
	Dial func(ctx context.Context) (stdnet.Conn, error)
	// ReplyMargin is how long an answer may take beyond a fetch's wait
	// before the connection counts as dead (PROTOCOL.md 5: 5 s). It
	// bounds every request but login.
	ReplyMargin time.Duration
	// LoginTimeout is how long a login waits for its answer before the
	// connection counts as dead (default DefaultLoginTimeout; never less
	// than ReplyMargin).
	LoginTimeout time.Duration
	// FreshFor is how long after its hello a connection not logged in yet
	// is still used for a login (default DefaultFreshFor). The server
	// closes such a connection after its login timeout (PROTOCOL.md 4:
	// 10 s), while the person may take any time to answer the trust
	// question and type the password: an older one, or one the server
	// already closed, is replaced by a new connection and hello first.
	FreshFor time.Duration
	// ResumeBackoff is the pause between two resume attempts of Passwd
	// (default DefaultResumeBackoff).
	ResumeBackoff time.Duration
}

// DefaultResumeBackoff is Config.ResumeBackoff by default.
const DefaultResumeBackoff = 500 * time.Millisecond

// DefaultFreshFor is Config.FreshFor by default: half the server's
// default login timeout, leaving it time to hash the password.
const DefaultFreshFor = 5 * time.Second

func (c *Config) defaults() {
	if c.MaxPortions <= 0 {
		c.MaxPortions = lnet.DefaultMaxPortions
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.ReplyMargin <= 0 {
		c.ReplyMargin = 5 * time.Second
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	c.LoginTimeout = max(c.LoginTimeout, c.ReplyMargin)
	if c.FreshFor <= 0 {
		c.FreshFor = DefaultFreshFor
	}
	if c.ResumeBackoff <= 0 {
		c.ResumeBackoff = DefaultResumeBackoff
	}
}

// Bounds on the timing a server announces at login (PROTOCOL.md 3.1 and
// 5): Login clamps poll_ms and session_timeout_ms into them, so that a
// hostile or broken server can make the client neither fetch hundreds of
// times a second nor try to resume for hours. A value missing or not
// positive takes the protocol's default.
const (
	MinPoll               = time.Second
	MaxPoll               = time.Minute
	DefaultPoll           = 3 * time.Second
	MinSessionTimeout     = 10 * time.Second
	MaxSessionTimeout     = 10 * time.Minute
	DefaultSessionTimeout = 30 * time.Second
)

// clampMS turns an announced number of milliseconds into a duration in
// [lo, hi], or def when it is missing or not positive.
func clampMS(ms int64, def, lo, hi time.Duration) time.Duration {
	if ms <= 0 {
		return def
	}
	if ms > int64(hi/time.Millisecond) {
		return hi
	}
	return max(time.Duration(ms)*time.Millisecond, lo)
}

// LoginInfo is what the server announced at login (PROTOCOL.md 3.1), its
// names checked and its timing clamped (MinPoll ... MaxSessionTimeout).
type LoginInfo struct {
	Pseudo         string
	Salons         []string
	SessionTimeout time.Duration
	Poll           time.Duration
}

// Ack is the answer to a send (PROTOCOL.md 3.2).
type Ack struct {
	Msg      int64
	Portions int
}

// FetchRequest is a fetch (PROTOCOL.md 3.3). Before is a cursor when not
// 0; After is one when HasAfter (after 0 is "from the first message").
// Wait is only sent with After.
type FetchRequest struct {
	Salon    string
	Limit    int
	Before   int64
	After    int64
	HasAfter bool
	Wait     time.Duration
}

// Messages is the answer to a fetch, oldest first.
type Messages struct {
	Salon    string
	More     bool
	Messages []lnet.Message
}

// Session is one protocol session: its keys and counters, and the
// connection currently carrying it (none after a loss, until Resume).
// Its methods are safe for concurrent use.
type Session struct {
	cfg Config

	// wmu orders sealing and writing: the server refuses a seq lower than
	// one it accepted, so two envelopes must hit the wire in seal order.
	wmu    sync.Mutex
	nextID int64

	// keyMu guards erasing the keys against their use; the channel
	// itself is safe for concurrent use.
	keyMu  sync.RWMutex
	ch     *crypto.Channel
	erased bool

	mu   sync.Mutex
	conn *conn // nil while disconnected

	// loginMu serialises Login; loggedIn is set once one succeeded, and
	// helloAt is when the current connection was opened (before login).
	loginMu  sync.Mutex
	loggedIn bool
	helloAt  time.Time

	// resumeFor is how long the session may be resumed after a loss:
	// the announced session timeout minus 5 s (PROTOCOL.md 5).
	resumeFor atomic.Int64 // a time.Duration
}

// conn is one TCP connection carrying the session, with its reader
// goroutine and the requests waiting for an answer on it.
type conn struct {
	c       stdnet.Conn
	mu      sync.Mutex
	pending map[int64]chan answer
	err     error // set once, when the connection dies
	done    chan struct{}
}

// answer is what a request gets back: a parsed answer body, or the
// protocol violation that made it unreadable.
type answer struct {
	r   *lnet.Response
	err error // a *ProtocolError
}

// asError returns the ServerError of an error answer, nil otherwise.
func asError(r *lnet.Response) error {
	if r.Op != lnet.OpError {
		return nil
	}
	return &ServerError{Code: r.Code, Message: r.Message}
}

// Dial connects to cfg.Addr, exchanges hellos and checks the server's
// identity with cfg.CheckIdentity. The session is not logged in yet; Login
// may be called any time later (it opens a new connection if the server
// closed this one meanwhile, see Config.FreshFor).
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	cfg.defaults()
	if cfg.CheckIdentity == nil {
		return nil, errors.New("client: no identity check configured")
	}
	// The server's login clock starts when the connection opens, before
	// the identity check (which may wait for the person's answer).
	start := time.Now()
	c, fr, ch, err := handshake(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg, ch: ch, helloAt: start}
	s.attach(c, fr)
	return s, nil
}

// handshake opens a connection with fresh session keys, exchanges hellos
// and checks the server's identity.
func handshake(ctx context.Context, cfg Config) (stdnet.Conn, *lnet.FrameReader, *crypto.Channel, error) {
	keys := crypto.NewSessionKeys()
	c, err := dialTCP(ctx, cfg)
	if err != nil {
		keys.Erase()
		return nil, nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			keys.Erase()
			c.Close()
		}
	}()
	c.SetDeadline(time.Now().Add(cfg.DialTimeout))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	hello := keys.ClientHello()
	if err := lnet.WriteFrame(c, hello); err != nil {
		return nil, nil, nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	fr := lnet.NewFrameReader(bufio.NewReader(c), cfg.MaxPortions)
	payload, _, err := fr.Next()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to %s: read server hello: %w", cfg.Addr, err)
	}
	if kind, err := crypto.EnvelopeKind(payload); err == nil && kind == crypto.KindPlainError {
		return nil, nil, nil, plainError(payload)
	}
	peer, identity, err := crypto.ParseServerHello(payload, hello)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	if err := cfg.CheckIdentity(cfg.Addr, identity); err != nil {
		return nil, nil, nil, err
	}
	if !stop() {
		return nil, nil, nil, ctx.Err()
	}
	c.SetDeadline(time.Time{})
	ok = true
	return c, fr, crypto.NewChannel(keys, peer), nil
}

// rehello replaces the connection of a session not logged in yet with a
// new one: new session keys, new hellos, the server's identity checked
// again (it is pinned by now: a different key is refused). The old keys
// are erased.
func (s *Session) rehello(ctx context.Context) error {
	s.Disconnect()
	if s.isErased() {
		return ErrClosed
	}
	start := time.Now()
	c, fr, ch, err := handshake(ctx, s.cfg)
	if err != nil {
		return err
	}
	s.keyMu.Lock()
	if s.erased {
		s.keyMu.Unlock()
		ch.Erase()
		c.Close()
		return ErrClosed
	}
	old := s.ch
	s.ch = ch
	s.keyMu.Unlock()
	old.Erase()
	s.helloAt = start
	s.attach(c, fr)
	return nil
}

func dialTCP(ctx context.Context, cfg Config) (stdnet.Conn, error) {
	if cfg.Dial != nil {
		ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		defer cancel()
		c, err := cfg.Dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
		}
		return c, nil
	}
	d := stdnet.Dialer{Timeout: cfg.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	return c, nil
}

// plainError decodes a plain error envelope into a ServerError.
func plainError(payload []byte) error {
	body, err := crypto.ParsePlainError(payload)
	var r *lnet.Response
	if err == nil {
		r, err = lnet.ParseResponse(body)
	}
	if err != nil || r.Op != lnet.OpError {
		return &ProtocolError{Msg: "malformed plain error"}
	}
	return &ServerError{Code: r.Code, Message: r.Message}
}

// attach makes c the session's connection and starts reading it.
func (s *Session) attach(c stdnet.Conn, fr *lnet.FrameReader) {
	cn := &conn{c: c, pending: map[int64]chan answer{}, done: make(chan struct{})}
	s.mu.Lock()
	s.conn = cn
	s.mu.Unlock()
	go s.read(cn, fr)
}

// read dispatches the answers arriving on cn until it dies.
func (s *Session) read(cn *conn, fr *lnet.FrameReader) {
	for {
		payload, _, err := fr.Next()
		if err != nil {
			s.drop(cn, errClosedByPeer)
			return
		}
		if kind, err := crypto.EnvelopeKind(payload); err != nil || kind != crypto.KindSealed {
			// The server only sends plain envelopes on connections
			// without a session: this one is confused. Start over.
			s.drop(cn, ErrConnLost)
			return
		}
		body, err := s.open(payload)
		if err != nil {
			// PROTOCOL.md 2.2: drop it and close the connection.
			s.drop(cn, ErrConnLost)
			return
		}
		r, err := lnet.ParseResponse(body)
		if r == nil {
			s.drop(cn, ErrConnLost)
			return
		}
		if r.Re == 0 {
			// An error without re (crypto, frame, bad_request) means a
			// request of ours was dropped unanswered: the connection can
			// no longer be trusted to answer. Resuming starts clean.
			s.drop(cn, ErrConnLost)
			return
		}
		a := answer{r: r}
		if err != nil {
			a.err = &ProtocolError{Msg: err.Error()}
		}
		cn.mu.Lock()
		ch := cn.pending[r.Re]
		delete(cn.pending, r.Re)
		cn.mu.Unlock()
		if ch != nil {
			ch <- a
		}
	}
}

func (s *Session) open(payload []byte) ([]byte, error) {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	if s.erased {
		return nil, ErrClosed
	}
	return s.ch.Open(payload)
}

// seal seals body, or returns ErrClosed once the keys are erased.
func (s *Session) seal(body []byte) ([]byte, error) {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	if s.erased {
		return nil, ErrClosed
	}
	return s.ch.Seal(body), nil
}

// drop kills cn (if it is still alive) and fails its waiting requests.
func (s *Session) drop(cn *conn, err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	pending := cn.pending
	cn.pending = nil
	close(cn.done)
	cn.mu.Unlock()
	cn.c.Close()
	for _, ch := range pending {
		close(ch)
	}
	s.mu.Lock()
	if s.conn == cn {
		s.conn = nil
	}
	s.mu.Unlock()
}

// Connected reports whether the session currently has a live connection.
func (s *Session) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil
}

// Disconnect closes the current connection (if any) without ending the
// session: the server keeps it for its timeout, and Resume may pick it up.
func (s *Session) Disconnect() {
	s.mu.Lock()
	cn := s.conn
	s.mu.Unlock()
	if cn != nil {
		s.drop(cn, ErrConnLost)
	}
}

// do sends req on the current connection and waits for its answer, for at
// most timeout; past that the connection is dropped as dead and
// ErrConnLost returned. req gets the next id unless it has one (a retry).
func (s *Session) do(ctx context.Context, req lnet.Request, timeout time.Duration) (*lnet.Response, error) {
	s.mu.Lock()
	cn := s.conn
	s.mu.Unlock()
	if cn == nil {
		if s.isErased() {
			return nil, ErrClosed
		}
		return nil, ErrNotConnected
	}
	ch := make(chan answer, 1)

	s.wmu.Lock()
	if req.ID == 0 {
		s.nextID++
		req.ID = s.nextID
	}
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		s.wmu.Unlock()
		return nil, ErrConnLost
	}
	cn.pending[req.ID] = ch
	cn.mu.Unlock()
	env, err := s.seal(req.Encode())
	if err != nil {
		s.wmu.Unlock()
		return nil, err
	}
	cn.c.SetWriteDeadline(time.Now().Add(timeout))
	err = lnet.WriteFrame(cn.c, env)
	s.wmu.Unlock()
	if err != nil {
		s.drop(cn, ErrConnLost)
		return nil, ErrConnLost
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, ErrConnLost
		}
		if a.err != nil {
			return nil, a.err
		}
		if err := asError(a.r); err != nil {
			return nil, err
		}
		return a.r, nil
	case <-timer.C:
		s.drop(cn, ErrConnLost)
		return nil, ErrConnLost
	case <-ctx.Done():
		cn.mu.Lock()
		if cn.pending != nil {
			delete(cn.pending, req.ID)
		}
		cn.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (s *Session) isErased() bool {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	return s.erased
}

func expectOp(r *lnet.Response, op string) error {
	if r.Op != op {
		return &ProtocolError{Msg: fmt.Sprintf("answer %q to a request expecting %q", r.Op, op)}
	}
	return nil
}

// Login logs the session in (PROTOCOL.md 3.1). A wrong password is a
// ServerError of code "auth"; the session stays usable for another try.
// A pseudo or salon name in the answer that is not a valid name is a
// *ProtocolError; poll_ms and session_timeout_ms are clamped (MinPoll ...).
// The answer may take up to Config.LoginTimeout (the server may be hashing
// many passwords at once), not only the reply margin.
//
// Login may come long after Dial (a person answering prompts): when the
// connection is gone or older than Config.FreshFor, the server has closed
// it or soon will (its login timeout), so Login first opens a new one with
// new keys and checks the server's identity again. It does so once more if
// the server closes the connection before answering.
func (s *Session) Login(ctx context.Context, password string) (LoginInfo, error) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if s.loggedIn {
		return s.login(ctx, password)
	}
	rehelloed := false
	s.mu.Lock()
	cn := s.conn
	s.mu.Unlock()
	if cn == nil || time.Since(s.helloAt) >= s.cfg.FreshFor {
		if err := s.rehello(ctx); err != nil {
			return LoginInfo{}, err
		}
		rehelloed = true
	}
	for {
		s.mu.Lock()
		cn = s.conn
		s.mu.Unlock()
		info, err := s.login(ctx, password)
		if err == nil {
			s.loggedIn = true
			return info, nil
		}
		if rehelloed || cn == nil || !errors.Is(err, ErrConnLost) && !errors.Is(err, ErrNotConnected) {
			return info, err
		}
		cn.mu.Lock()
		byPeer := cn.err == errClosedByPeer
		cn.mu.Unlock()
		if !byPeer {
			return info, err
		}
		// The login timeout struck as the password went out.
		if err := s.rehello(ctx); err != nil {
			return LoginInfo{}, err
		}
		rehelloed = true
	}
}

func (s *Session) login(ctx context.Context, password string) (LoginInfo, error) {
	r, err := s.do(ctx, lnet.Request{Op: lnet.OpLogin, Password: password}, s.cfg.LoginTimeout)
	if err != nil {
		return LoginInfo{}, err
	}
	if err := expectOp(r, lnet.OpConnected); err != nil {
		return LoginInfo{}, err
	}
	if r.Status != lnet.StatusConnected {
		return LoginInfo{}, &ProtocolError{Msg: fmt.Sprintf("login status %q, want %q", r.Status, lnet.StatusConnected)}
	}
	info := LoginInfo{
		Pseudo:         r.Pseudo,
		Salons:         r.Salons,
		SessionTimeout: clampMS(r.SessionTimeoutMS, DefaultSessionTimeout, MinSessionTimeout, MaxSessionTimeout),
		Poll:           clampMS(r.PollMS, DefaultPoll, MinPoll, MaxPoll),
	}
	if !lnet.ValidName(r.Pseudo) {
		return LoginInfo{}, &ProtocolError{Msg: "the login answer's pseudo is not a valid name"}
	}
	for _, name := range info.Salons {
		if !lnet.ValidName(name) {
			return LoginInfo{}, &ProtocolError{Msg: "the login answer lists a salon whose name is not valid"}
		}
	}
	s.resumeFor.Store(int64(info.SessionTimeout - 5*time.Second))
	return info, nil
}

// Passwd changes the logged-in user's password (PROTOCOL.md 3.8): current
// is checked by the server, which draws the new password and returns it
// here, once. Show it to the person (through nothing that keeps it, such
// as an input history) and tell them to store it: from now on the old
// password is refused and the user's other sessions end; this session
// goes on.
//
// A wrong current password is a ServerError of code "auth" (it counts as
// a failed login of this address, and past the server's limit the answer
// is "rate_limited" whatever the password); the session stays logged in.
//
// The password may have changed even when its answer never came, so a
// lost connection does not fail Passwd: it resumes the session (pausing
// Config.ResumeBackoff between attempts, for as long as the session can
// be resumed: the announced session timeout minus 5 s) and sends the
// same request with the same id, which the server answers with the same
// new password. Passwd fails with ErrConnLost only when that window ends
// or ctx is done; the password may then have changed, and the session
// is lost: the person must ask the host for a new one (`librecord user
// reset-password`). Meanwhile other requests of the session get
// ErrNotConnected; a caller that resumes the session itself (a poller)
// may go on doing so: Passwd resends on whatever connection the session
// has, and only resumes when it has none.
func (s *Session) Passwd(ctx context.Context, current string) (string, error) {
	s.wmu.Lock()
	s.nextID++
	req := lnet.Request{Op: lnet.OpPasswd, ID: s.nextID, Password: current}
	s.wmu.Unlock()
	window := time.Duration(s.resumeFor.Load())
	if window <= 0 {
		window = DefaultSessionTimeout - 5*time.Second
	}
	var deadline time.Time // set at the first loss
	for {
		r, err := s.do(ctx, req, s.cfg.LoginTimeout)
		if err == nil {
			if err := expectOp(r, lnet.OpPasswd); err != nil {
				return "", err
			}
			if crypto.CheckPassword(r.Password) != nil {
				return "", &ProtocolError{Msg: "the passwd answer's password is not a usable password"}
			}
			return r.Password, nil
		}
		if !errors.Is(err, ErrConnLost) && !errors.Is(err, ErrNotConnected) {
			return "", err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(window)
		}
		if err := s.resumeUntil(ctx, deadline); err != nil {
			return "", err
		}
	}
}

// resumeUntil resumes the session, trying again every
// Config.ResumeBackoff until deadline. It gives up at once when the
// server no longer knows the session or the keys are erased. A session
// that another caller resumed meanwhile is left as it is.
func (s *Session) resumeUntil(ctx context.Context, deadline time.Time) error {
	for {
		if s.Connected() {
			return nil
		}
		err := s.Resume(ctx)
		if err == nil || errors.Is(err, ErrClosed) || IsCode(err, lnet.CodeUnknownSession) {
			return err
		}
		var pe *ProtocolError
		if errors.As(err, &pe) {
			return err
		}
		if time.Until(deadline) < s.cfg.ResumeBackoff {
			return fmt.Errorf("%w: could not resume: %w", ErrConnLost, err)
		}
		t := time.NewTimer(s.cfg.ResumeBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Send sends text to salon with the client message id cid (PROTOCOL.md
// 3.2). Re-sending the same cid after a lost answer is safe.
func (s *Session) Send(ctx context.Context, salon, text, cid string) (Ack, error) {
	r, err := s.do(ctx, lnet.Request{Op: lnet.OpSend, Salon: salon, Text: text, Cid: cid}, s.cfg.ReplyMargin)
	if err != nil {
		return Ack{}, err
	}
	if err := expectOp(r, lnet.OpAck); err != nil {
		return Ack{}, err
	}
	return Ack{Msg: r.Msg, Portions: r.Portions}, nil
}

// Fetch fetches messages (PROTOCOL.md 3.3). With After and Wait set the
// server may hold the answer up to Wait. A message whose pseudo is not a
// valid name (empty for a system message) makes the answer a
// *ProtocolError. Texts and times are as the server sent them: show them
// through Printable.
func (s *Session) Fetch(ctx context.Context, f FetchRequest) (Messages, error) {
	req := lnet.Request{Op: lnet.OpFetch, Salon: f.Salon, Limit: f.Limit,
		Before: f.Before, HasBefore: f.Before != 0, After: f.After, HasAfter: f.HasAfter}
	var wait time.Duration
	if f.HasAfter && f.Wait > 0 {
		req.WaitMS = int(f.Wait.Milliseconds())
		wait = f.Wait
	}
	r, err := s.do(ctx, req, wait+s.cfg.ReplyMargin)
	if err != nil {
		return Messages{}, err
	}
	if err := expectOp(r, lnet.OpMessages); err != nil {
		return Messages{}, err
	}
	for _, m := range r.Messages {
		// A system message has no author (its pseudo is "").
		if !lnet.ValidName(m.Pseudo) && !(m.System && m.Pseudo == "") {
			return Messages{}, &ProtocolError{Msg: fmt.Sprintf("message %d has a pseudo that is not a valid name", m.ID)}
		}
	}
	return Messages{Salon: r.Salon, More: r.More, Messages: r.Messages}, nil
}

// Salons lists the salons the user may open with their newest message id.
// A name that is not a valid name makes the answer a *ProtocolError.
func (s *Session) Salons(ctx context.Context) ([]lnet.SalonInfo, error) {
	r, err := s.do(ctx, lnet.Request{Op: lnet.OpSalons}, s.cfg.ReplyMargin)
	if err != nil {
		return nil, err
	}
	if err := expectOp(r, lnet.OpSalons); err != nil {
		return nil, err
	}
	out := r.SalonList
	for _, in := range out {
		if !lnet.ValidName(in.Name) {
			return nil, &ProtocolError{Msg: "the salons answer lists a salon whose name is not valid"}
		}
	}
	return out, nil
}

// Who lists the users with a live session who may open salon. A pseudo
// that is not a valid name makes the answer a *ProtocolError.
func (s *Session) Who(ctx context.Context, salon string) ([]string, error) {
	r, err := s.do(ctx, lnet.Request{Op: lnet.OpWho, Salon: salon}, s.cfg.ReplyMargin)
	if err != nil {
		return nil, err
	}
	if err := expectOp(r, lnet.OpWho); err != nil {
		return nil, err
	}
	for _, p := range r.Pseudos {
		if !lnet.ValidName(p) {
			return nil, &ProtocolError{Msg: "the who answer lists a pseudo that is not a valid name"}
		}
	}
	return r.Pseudos, nil
}

// Resume carries the session over a new TCP connection (PROTOCOL.md 3.5),
// closing the current one if any. When the server no longer knows the
// session it returns a ServerError of code "unknown_session": erase the
// keys and log in anew.
func (s *Session) Resume(ctx context.Context) error {
	s.Disconnect()
	if s.isErased() {
		return ErrClosed
	}
	c, err := dialTCP(ctx, s.cfg)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	c.SetDeadline(time.Now().Add(s.cfg.ReplyMargin))
	s.wmu.Lock()
	s.nextID++
	id := s.nextID
	env, err := s.seal((&lnet.Request{Op: lnet.OpResume, ID: id}).Encode())
	if err == nil {
		err = lnet.WriteFrame(c, env)
	}
	s.wmu.Unlock()
	if errors.Is(err, ErrClosed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	fr := lnet.NewFrameReader(bufio.NewReader(c), s.cfg.MaxPortions)
	payload, _, err := fr.Next()
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	switch kind, err := crypto.EnvelopeKind(payload); {
	case err == nil && kind == crypto.KindPlainError:
		return plainError(payload)
	case err != nil || kind != crypto.KindSealed:
		return &ProtocolError{Msg: "resume answered with an unknown envelope"}
	}
	body, err := s.open(payload)
	if err != nil {
		return &ProtocolError{Msg: "resume answer failed authentication"}
	}
	r, err := lnet.ParseResponse(body)
	if err != nil {
		return &ProtocolError{Msg: "resume answer is not an answer body"}
	}
	if err := asError(r); err != nil {
		return err
	}
	if r.Op != lnet.OpResumed || r.Re != id {
		return &ProtocolError{Msg: fmt.Sprintf("resume answered with %q", r.Op)}
	}
	if r.Status != lnet.StatusConnected {
		return &ProtocolError{Msg: fmt.Sprintf("resume status %q, want %q", r.Status, lnet.StatusConnected)}
	}
	c.SetDeadline(time.Time{})
	stop()
	s.attach(c, fr)
	ok = true
	return nil
}

// Bye ends the session (PROTOCOL.md 3.6) and erases its keys, whether or
// not the server answered.
func (s *Session) Bye(ctx context.Context) error {
	_, err := s.do(ctx, lnet.Request{Op: lnet.OpBye}, s.cfg.ReplyMargin)
	s.Close()
	if errors.Is(err, ErrNotConnected) {
		return nil
	}
	return err
}

// Close drops the connection and erases the session keys without telling
// the server (it forgets the session after its timeout).
func (s *Session) Close() {
	s.Disconnect()
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if !s.erased {
		s.erased = true
		s.ch.Erase()
	}
}
