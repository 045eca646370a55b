package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"sync"
	"time"

	"librecord/crypto"
	"librecord/net"
	"librecord/net/chat"
)

// queueSize bounds the answers a connection may owe at once. The reader
// takes a slot before reading each frame's request and the writer gives it
// back once the answer is written, so answers produced elsewhere (acks
// after a commit, woken fetches) never wait for a slow peer, and a peer
// that does not read stops being read.
const queueSize = 256

// queueBytes bounds the answer bytes a connection owes its peer: past
// it, the reader stops reading and woken parked fetches wait, so a peer
// that asks for large answers and reads none costs about this much memory
// (plus two answers being built), not queueSize large answers.
const queueBytes = 1 << 20

// readBuffer is the size of a connection's read buffer: held by every
// connection, idle or not, so small; a frame line is at most 302 bytes
// and larger frames take a few reads.
const readBuffer = 1024

// brokenFramesLimit: the 3rd broken frame of a connection closes it.
const brokenFramesLimit = 3

// out is one envelope waiting for the writer.
type out struct {
	kind  byte          // crypto.KindSealed, KindPlainError, KindHello; 0 = none (flush marker)
	body  []byte        // JSON body, or the hello itself
	sess  *chat.Session // seals a KindSealed body
	close bool          // close the connection once written
	slot  bool          // gives back a reader slot once written
}

// conn is one TCP connection: a read loop that turns frames into requests
// and a write loop that seals and writes answers in order, each write
// under a deadline.
type conn struct {
	srv  *Server
	nc   stdnet.Conn
	peer chat.Peer
	addr string // peer.Addr

	slots      chan struct{}
	closed     chan struct{}
	closedCtx  context.Context // done once closed (AfterClose)
	closeCtx   context.CancelFunc
	closeOnce  sync.Once
	dispatched chan struct{} // a request's goroutine is done (read loop)
	loginTimer *time.Timer

	qmu sync.Mutex
	// pending are the answers waiting for the writer, in order; at most
	// queueSize (one per slot) plus the flush marker. A slice rather than
	// a channel of that capacity: an idle connection holds none.
	pending []out
	// writing is set while a writer goroutine runs: one is started when
	// an answer is queued and none runs, and it ends once the queue is
	// empty, so an idle connection has no writer and no stack for it.
	writing bool
	idle    chan struct{} // closed when a writer ends with nothing queued
	dead    bool          // closed and its writer gone: start no more
	queued  int           // body bytes pending, the one being written included
	room    chan struct{} // closed when queued drops from queueBytes or more
	large   chan struct{} // held by the one woken parked fetch waiting for room

	mu     sync.Mutex
	sess   *chat.Session
	state  int // stateDone, statePending or stateHeld (guarded by Server.mu)
	broken int // broken frames so far (read loop only)
	// refused counts the logins of this connection that did not log its
	// session in (the requests of a connection run one at a time).
	refused int
}

func newConn(s *Server, nc stdnet.Conn, peer chat.Peer) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		closedCtx: ctx, closeCtx: cancel,
		srv: s, nc: nc, peer: peer, addr: peer.Addr,
		idle:       make(chan struct{}),
		dispatched: make(chan struct{}),
		slots:      make(chan struct{}, queueSize),
		closed:     make(chan struct{}),
		room:       make(chan struct{}),
		large:      make(chan struct{}, 1),
	}
}

// Close closes the connection at once; answers not yet written are lost.
// It implements chat.Conn.
func (c *conn) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.closeCtx()
		c.nc.Close()
	})
}

// Finish has the writer close the connection once every answer queued
// so far is written. It implements chat.Conn.
func (c *conn) Finish() { c.flushAndClose() }

func (c *conn) session() *chat.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// logf logs a line about the connection: through the strangers' rate
// limit unless it carries a logged-in session.
func (c *conn) logf(level slog.Level, msg string, args ...any) {
	if s := c.session(); s != nil && s.LoggedIn() {
		c.srv.log.Log(context.Background(), level, msg, append(args, "pseudo", s.Pseudo())...)
		return
	}
	c.srv.hub.LogStranger(c.peer.Source, level, msg, args...)
}

func (c *conn) setSession(s *chat.Session) {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
}

// serve runs the connection: read loop here, write loop beside it, then
// teardown once both are done.
func (c *conn) serve() {
	defer c.srv.all.Done()
	c.loginTimer = time.AfterFunc(c.srv.cfg.LoginTimeout, func() {
		if s := c.session(); s == nil || !s.LoggedIn() {
			c.logf(slog.LevelInfo, "connection closed: not logged in in time", "addr", c.addr)
			c.Close()
		}
	})
	reason := c.readLoop()
	c.srv.readers.Done()
	if reason != nil {
		c.Close() // the peer is gone or broke the rules: no flush
	}
	<-c.closed // by the writer (a closing answer, a failed write) or above
	c.waitWriter()
	c.loginTimer.Stop()
	if s := c.session(); s != nil {
		c.srv.hub.Detach(s, c)
	}
	c.logf(slog.LevelInfo, "connection closed", "addr", c.addr)
	c.srv.remove(c)
}

