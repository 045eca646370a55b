// Package web serves Librecord to browsers (PROTOCOL.md section 1.1): the
// embedded page at / and the protocol over WebSocket at /ws. It knows HTTP
// and WebSocket only: every WebSocket is handed, as a net.Conn carrying the
// section 1 byte stream, to the TCP server's ServeConn, so frames, limits,
// timeouts and resume are exactly those of TCP.
//
// Use New with a ConnServer (a *server.Server), then Serve on a listener,
// then Shutdown.
package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	stdnet "net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Subprotocol is the WebSocket subprotocol an upgrade must offer.
const Subprotocol = "librecord.v1"

// MaxLineBytes is what one line may take on the wire, counted generously
// (300 bytes and its line end, with room): a WebSocket message may be at
// most MaxPortions × MaxLineBytes bytes (PROTOCOL.md 1.1).
const MaxLineBytes = 310

// CSP is the Content-Security-Policy of every response: the page's own
// files only, nothing inline, never framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// maxHeaderBytes bounds a request's headers: the page and the upgrade need
// a few hundred bytes.
const maxHeaderBytes = 16 << 10

//go:embed all:static
var static embed.FS

// Static returns the page's files (index.html, its scripts and styles).
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// ConnServer serves the protocol on a connection; ServeConn returns at
// once and closes nc when the connection ends. Admit says, before the
// upgrade, whether a connection from peer may be set up (false: its
// source is past the per-source limits' hard bound): a refused upgrade
// costs no WebSocket.
type ConnServer interface {
	Admit(peer stdnet.Addr) bool
	ServeConn(nc stdnet.Conn)
}

// Config holds the HTTP side's settings. Every field is a flag of
// librecord serve.
type Config struct {
	MaxPortions       int            // portions per frame: bounds a WebSocket message
	TrustedProxies    []netip.Prefix // peers whose X-Forwarded-For names the source
	ReadHeaderTimeout time.Duration  // time to read a request's headers
	IdleTimeout       time.Duration  // keep-alive connection with no request
	RetryAfter        time.Duration  // Retry-After of an upgrade refused by Admit (503)
	TLS               *tls.Config    // nil: plain HTTP
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxPortions:       1024,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		RetryAfter:        10 * time.Second, // the server's default login timeout
	}
}

// ParseProxies reads --web-trusted-proxy values: CIDR ranges or single
// addresses, each value possibly a comma-separated list.
func ParseProxies(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--web-trusted-proxy %q: want an address range like 10.0.0.0/8 or an address", s)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// Server is the HTTP server of the page and the WebSocket endpoint.
type Server struct {
	cfg  Config
	srv  ConnServer
	log  *slog.Logger
	http *http.Server

	mu     sync.Mutex
	conns  map[*wsConn]struct{}
	closed bool
}

// New returns a server handing WebSockets to srv.
func New(srv ConnServer, cfg Config, log *slog.Logger) *Server {
	if cfg.MaxPortions < 1 {
		cfg.MaxPortions = DefaultConfig().MaxPortions
	}
	s := &Server{cfg: cfg, srv: srv, log: log, conns: map[*wsConn]struct{}{}}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         cfg.TLS,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}
	return s
}

// Serve serves on ln until Shutdown (then it returns http.ErrServerClosed).
func (s *Server) Serve(ln stdnet.Listener) error {
	if s.cfg.TLS != nil {
		return s.http.ServeTLS(ln, "", "")
	}
	return s.http.Serve(ln)
}

// Shutdown stops accepting, ends idle HTTP connections and closes the
// WebSockets still open (the protocol server has normally closed them).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	s.mu.Lock()
	s.closed = true
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return err
}

