package web_test

import (
	"context"
	"encoding/json"
	stdnet "net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	lnet "librecord/net"
	"librecord/net/server"
	"librecord/net/web"
)

// origin says where a test's WebSocket comes from: the HTTP peer's own
// address (a loopback address of its own), or an address a trusted proxy
// names in X-Forwarded-For.
type origin struct {
	local string // dial from this loopback address
	xff   string // X-Forwarded-For, sent through the trusted 127.0.0.0/8
}

func (o origin) dial(t *testing.T, base string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	opts := &websocket.DialOptions{Subprotocols: []string{web.Subprotocol}, HTTPHeader: http.Header{}}
	if o.xff != "" {
		opts.HTTPHeader.Set("X-Forwarded-For", o.xff)
	}
	if o.local != "" {
		d := &stdnet.Dialer{Timeout: 10 * time.Second, LocalAddr: &stdnet.TCPAddr{IP: stdnet.ParseIP(o.local)}}
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	return dialWS(t, base, opts)
}

// waitConns waits until the protocol server holds n connections.
func waitConns(t *testing.T, srv *server.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for srv.Conns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", srv.Conns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUpgradeRefusedPastSourceCaps: a source holding its pending cap and
// as many undecided connections again gets HTTP 503 with Retry-After
// before any upgrade, as a TCP connection would be refused at once; a
// source merely at its pending cap still upgrades, and a resume over that
// WebSocket proceeds; another source logs in meanwhile.
func TestUpgradeRefusedPastSourceCaps(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bad, good origin
	}{
		{"PeerAddress", origin{local: "127.0.0.2"}, origin{local: "127.0.0.3"}},
		{"TrustedProxy", origin{xff: "203.0.113.7"}, origin{xff: "203.0.113.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStackWith(t, func(c *server.Config) {
				c.MaxPendingPerSource = 2
				c.LoginTimeout = time.Minute // nothing is decided by the clock here
			}, func(c *web.Config) {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
				c.RetryAfter = 7 * time.Second
			})
			var bad []*websocket.Conn
			for i := range 4 { // 2 pending, then 2 held
				c, _, err := tc.bad.dial(t, s.web)
				if err != nil {
					t.Fatalf("connection %d refused: %v", i+1, err)
				}
				defer c.CloseNow()
				bad = append(bad, c)
				waitConns(t, s.srv, i+1)
			}
			for range 5 {
				c, resp, err := tc.bad.dial(t, s.web)
				if err == nil {
					c.CloseNow()
					t.Fatal("upgrade accepted past the source's caps")
				}
				if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("want HTTP 503, got %v (%v)", resp, err)
				}
				if got := resp.Header.Get("Retry-After"); got != "7" {
					t.Fatalf("Retry-After %q, want 7", got)
				}
				checkHeaders(t, resp.Header)
			}
			if n := s.srv.Conns(); n != 4 {
				t.Fatalf("%d connections reached the server, want the 4 admitted", n)
			}

			// Another source logs in.
			gc, _, err := tc.good.dial(t, s.web)
			if err != nil {
				t.Fatalf("another source refused: %v", err)
			}
			defer gc.CloseNow()
			good := newRaw(t, websocket.NetConn(context.Background(), gc, websocket.MessageText))
			good.hello()
			if got := good.do(map[string]any{"op": "login", "password": alicePassword}); got["status"] != "CONNECTÉ" {
				t.Fatalf("login: %v", got)
			}
			waitConns(t, s.srv, 5)

			// A held connection ends: the full source (at its pending
			// cap still) may upgrade again, and a resume over it proceeds.
			bad[3].CloseNow()
			waitConns(t, s.srv, 4)
			mc, _, err := tc.bad.dial(t, s.web)
			if err != nil {
				t.Fatalf("source at its pending cap refused: %v", err)
			}
			defer mc.CloseNow()
			moved := newRaw(t, websocket.NetConn(context.Background(), mc, websocket.MessageText))
			moved.ch, moved.nextID = good.ch, good.nextID
			if got := moved.do(map[string]any{"op": "resume"}); got["op"] != "resumed" {
				t.Fatalf("resume from a full source: %v", got)
			}
			if got := moved.do(map[string]any{"op": "salons"}); got["op"] != "salons" {
				t.Fatalf("after resume: %v", got)
			}
		})
	}
}

// TestWriteDeadlineDropsPeerThatDoesNotRead: a WebSocket client that asks
// and never reads is dropped once an answer waits past --write-timeout,
// as over TCP.
func TestWriteDeadlineDropsPeerThatDoesNotRead(t *testing.T) {
	s := startStackWith(t, func(c *server.Config) { c.WriteTimeout = 300 * time.Millisecond }, nil)
	// Big messages, so that fetch answers fill the socket buffers.
	a := newRaw(t, tcpConn(t, s.tcp))
	a.hello()
	a.do(map[string]any{"op": "login", "password": alicePassword})
	big := strings.Repeat("x", 60000)
	for i := range 4 {
		a.do(map[string]any{"op": "send", "salon": "general", "text": big, "cid": "big-" + strconv.Itoa(i)})
	}
	a.do(map[string]any{"op": "bye"})
	waitConns(t, s.srv, 0)

	c := newRaw(t, wsNetConn(t, s.web))
	c.hello()
	c.do(map[string]any{"op": "login", "password": alicePassword})
	waitConns(t, s.srv, 1)
	go func() {
		// Never reads again; stops when the server has dropped it.
		w := lnet.NewEnvelopeWriter(c.nc)
		for id := c.nextID + 1; ; id++ {
			body, _ := json.Marshal(map[string]any{"op": "fetch", "id": id, "salon": "general", "limit": 500})
			if w.WriteSealed(c.ch, body) != nil {
				return
			}
		}
	}()
	waitConns(t, s.srv, 0)
}