// errStop ends the read loop of a connection closed while it waited for
// room to answer.
var errStop = errors.New("connection closed")

// readLoop reads frames until the connection ends. A nil return means the
// writer will close the connection (after a fatal error, or the shutdown
// flush); anything else means close now.
func (c *conn) readLoop() error {
	fr := net.NewFrameReader(bufio.NewReaderSize(c.nc, readBuffer), c.srv.cfg.MaxPortions)
	for {
		payload, portions, err := fr.Next()
		if err != nil {
			var fe *net.FrameError
			if !errors.As(err, &fe) {
				if c.stopping() {
					return nil
				}
				return err
			}
			if !c.reserve() {
				return c.stopReason()
			}
			c.broken++
			fatal := fe.Fatal || c.broken >= brokenFramesLimit
			c.logf(slog.LevelInfo, "broken frame", "addr", c.addr, "defect", fe.Msg, "closing", fatal)
			c.sendError(0, net.CodeFrame, fe.Msg, fatal)
			if fatal {
				return nil
			}
			continue
		}
		if !c.reserve() {
			return c.stopReason()
		}
		// The request runs on a goroutine of the hub's pool (the reader
		// waits for it), whose stack has grown with the crypto and SQLite
		// calls of earlier requests; the reader, idle in a read most of
		// its life, keeps a small one.
		c.srv.hub.Go(func() {
			c.dispatch(payload, portions)
			c.dispatched <- struct{}{}
		})
		<-c.dispatched
	}
}

// stopping reports whether Shutdown stopped the read loop.
func (c *conn) stopping() bool {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.srv.shutting
}

// stopReading makes the read loop return at its next read (Shutdown).
func (c *conn) stopReading() { c.nc.SetReadDeadline(time.Now()) }

// flushAndClose has the writer close the connection once every answer
// queued so far is written (Shutdown).
func (c *conn) flushAndClose() {
	c.push(out{close: true})
}

// reserve takes a slot for the next frame's answer; false if the
// connection closed or the server began shutting down while waiting for
// one (answers owed may be parked fetches that only Shutdown wakes).
func (c *conn) reserve() bool {
	if !c.waitRoom(c.srv.stopping) {
		return false
	}
	select {
	case c.slots <- struct{}{}:
		return true
	case <-c.closed:
		return false
	case <-c.srv.stopping:
		return false
	}
}

// stopReason is readLoop's result when reserve fails: flush on shutdown,
// close at once otherwise.
func (c *conn) stopReason() error {
	if c.stopping() {
		return nil
	}
	return errStop
}

// enqueue hands an answer to the writer. It never blocks.
func (c *conn) enqueue(o out) {
	o.slot = true
	c.push(o)
}

// push appends o to the writer's queue and starts a writer if none runs.
func (c *conn) push(o out) {
	c.qmu.Lock()
	c.queued += len(o.body)
	c.pending = append(c.pending, o)
	start := !c.writing && !c.dead
	c.writing = c.writing || start
	c.qmu.Unlock()
	if start {
		c.srv.hub.Go(c.writeLoop)
	}
}

// next returns the next queued answer; false once the connection closed
// or nothing is queued, and then the writer has ended.
func (c *conn) next() (out, bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	closed := false
	select {
	case <-c.closed:
		closed = true
	default:
	}
	if closed || len(c.pending) == 0 {
		c.writing = false
		close(c.idle)
		c.idle = make(chan struct{})
		return out{}, false
	}
	o := c.pending[0]
	c.pending[0] = out{}
	c.pending = c.pending[1:]
	if len(c.pending) == 0 {
		c.pending = nil // an idle connection keeps no array
	}
	return o, true
}

// waitWriter waits, once the connection is closed, until no writer runs,
// and keeps any from starting again.
func (c *conn) waitWriter() {
	for {
		c.qmu.Lock()
		if !c.writing {
			c.dead = true
			c.qmu.Unlock()
			return
		}
		idle := c.idle
		c.qmu.Unlock()
		<-idle
	}
}

func (c *conn) release() { <-c.slots }

// waitRoom waits until the connection owes less than queueBytes; false if
// it closed or stop was closed first.
func (c *conn) waitRoom(stop <-chan struct{}) bool {
	for {
		c.qmu.Lock()
		if c.queued < queueBytes {
			c.qmu.Unlock()
			return true
		}
		room := c.room
		c.qmu.Unlock()
		select {
		case <-room:
		case <-c.closed:
			return false
		case <-stop:
			return false
		}
	}
}

