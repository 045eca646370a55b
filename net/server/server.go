// Package server is the server end of the Librecord wire (PROTOCOL.md
// sections 1 to 4): it accepts TCP connections, reads frames, answers
// hellos, opens and seals envelopes, tracks which session a connection
// carries, and hands every request to the chat rules (package chat). It
// enforces the connection-level limits: total and not-yet-logged-in
// connections (in all and per source), the login timeout, broken frames
// and write deadlines.
//
// Use New, then Serve on a listener (or ServeConn for connections
// accepted elsewhere), then Shutdown.
package server

import (
	"context"
	"crypto/ed25519"
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

// Config holds the connection-level timings and limits and the chat
// rules' configuration. Every field is a flag of librecord serve.
type Config struct {
	LoginTimeout time.Duration // a connection not logged in this long after it opened is closed
	// LoginPause is how long a connection's next envelope waits to be
	// read after a login that did not log it in; it doubles with each
	// further one on that connection, up to 16 times. 0 = no pause.
	LoginPause   time.Duration
	WriteTimeout time.Duration // a peer that does not read an answer for this long is dropped
	MaxConns     int           // open connections; 0 = no limit
	MaxPending   int           // connections not logged in yet; 0 = no limit
	// MaxPendingPerSource caps the connections not logged in yet of one
	// source (an IPv4 address, an IPv6 /64); 0 = no limit.
	MaxPendingPerSource int
	MaxPortions         int         // portions per frame, read and written
	Chat                chat.Config // MaxBody is derived from MaxPortions by New
}

// DefaultConfig returns the protocol's defaults.
func DefaultConfig() Config {
	return Config{
		LoginTimeout: 10 * time.Second,
		LoginPause:   100 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
		MaxConns:     1000,
		MaxPending:   200,
		// A club behind one NAT, everyone logging in again after a restart.
		MaxPendingPerSource: 16,
		MaxPortions:         net.DefaultMaxPortions,
		Chat: chat.Config{
			SessionTimeout: 30 * time.Second,
			Poll:           3 * time.Second,
			LoginLimit:     5,
			LoginBlock:     20,
			LoginWindow:    time.Minute,
			MaxSessions:    10,
			MaxParked:      16,
			LogPerSource:   20,
			LogTotal:       600,
			SendRate:       20,
			SendBurst:      40,
			MaxMessage:     net.DefaultMaxMessage,
			MaxFetch:       net.DefaultMaxFetch,
		},
	}
}

// CheckLimits refuses limits under which the largest allowed send, or a
// fetch answer carrying the largest allowed message, could not fit in one
// frame (PROTOCOL.md section 1), and limits that make no sense.
func CheckLimits(cfg Config) error {
	c := cfg.Chat
	switch {
	case cfg.MaxPortions < 1:
		return errors.New("--max-portions must be at least 1")
	case c.MaxMessage < 1:
		return errors.New("--max-message must be at least 1")
	case c.MaxFetch < 1:
		return errors.New("--max-fetch must be at least 1")
	case c.SendRate < 0 || c.SendBurst < 0:
		return errors.New("--send-rate and --send-burst cannot be negative")
	case c.SendRate > 0 && c.SendBurst < 1:
		return errors.New("--send-burst must be at least 1 when --send-rate is set")
	case c.LoginLimit < 0:
		return errors.New("--login-limit cannot be negative")
	case cfg.LoginPause < 0:
		return errors.New("--login-pause cannot be negative")
	case c.SessionTimeout <= 0 || cfg.LoginTimeout <= 0 || cfg.WriteTimeout <= 0:
		return errors.New("--session-timeout, --login-timeout and --write-timeout must be positive")
	case c.LoginLimit > 0 && c.LoginWindow <= 0:
		return errors.New("--login-window must be positive")
	case c.Poll <= 0:
		return errors.New("--poll must be positive")
	case cfg.MaxConns < 0 || cfg.MaxPending < 0 || cfg.MaxPendingPerSource < 0:
		return errors.New("--max-conns, --max-pending and --max-pending-per-source cannot be negative")
	case c.LoginBlock < 0 || c.MaxSessions < 0 || c.MaxParked < 0 || c.LogPerSource < 0 || c.LogTotal < 0:
		return errors.New("--login-limit-48, --max-sessions-per-user, --max-parked, --log-per-source and --log-total cannot be negative")
	}
	room := net.MaxPayload(cfg.MaxPortions) - crypto.SealedOverhead
	send, answer := chat.LargestBodies(c.MaxMessage)
	if need := max(send, answer); need > room {
		return fmt.Errorf("--max-portions %d cannot carry a message of --max-message %d bytes in one frame "+
			"(needs %d portions): raise --max-portions or lower --max-message",
			cfg.MaxPortions, c.MaxMessage, net.EncodedPortions(need+crypto.SealedOverhead))
	}
	return nil
}

// Server accepts connections and serves the protocol on them.
type Server struct {
	hub      *chat.Hub
	identity ed25519.PrivateKey
	cfg      Config
	log      *slog.Logger

	mu        sync.Mutex
	listeners []stdnet.Listener
	conns     map[*conn]struct{}
	pending   int                         // connections not logged in yet, admitted
	sources   map[net.Source]*sourceConns // per source, while it has connections not logged in
	shutting  bool
	stopping  chan struct{} // closed when Shutdown begins

	readers sync.WaitGroup // connection read loops
	all     sync.WaitGroup // whole connections, teardown included
}

// New checks the limits and returns a server storing into store and
// proving its identity with identity.
func New(store chat.Store, identity ed25519.PrivateKey, cfg Config, log *slog.Logger) (*Server, error) {
	if err := CheckLimits(cfg); err != nil {
		return nil, err
	}
	cfg.Chat.MaxBody = net.MaxPayload(cfg.MaxPortions) - crypto.SealedOverhead
	return &Server{
		hub:      chat.New(store, cfg.Chat, log),
		identity: identity,
		cfg:      cfg,
		log:      log,
		conns:    map[*conn]struct{}{},
		sources:  map[net.Source]*sourceConns{},
		stopping: make(chan struct{}),
	}, nil
}

// ErrServerClosed is returned by Serve once Shutdown has begun.
var ErrServerClosed = errors.New("server closed")

// Serve accepts connections on ln until Shutdown; it then returns
// ErrServerClosed. It closes ln.
func (s *Server) Serve(ln stdnet.Listener) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			shutting := s.shutting
			s.mu.Unlock()
			if shutting {
				return ErrServerClosed
			}
			var ne stdnet.Error
			if errors.As(err, &ne) && ne.Timeout() || acceptRetryable(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Error("accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		s.ServeConn(nc)
	}
}

// sourceConns counts one source's connections not logged in: admitted
// ones (pending) and those that came past its cap and wait for their
// first envelope to be decided (held, PROTOCOL.md section 4).
type sourceConns struct {
	pending, held int
}

// The states of a connection not logged in (guarded by Server.mu).
const (
	stateDone    = iota // logged in (or resumed a logged-in session), or gone
	statePending        // counted in Server.pending and its source's pending
	stateHeld           // past a cap at accept: decided at its first envelope
)

// peerOf is where a connection comes from, taken from its RemoteAddr:
// the one place the server derives a peer's source. A transport that
// wraps connections (WebSocket) hands ServeConn a net.Conn whose
// RemoteAddr is the real peer.
func peerOf(nc stdnet.Conn) chat.Peer {
	ra := nc.RemoteAddr()
	if ra == nil {
		return chat.Peer{Addr: "unknown"}
	}
	return chat.Peer{Addr: ra.String(), Source: net.SourceOfAddr(ra)}
}

// ServeConn serves one connection accepted elsewhere (another transport)
// with the same limits as the connections Serve accepts. It returns at
// once: the connection runs in its own goroutines. It closes nc if the
// server is shutting down.
func (s *Server) ServeConn(nc stdnet.Conn) {
	peer := peerOf(nc)
	s.mu.Lock()
	switch ok, why := s.admit(peer.Source); {
	case ok:
	case why == refusedShutting:
		s.mu.Unlock()
		nc.Close()
		return
	case why == refusedFull:
		s.mu.Unlock()
		s.hub.LogStranger(peer.Source, slog.LevelWarn, "connection refused: server full", "addr", peer.Addr)
		go s.refuse(nc, "server full: try again later")
		return
	default:
		s.mu.Unlock()
		s.hub.LogStranger(peer.Source, slog.LevelWarn, "connection refused: too many from this source", "addr", peer.Addr)
		go s.refuse(nc, "too many connections not logged in from your address: try again later")
		return
	}
	src := s.sources[peer.Source]
	if src == nil {
		src = &sourceConns{}
		s.sources[peer.Source] = src
	}
	state := statePending
	if !s.room(src) {
		// Past a cap: a resume may still come (it is a session's, never
		// pending); a hello will be refused unless room is made by then.
		// Held connections of one source are capped too (admit).
		state = stateHeld
	}
	c := newConn(s, nc, peer)
	c.state = state
	if state == statePending {
		s.pending++
		src.pending++
	} else {
		src.held++
	}
	s.conns[c] = struct{}{}
	s.readers.Add(1)
	s.all.Add(1)
	s.mu.Unlock()
	s.hub.LogStranger(peer.Source, slog.LevelInfo, "connection opened", "addr", peer.Addr, "held", state == stateHeld)
	go c.serve()
}

// Admit reports whether a connection from peer may be set up for
// ServeConn, for a transport that spends work before it (the WebSocket
// upgrade): false while the server shuts down, or when peer's source is
// past its pending cap and already holds as many undecided connections
// (held) as that cap, the bound past which ServeConn refuses a connection
// without waiting for its first envelope. A source merely at its pending
// cap is admitted: its connection may yet carry a valid resume
// (PROTOCOL.md section 4), and ServeConn decides it at its first envelope
// as over TCP. A server at --max-conns also admits: ServeConn then answers
// the plain error unavailable over the new connection, as over TCP. A
// refusal is logged (rate-limited per source, as ServeConn's).
//
// ServeConn applies every limit again, so a race between Admit and
// ServeConn only ever refuses later, never admits past a cap.
func (s *Server) Admit(peer stdnet.Addr) bool {
	source := net.SourceOfAddr(peer)
	s.mu.Lock()
	ok, why := s.admit(source)
	s.mu.Unlock()
	if ok || why == refusedFull {
		return true
	}
	if why == refusedShutting {
		return false
	}
	addr := "unknown"
	if peer != nil {
		addr = peer.String()
	}
	s.hub.LogStranger(source, slog.LevelWarn, "connection refused before upgrade: too many from this source", "addr", addr)
	return false
}

// Why admit refuses a connection.
const (
	refusedShutting = iota + 1
	refusedFull     // --max-conns reached
	refusedSource   // the source's pending cap and held cap reached
)

// admit decides at once whether a new connection from source is taken
// (pending or held) or refused, and why; s.mu is held. The one place of
// the bounds ServeConn and Admit share.
func (s *Server) admit(source net.Source) (bool, int) {
	if s.shutting {
		return false, refusedShutting
	}
	if s.cfg.MaxConns > 0 && len(s.conns) >= s.cfg.MaxConns {
		return false, refusedFull
	}
	src := s.sources[source]
	if src == nil {
		src = &sourceConns{}
	}
	if cap := s.cfg.MaxPendingPerSource; cap > 0 && src.held >= cap && !s.room(src) {
		return false, refusedSource
	}
	return true, 0
}

// room reports whether a source may have one more connection pending,
// under both the global cap and its own; s.mu is held.
func (s *Server) room(src *sourceConns) bool {
	if s.cfg.MaxPending > 0 && s.pending >= s.cfg.MaxPending {
		return false
	}
	return s.cfg.MaxPendingPerSource == 0 || src.pending < s.cfg.MaxPendingPerSource
}

// admitHello decides a held connection at its hello: pending if its
// source (and the server) now has room, refused otherwise.
func (s *Server) admitHello(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.state != stateHeld {
		return true
	}
	src := s.sources[c.peer.Source]
	if !s.room(src) {
		return false
	}
	src.held--
	src.pending++
	s.pending++
	c.state = statePending
	return true
}

func (s *Server) refuse(nc stdnet.Conn, msg string) {
	defer nc.Close()
	body := net.ErrorBody(0, net.CodeUnavailable, msg)
	nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	net.WriteFrame(nc, crypto.PlainError(body))
}

// loggedIn moves c out of the not-logged-in counts.
func (s *Server) loggedIn(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(c)
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.settle(c)
}

// settle takes c out of the counts of connections not logged in; s.mu
// is held.
func (s *Server) settle(c *conn) {
	if c.state == stateDone {
		return
	}
	src := s.sources[c.peer.Source]
	if c.state == statePending {
		s.pending--
		src.pending--
	} else {
		src.held--
	}
	c.state = stateDone
	s.forgetSource(c.peer.Source, src)
}

// forgetSource drops a source's entry once it counts nothing, so that the
// table holds only sources with connections not logged in; s.mu is held.
func (s *Server) forgetSource(key net.Source, src *sourceConns) {
	if src.pending == 0 && src.held == 0 {
		delete(s.sources, key)
	}
}

// Conns returns how many connections are open.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops the server gracefully: it stops accepting and reading,
// answers parked fetches, commits and acks the sends already received,
// flushes every answer, and closes the connections. The database is the
// caller's to close afterwards. If ctx ends first, connections are closed
// at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shutting {
		s.shutting = true
		close(s.stopping)
	}
	for _, ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.stopReading()
	}
	err := wait(ctx, &s.readers)
	if err == nil {
		err = s.hub.Shutdown(ctx)
	}
	for _, c := range conns {
		c.flushAndClose()
	}
	if err == nil {
		err = wait(ctx, &s.all)
	}
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		s.all.Wait()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
