package web_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	stdnet "net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"librecord/crypto"
	lnet "librecord/net"
	"librecord/net/server"
	"librecord/net/server/servertest"
	"librecord/net/web"
)

const alicePassword = "alice-password-one"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stack is a real protocol server over a real SQLite file, on TCP and
// behind the web handler.
type stack struct {
	tcp string // TCP address
	web string // http://host:port
	srv *server.Server
	fp  string // identity fingerprint
}

func startStack(t *testing.T, mutate func(*web.Config)) *stack {
	t.Helper()
	return startStackWith(t, nil, mutate)
}

// startStackWith is startStack with the protocol server's limits changed
// by smut.
func startStackWith(t *testing.T, smut func(*server.Config), mutate func(*web.Config)) *stack {
	t.Helper()
	d := servertest.TempDB(t)
	if _, err := d.AddUser(context.Background(), "alice", alicePassword, []string{"general"}); err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	if smut != nil {
		smut(&cfg)
	}
	srv, err := server.New(d, d.Identity(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	wcfg := web.DefaultConfig()
	if mutate != nil {
		mutate(&wcfg)
	}
	ws := web.New(srv, wcfg, quiet)
	wln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ws.Serve(wln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ws.Shutdown(ctx)
		d.Close()
	})
	fp := crypto.Fingerprint(d.Identity().Public().(ed25519.PublicKey))
	return &stack{tcp: ln.Addr().String(), web: "http://" + wln.Addr().String(), srv: srv, fp: fp}
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

func dialWS(t *testing.T, base string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if opts == nil {
		opts = &websocket.DialOptions{Subprotocols: []string{web.Subprotocol}}
	}
	return websocket.Dial(ctx, wsURL(base), opts)
}

func TestUpgrade(t *testing.T) {
	s := startStack(t, nil)
	host := strings.TrimPrefix(s.web, "http://")
	for _, tc := range []struct {
		name   string
		protos []string
		origin string
		status int // 0: upgraded
	}{
		{"OK", []string{web.Subprotocol}, "", 0},
		{"OKSameOrigin", []string{web.Subprotocol}, "http://" + host, 0},
		{"OKOtherScheme", []string{"other", web.Subprotocol}, "https://" + host, 0},
		{"ErrNoSubprotocol", nil, "", http.StatusBadRequest},
		{"ErrOtherSubprotocol", []string{"chat"}, "", http.StatusBadRequest},
		{"ErrForeignOrigin", []string{web.Subprotocol}, "http://evil.example", http.StatusForbidden},
		{"ErrOtherPort", []string{web.Subprotocol}, "http://127.0.0.1:1", http.StatusForbidden},
		{"ErrNullOrigin", []string{web.Subprotocol}, "null", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, resp, err := dialWS(t, s.web, &websocket.DialOptions{Subprotocols: tc.protos, HTTPHeader: h})
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("upgrade refused: %v", err)
				}
				defer c.CloseNow()
				if c.Subprotocol() != web.Subprotocol {
					t.Fatalf("subprotocol %q", c.Subprotocol())
				}
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatal("upgrade accepted")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("want HTTP %d, got %v (%v)", tc.status, resp, err)
			}
			checkHeaders(t, resp.Header)
		})
	}
}

func checkHeaders(t *testing.T, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'",
		"connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows something unsafe", csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", got)
	}
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy %q", got)
	}
}

func TestHeaders(t *testing.T) {
	s := startStack(t, nil)
	for _, tc := range []struct {
		path   string
		status int
		ctype  string
	}{
		{"/", 200, "text/html"},
		{"/app.js", 200, "text/javascript"},
		{"/style.css", 200, "text/css"},
		{"/vendor/nacl-fast.min.js", 200, "text/javascript"},
		{"/nothing-here", 404, ""},
		{"/ws", 403, ""}, // no upgrade, no subprotocol: refused either way
	} {
		t.Run(strings.Trim(tc.path, "/"), func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.web+tc.path, nil)
			if tc.path == "/ws" {
				req.Header.Set("Origin", "http://evil.example")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.ctype != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
				t.Fatalf("Content-Type %q, want %s", resp.Header.Get("Content-Type"), tc.ctype)
			}
			checkHeaders(t, resp.Header)
		})
	}
}