// written gives back the bytes of an answer once it is written.
func (c *conn) written(n int) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.queued >= queueBytes {
		close(c.room)
		c.room = make(chan struct{})
	}
	c.queued -= n
}

// sendError answers with an error, sealed when the connection has a
// session and plain otherwise (PROTOCOL.md 2.3).
func (c *conn) sendError(re int64, code, msg string, closeAfter bool) {
	body := net.ErrorBody(re, code, msg)
	if s := c.session(); s != nil {
		c.enqueue(out{kind: crypto.KindSealed, body: body, sess: s, close: closeAfter})
		return
	}
	c.enqueue(out{kind: crypto.KindPlainError, body: body, close: closeAfter})
}

func (c *conn) sendPlain(e *net.Error) {
	c.enqueue(out{kind: crypto.KindPlainError, body: e.Body()})
}

// writeLoop writes queued answers in order until none is left. A write
// that misses its deadline, or any write error, closes the connection.
func (c *conn) writeLoop() {
	ew := net.NewEnvelopeWriter(deadlineWriter{c.nc, c.srv.cfg.WriteTimeout})
	for {
		o, ok := c.next()
		if !ok {
			return
		}
		var err error
		switch o.kind {
		case crypto.KindSealed:
			err = ew.WriteSealed(o.sess.Channel(), o.body)
			if errors.Is(err, net.ErrChannelErased) {
				err = nil // the session ended: nothing more to say on it
			}
		case crypto.KindPlainError:
			err = ew.WriteEnvelope(crypto.PlainError(o.body))
		case crypto.KindHello:
			err = ew.WriteEnvelope(o.body)
		}
		if o.slot {
			c.written(len(o.body))
			c.release()
		}
		if err != nil {
			c.logf(slog.LevelInfo, "write failed", "addr", c.addr, "err", err)
			c.Close() // next ends the writer
			continue
		}
		if o.close {
			c.Close()
		}
	}
}

// deadlineWriter gives every write a deadline, so a peer that stops
// reading cannot hold a writer forever.
type deadlineWriter struct {
	nc      stdnet.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(b []byte) (int, error) {
	w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.nc.Write(b)
}

// dispatch acts on one decoded frame; its answer uses the slot the read
// loop reserved.
func (c *conn) dispatch(payload []byte, portions int) {
	kind, err := crypto.EnvelopeKind(payload)
	if err != nil || kind == crypto.KindPlainError {
		c.sendError(0, net.CodeFrame, envelopeDefect(payload), false)
		return
	}
	if kind == crypto.KindHello {
		c.hello(payload)
		return
	}
	if s := c.session(); s != nil {
		c.sealed(s, payload, portions)
		return
	}
	c.resume(payload)
}

func envelopeDefect(payload []byte) string {
	switch {
	case len(payload) < 2:
		return "envelope too short"
	case payload[1] != crypto.ProtocolVersion:
		return fmt.Sprintf("unsupported protocol version %d", payload[1])
	case payload[0] == crypto.KindPlainError:
		return "only the server sends plain errors"
	}
	return fmt.Sprintf("unknown envelope kind 0x%02x", payload[0])
}

// hello answers a client hello with fresh session keys (PROTOCOL.md 2.1).
func (c *conn) hello(payload []byte) {
	if c.session() != nil {
		c.sendError(0, net.CodeBadRequest, "hello on a connection that already has a session", false)
		return
	}
	peer, err := crypto.ParseClientHello(payload)
	if err != nil {
		c.sendError(0, net.CodeBadRequest, "malformed client hello", false)
		return
	}
	if !c.srv.admitHello(c) {
		c.srv.hub.LogStranger(c.peer.Source, slog.LevelWarn, "hello refused: too many connections not logged in", "addr", c.addr, "source", c.peer.Source.String())
		c.sendError(0, net.CodeUnavailable, "too many connections not logged in from your address: try again later", true)
		return
	}
	keys := crypto.NewSessionKeys()
	serverHello := keys.ServerHello(c.srv.identity, payload)
	ch := crypto.NewChannel(keys, peer)
	s, err := c.srv.hub.NewSession(ch, c.peer, c)
	if err != nil {
		ch.Erase()
		c.sendError(0, net.CodeBadRequest, "session key already in use: generate fresh keys", false)
		return
	}
	c.setSession(s)
	c.enqueue(out{kind: crypto.KindHello, body: serverHello})
}

// sealed opens an envelope of the connection's session and hands its
// request to the chat rules.
func (c *conn) sealed(s *chat.Session, payload []byte, portions int) {
	body, err := s.Channel().Open(payload)
	if errors.Is(err, crypto.ErrShortEnvelope) {
		c.sendError(0, net.CodeBadRequest, "sealed envelope shorter than its header", false)
		return
	}
	if err != nil {
		c.srv.hub.LogStranger(c.peer.Source, slog.LevelInfo, "envelope rejected", "addr", c.addr, "session", s.ID())
		c.sendError(0, net.CodeCrypto, "envelope rejected", false)
		return
	}
	c.srv.hub.Touch(s)
	req, perr := net.ParseRequest(body)
	if perr != nil {
		c.enqueue(out{kind: crypto.KindSealed, body: perr.Body(), sess: s})
		return
	}
	c.srv.hub.Handle(s, req, portions, &reply{c: c, sess: s})
	if req.Op == net.OpLogin {
		if s.LoggedIn() {
			c.srv.loggedIn(c)
		} else {
			c.pauseAfterRefusedLogin()
		}
	}
}

// maxPauseDoublings caps the pause after refused logins at 16 times
// Config.LoginPause.
const maxPauseDoublings = 4

// loginPause is the pause after the nth refused login of a connection:
// first, doubling with each further one, capped; 0 when first is 0.
func loginPause(first time.Duration, n int) time.Duration {
	if first <= 0 || n < 1 {
		return 0
	}
	return first << min(n-1, maxPauseDoublings)
}

// pauseAfterRefusedLogin holds the read loop, which waits for the
// request it handed out, after a login that was answered with anything
// but connected (auth, rate_limited, ...): the answer goes out at once,
// the connection's next envelope is read after loginPause. A connection
// not logged in thus gets a bounded number of refusals before its login
// deadline instead of one per round trip (SECURITY.md).
func (c *conn) pauseAfterRefusedLogin() {
	c.refused++
	d := loginPause(c.srv.cfg.LoginPause, c.refused)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.closed:
	case <-c.srv.stopping:
	}
}