// Handler returns the HTTP handler: the page at /, the protocol at /ws,
// the security headers on every response.
func (s *Server) Handler() http.Handler {
	files := http.FileServerFS(Static())
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", CSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// sameOrigin applies PROTOCOL.md 1.1: no Origin is accepted (not a
// browser); otherwise its host and port must equal Host, whatever the
// scheme.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func offersSubprotocol(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) == Subprotocol {
				return true
			}
		}
	}
	return false
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "foreign Origin: the page must come from this server", http.StatusForbidden)
		return
	}
	if !offersSubprotocol(r) {
		http.Error(w, "WebSocket upgrade without the subprotocol "+Subprotocol, http.StatusBadRequest)
		return
	}
	src := s.source(r)
	if !s.srv.Admit(src) {
		// Before the upgrade: a source flooding /ws costs an HTTP answer,
		// not a WebSocket and its goroutines.
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(s.cfg.RetryAfter)))
		http.Error(w, "too many connections not logged in from your address: try again later", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		s.log.Info("websocket upgrade refused", "addr", src.String(), "err", err)
		return // Accept wrote the HTTP error
	}
	ctx, cancel := context.WithCancel(context.Background())
	nc := websocket.NetConn(ctx, ws, websocket.MessageText)
	// After NetConn, which turns the limit off.
	ws.SetReadLimit(int64(s.cfg.MaxPortions) * MaxLineBytes)
	c := newWSConn(nc, src, cancel)
	c.onClose = func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.srv.ServeConn(c)
	// The handler returns at once: the WebSocket lives on its own context
	// and goroutines, and the HTTP connection's goroutine, stack and
	// request are not kept for the life of the session.
}

// retrySeconds is d as a Retry-After value: whole seconds, at least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// source is the client's address: the HTTP peer, or, when the peer is a
// trusted proxy, the nearest address in X-Forwarded-For that is not one.
func (s *Server) source(r *http.Request) *stdnet.TCPAddr {
	return sourceOf(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.trusted)
}

// sourceOf is source on the request's peer address and X-Forwarded-For
// header values (docs/protocol.md, "Web transport").
func sourceOf(remoteAddr string, forwarded []string, trusted func(netip.Addr) bool) *stdnet.TCPAddr {
	peer, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return &stdnet.TCPAddr{}
	}
	addr := peer.Addr().Unmap()
	if !trusted(addr) {
		return stdnet.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, peer.Port()))
	}
	var hops []string
	for _, v := range forwarded {
		hops = append(hops, strings.Split(v, ",")...)
	}
	// From the right: each trusted hop vouches for the one before it.
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: stop at the last address we can vouch for
		}
		addr = a.Unmap()
		if !trusted(addr) {
			break
		}
	}
	return stdnet.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 0))
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// wsConn is a WebSocket as the protocol server sees it: RemoteAddr is the
// client's source, not the library's idea of it, and Close takes it out
// of the web server's table. NetConn has no half-close: the server just
// closes it, and the close handshake follows the data.
//
// Reads go through an in-memory pipe fed by a copier, because a read
// deadline on NetConn closes the whole WebSocket when it expires during a
// read, while the server uses one to stop reading at shutdown and then
// still writes its last answers. Writes go straight to NetConn: a write
// deadline that expires there should drop the peer.
type wsConn struct {
	stdnet.Conn             // NetConn: Write, SetWriteDeadline, LocalAddr, Close
	r           stdnet.Conn // our end of the read pipe
	remote      *stdnet.TCPAddr
	cancel      context.CancelFunc
	once        sync.Once
	onClose     func() // after the close, once
	err         error
}

// copyBuffer is the read copier's buffer: lines are at most 302 bytes.
const copyBuffer = 4096

func newWSConn(nc stdnet.Conn, remote *stdnet.TCPAddr, cancel context.CancelFunc) *wsConn {
	mine, feed := stdnet.Pipe()
	c := &wsConn{Conn: nc, r: mine, remote: remote, cancel: cancel}
	go func() {
		io.CopyBuffer(feed, onlyReader{nc}, make([]byte, copyBuffer))
		feed.Close() // EOF (or the WebSocket's error) for the server's reader
	}()
	return c
}

// onlyReader hides NetConn's other methods from io.CopyBuffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (c *wsConn) Read(p []byte) (int, error)        { return c.r.Read(p) }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.r.SetReadDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	c.r.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}
func (c *wsConn) RemoteAddr() stdnet.Addr { return c.remote }

func (c *wsConn) Close() error {
	c.once.Do(func() {
		c.r.Close()
		c.err = c.Conn.Close()
		c.cancel()
		if c.onClose != nil {
			c.onClose()
		}
	})
	if errors.Is(c.err, stdnet.ErrClosed) {
		return nil
	}
	return c.err
}