// readClose reads until the server closes, and returns the close status.
func readClose(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("connection still open")
			}
			return websocket.CloseStatus(err)
		}
	}
}

func TestBinaryMessageCloses1003(t *testing.T) {
	s := startStack(t, nil)
	c, _, err := dialWS(t, s.web, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(context.Background(), websocket.MessageBinary, []byte("(ENDMESS)\n")); err != nil {
		t.Fatal(err)
	}
	if got := readClose(t, c); got != websocket.StatusUnsupportedData {
		t.Fatalf("close status %d, want 1003", got)
	}
}

func TestOversizeMessageCloses1009(t *testing.T) {
	s := startStack(t, func(c *web.Config) { c.MaxPortions = 4 })
	for _, tc := range []struct {
		name string
		size int
		want websocket.StatusCode // -1: still open
	}{
		{"AtLimit", 4 * web.MaxLineBytes, -1},
		{"OverLimit", 4*web.MaxLineBytes + 1, websocket.StatusMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := dialWS(t, s.web, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			// Empty lines: ignored by the frame reader, so only the size counts.
			if err := c.Write(context.Background(), websocket.MessageText, []byte(strings.Repeat("\n", tc.size))); err != nil {
				t.Fatal(err)
			}
			if tc.want == -1 {
				// Still served: a hello gets its answer.
				nc := websocket.NetConn(context.Background(), c, websocket.MessageText)
				rc := newRaw(t, nc)
				rc.hello()
				return
			}
			if got := readClose(t, c); got != tc.want {
				t.Fatalf("close status %d, want %d", got, tc.want)
			}
		})
	}
}

// recorder is a ConnServer that only notes where connections come from.
type recorder struct {
	mu    sync.Mutex
	addrs []string
	got   chan struct{}
}

func (r *recorder) Admit(stdnet.Addr) bool { return true }

func (r *recorder) ServeConn(nc stdnet.Conn) {
	r.mu.Lock()
	r.addrs = append(r.addrs, nc.RemoteAddr().String())
	r.mu.Unlock()
	go nc.Close() // the test's client does not read: do not wait for its close handshake
	r.got <- struct{}{}
}

func TestSourceFromTrustedProxyOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		xff     []string
		want    string // host of the source
	}{
		{"NoProxyIgnoresHeader", nil, []string{"203.0.113.7"}, "127.0.0.1"},
		{"OtherProxyIgnoresHeader", []string{"10.0.0.0/8"}, []string{"203.0.113.7"}, "127.0.0.1"},
		{"TrustedProxy", []string{"127.0.0.0/8"}, []string{"203.0.113.7"}, "203.0.113.7"},
		{"TrustedNoHeader", []string{"127.0.0.1"}, nil, "127.0.0.1"},
		{"ChainTakesNearestUntrusted", []string{"127.0.0.0/8", "10.0.0.0/8"}, []string{"198.51.100.1, 203.0.113.7", "10.1.2.3"}, "203.0.113.7"},
		{"SpoofedLeftIgnored", []string{"127.0.0.0/8"}, []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"IPv6", []string{"127.0.0.0/8"}, []string{"2001:db8::1"}, "2001:db8::1"},
		{"GarbageStops", []string{"127.0.0.0/8"}, []string{"not-an-ip"}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefixes, err := web.ParseProxies(tc.proxies)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{got: make(chan struct{}, 1)}
			cfg := web.DefaultConfig()
			cfg.TrustedProxies = prefixes
			hs := httptest.NewServer(web.New(rec, cfg, quiet).Handler())
			defer hs.Close()
			h := http.Header{}
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			c, _, err := dialWS(t, hs.URL, &websocket.DialOptions{Subprotocols: []string{web.Subprotocol}, HTTPHeader: h})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			select {
			case <-rec.got:
			case <-time.After(10 * time.Second):
				t.Fatal("no connection served")
			}
			ap, err := netip.ParseAddrPort(rec.addrs[0])
			if err != nil {
				t.Fatal(err)
			}
			if ap.Addr().String() != tc.want {
				t.Fatalf("source %s, want %s", rec.addrs[0], tc.want)
			}
		})
	}
}