// resume handles a sealed envelope on a connection with no session: it
// must be a resume of a live session (PROTOCOL.md 3.5). Every answer but
// success is plain.
func (c *conn) resume(payload []byte) {
	signer, err := crypto.EnvelopeSignerID(payload)
	if err != nil {
		c.sendPlain(&net.Error{Code: net.CodeBadRequest, Message: "sealed envelope shorter than its header"})
		return
	}
	s := c.srv.hub.Lookup(signer)
	if s == nil {
		c.sendPlain(&net.Error{Code: net.CodeUnknownSession, Message: "no such session; start over with a hello and a login"})
		return
	}
	body, err := s.Channel().Open(payload)
	if err != nil {
		c.srv.hub.LogStranger(c.peer.Source, slog.LevelInfo, "envelope rejected", "addr", c.addr, "session", s.ID())
		c.sendPlain(&net.Error{Code: net.CodeCrypto, Message: "envelope rejected"})
		return
	}
	c.srv.hub.Touch(s)
	req, perr := net.ParseRequest(body)
	if perr != nil {
		c.sendPlain(perr)
		return
	}
	if req.Op != net.OpResume {
		c.sendPlain(&net.Error{Re: req.ID, Code: net.CodeBadRequest,
			Message: "the first envelope on a connection must be a hello or a resume"})
		return
	}
	old, e := c.srv.hub.Resume(s, c, c.peer, req.ID)
	if e != nil {
		e.Re = req.ID
		c.sendPlain(e)
		return
	}
	c.setSession(s)
	if old != nil && old != chat.Conn(c) {
		old.Close()
	}
	if s.LoggedIn() {
		c.srv.loggedIn(c)
	}
	c.enqueue(out{kind: crypto.KindSealed, body: (&net.Response{Op: net.OpResumed, Re: req.ID, Status: net.StatusConnected}).Encode(), sess: s})
}

// reply is the chat.Reply of one request: its answer goes to the
// connection the request came on, in the slot reserved for it.
type reply struct {
	c    *conn
	sess *chat.Session
	once sync.Once
}

func (r *reply) Send(body []byte) {
	r.once.Do(func() { r.c.enqueue(out{kind: crypto.KindSealed, body: body, sess: r.sess}) })
}

func (r *reply) SendClose(body []byte) {
	r.once.Do(func() { r.c.enqueue(out{kind: crypto.KindSealed, body: body, sess: r.sess, close: true}) })
}

func (r *reply) Drop() { r.once.Do(r.c.release) }

func (r *reply) Done() <-chan struct{} { return r.c.closed }

func (r *reply) AfterClose(f func()) func() bool { return context.AfterFunc(r.c.closedCtx, f) }

// Room lets one woken parked fetch at a time wait until the connection
// owes less than queueBytes, so that fetches woken together do not all
// queue a large answer at once.
func (r *reply) Room() func() {
	c := r.c
	select {
	case c.large <- struct{}{}:
	case <-c.closed:
		return nil
	}
	if !c.waitRoom(nil) {
		<-c.large
		return nil
	}
	return func() { <-c.large }
}