func TestParseProxies(t *testing.T) {
	got, err := web.ParseProxies([]string{"10.0.0.0/8, 192.168.1.1", "::1"})
	if err != nil || len(got) != 3 || got[1].String() != "192.168.1.1/32" || got[2].String() != "::1/128" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := web.ParseProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("bad range accepted")
	}
}

// raw is a minimal protocol client over any byte stream.
type raw struct {
	t      *testing.T
	nc     stdnet.Conn
	fr     *lnet.FrameReader
	ch     *crypto.Channel
	nextID int64
}

func newRaw(t *testing.T, nc stdnet.Conn) *raw {
	return &raw{t: t, nc: nc, fr: lnet.NewFrameReader(bufio.NewReader(nc), lnet.DefaultMaxPortions)}
}

func (r *raw) next() []byte {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, _, err := r.fr.Next()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return append([]byte(nil), p...)
}

func (r *raw) hello() {
	r.t.Helper()
	keys := crypto.NewSessionKeys()
	ch := keys.ClientHello()
	if err := lnet.WriteFrame(r.nc, ch); err != nil {
		r.t.Fatal(err)
	}
	peer, _, err := crypto.ParseServerHello(r.next(), ch)
	if err != nil {
		r.t.Fatal(err)
	}
	r.ch = crypto.NewChannel(keys, peer)
}

// do sends a request and returns its answer, skipping nothing: the tests
// here have one request in flight at a time.
func (r *raw) do(req map[string]any) map[string]any {
	r.t.Helper()
	r.nextID++
	req["id"] = r.nextID
	body, _ := json.Marshal(req)
	if err := lnet.NewEnvelopeWriter(r.nc).WriteSealed(r.ch, body); err != nil {
		r.t.Fatal(err)
	}
	p := r.next()
	if k, _ := crypto.EnvelopeKind(p); k == crypto.KindPlainError {
		b, _ := crypto.ParsePlainError(p)
		r.t.Fatalf("plain error %s", b)
	}
	ans, err := r.ch.Open(p)
	if err != nil {
		r.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(ans, &m); err != nil {
		r.t.Fatal(err)
	}
	if m["op"] == "error" {
		r.t.Fatalf("%v: %s", req["op"], ans)
	}
	return m
}

func (r *raw) closedByServer() bool {
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := r.fr.Next()
	return errors.Is(err, io.EOF) || err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne stdnet.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func wsNetConn(t *testing.T, base string) stdnet.Conn {
	t.Helper()
	c, _, err := dialWS(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc := websocket.NetConn(context.Background(), c, websocket.MessageText)
	t.Cleanup(func() { nc.Close() })
	return nc
}

func tcpConn(t *testing.T, addr string) stdnet.Conn {
	t.Helper()
	nc, err := stdnet.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func TestResumeAcrossTransports(t *testing.T) {
	s := startStack(t, nil)
	for _, tc := range []struct {
		name       string
		first, sec func(t *testing.T) stdnet.Conn
	}{
		{"TCPToWebSocket", func(t *testing.T) stdnet.Conn { return tcpConn(t, s.tcp) }, func(t *testing.T) stdnet.Conn { return wsNetConn(t, s.web) }},
		{"WebSocketToTCP", func(t *testing.T) stdnet.Conn { return wsNetConn(t, s.web) }, func(t *testing.T) stdnet.Conn { return tcpConn(t, s.tcp) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newRaw(t, tc.first(t))
			a.hello()
			if got := a.do(map[string]any{"op": "login", "password": alicePassword}); got["status"] != "CONNECTÉ" {
				t.Fatalf("login: %v", got)
			}
			ack := a.do(map[string]any{"op": "send", "salon": "general", "text": "before " + tc.name, "cid": "c1-" + tc.name})
			b := newRaw(t, tc.sec(t))
			b.ch, b.nextID = a.ch, a.nextID
			if got := b.do(map[string]any{"op": "resume"}); got["op"] != "resumed" || got["status"] != "CONNECTÉ" {
				t.Fatalf("resume: %v", got)
			}
			if !a.closedByServer() {
				t.Fatal("old connection still open after the resume")
			}
			// Same cid again: same ack, stored once.
			again := b.do(map[string]any{"op": "send", "salon": "general", "text": "before " + tc.name, "cid": "c1-" + tc.name})
			if again["msg"] != ack["msg"] {
				t.Fatalf("retried send acked %v, first %v", again["msg"], ack["msg"])
			}
			b.do(map[string]any{"op": "send", "salon": "general", "text": "after " + tc.name, "cid": "c2-" + tc.name})
			m := b.do(map[string]any{"op": "fetch", "salon": "general", "limit": 2})
			msgs := m["messages"].([]any)
			if len(msgs) != 2 || msgs[0].(map[string]any)["text"] != "before "+tc.name || msgs[1].(map[string]any)["text"] != "after "+tc.name {
				t.Fatalf("fetch: %v", m)
			}
			b.do(map[string]any{"op": "bye"})
		})
	}
}

// A frame the server writes arrives as exactly one text message.
func TestOneFramePerMessage(t *testing.T) {
	s := startStack(t, nil)
	c, _, err := dialWS(t, s.web, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	keys := crypto.NewSessionKeys()
	hello := keys.ClientHello()
	frame := lnet.AppendFrame(nil, hello)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Cut the client's bytes anywhere: one byte a message for the first line.
	for i := 0; i < 20; i++ {
		if err := c.Write(ctx, websocket.MessageText, frame[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Write(ctx, websocket.MessageText, frame[20:]); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("read: %v %v", typ, err)
	}
	if !strings.HasPrefix(string(msg), "MESS1//") || !strings.HasSuffix(string(msg), "(ENDMESS)\n") {
		t.Fatalf("message is not one whole frame: %q", msg)
	}
	fr := lnet.NewFrameReader(bufio.NewReader(strings.NewReader(string(msg))), lnet.DefaultMaxPortions)
	p, _, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := crypto.ParseServerHello(p, hello); err != nil {
		t.Fatal(err)
	}
}

// At shutdown the server stops reading but still answers a parked fetch:
// over WebSocket too (a read deadline must not close the WebSocket).
func TestShutdownAnswersParkedFetchOverWebSocket(t *testing.T) {
	s := startStack(t, nil)
	r := newRaw(t, wsNetConn(t, s.web))
	r.hello()
	r.do(map[string]any{"op": "login", "password": alicePassword})
	r.nextID++
	fetchID := r.nextID
	body, _ := json.Marshal(map[string]any{"op": "fetch", "id": fetchID, "salon": "general", "after": 0, "wait_ms": 20000})
	if err := lnet.NewEnvelopeWriter(r.nc).WriteSealed(r.ch, body); err != nil {
		t.Fatal(err)
	}
	// Requests are read in order: once who is answered, the fetch is parked.
	if got := r.do(map[string]any{"op": "who", "salon": "general"}); got["op"] != "who" {
		t.Fatalf("who: %v", got)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.srv.Shutdown(ctx)
	}()
	ans, err := r.ch.Open(r.next())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(ans, &m)
	if m["op"] != "messages" || m["re"] != float64(fetchID) {
		t.Fatalf("parked fetch answered %s at shutdown", ans)
	}
}

// The HTTP timeouts bound the request before the upgrade, not the
// WebSocket after it: a connection outlives them.
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	s := startStack(t, func(c *web.Config) {
		c.ReadHeaderTimeout = 100 * time.Millisecond
		c.IdleTimeout = 100 * time.Millisecond
	})
	r := newRaw(t, wsNetConn(t, s.web))
	r.hello()
	r.do(map[string]any{"op": "login", "password": alicePassword})
	// A long-poll on an empty salon answers after its wait: ten times the timeouts.
	if m := r.do(map[string]any{"op": "fetch", "salon": "general", "after": 0, "wait_ms": 1000}); m["op"] != "messages" {
		t.Fatalf("fetch answered %v", m)
	}
	if got := r.do(map[string]any{"op": "who", "salon": "general"}); got["op"] != "who" {
		t.Fatalf("who after the wait: %v", got)
	}
}

// A client that never finishes its request headers is cut off.
func TestSlowHeadersCut(t *testing.T) {
	s := startStack(t, func(c *web.Config) { c.ReadHeaderTimeout = 100 * time.Millisecond })
	nc := tcpConn(t, strings.TrimPrefix(s.web, "http://"))
	if _, err := io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(nc)
	if isTimeout(err) {
		t.Fatal("connection with unfinished headers still open after 10 s")
	}
}
