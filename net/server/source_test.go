package server_test

import (
	"bufio"
	stdnet "net"
	"strings"
	"testing"
	"time"

	"librecord/net"
	"librecord/net/server"
)

// dialFrom dials addr from a local loopback address (any 127.x.y.z is a
// source of its own on Linux).
func dialFrom(t tb, addr, local string) *client {
	t.Helper()
	d := stdnet.Dialer{Timeout: 5 * time.Second, LocalAddr: &stdnet.TCPAddr{IP: stdnet.ParseIP(local)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, fr: net.NewFrameReader(bufio.NewReader(nc), 0), stash: map[int64]answer{}}
}

// remoteConn is one end of an in-memory pipe that reports remote as its
// peer, as a transport handing connections to ServeConn does.
type remoteConn struct {
	stdnet.Conn
	remote stdnet.Addr
}

func (r remoteConn) RemoteAddr() stdnet.Addr { return r.remote }

// pipeFrom hands the server a connection from the injected address
// remote ("[2001:db8::1]:5000") through ServeConn.
func pipeFrom(t tb, srv *server.Server, remote string) *client {
	t.Helper()
	ours, theirs := stdnet.Pipe()
	addr, err := stdnet.ResolveTCPAddr("tcp", remote)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close() })
	srv.ServeConn(remoteConn{theirs, addr})
	return &client{t: t, nc: ours, fr: net.NewFrameReader(bufio.NewReader(ours), 0), stash: map[int64]answer{}}
}

// expectRefusedHello sends a hello and expects a plain unavailable, then
// the connection closed.
func expectRefusedHello(t *testing.T, c *client) {
	t.Helper()
	c.writeFrame(mustHello(t))
	wantError(t, c.read(), 'E', "unavailable", 0)
	c.expectClosed()
}

// TestPendingPerSource: one source holds every pending connection it may;
// its next hello is refused, while a resume on a connection past its cap
// proceeds and another source logs in. Room made by a pending connection
// that closes is given at the next hello.
func TestPendingPerSource(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.MaxPendingPerSource = 2 })
	const bad, good = "127.0.0.2", "127.0.0.3"
	var held []*client
	for range 2 {
		c := dialFrom(t, f.addr, bad)
		c.hello()
		held = append(held, c)
	}
	expectRefusedHello(t, dialFrom(t, f.addr, bad))

	// Another source is not affected.
	alice := dialFrom(t, f.addr, good)
	alice.hello()
	if a := alice.call("login", map[string]any{"password": passwords["alice"]}); a.str("op") != "connected" {
		t.Fatalf("login from another source: %v", a)
	}
	// A resume proceeds even from the full source (a club behind one NAT).
	moved := dialFrom(t, f.addr, bad)
	moved.ch, moved.nextID = alice.ch, alice.nextID
	if a := moved.resume(); a.str("op") != "resumed" {
		t.Fatalf("resume from a full source: %v", a)
	}
	if a := moved.call("salons", nil); a.str("op") != "salons" {
		t.Fatalf("after resume: %v", a)
	}
	// A connection past the cap is decided at its hello: room made since
	// it opened is given.
	waiting := dialFrom(t, f.addr, bad)
	waiting.writeRaw("\n") // opened, nothing sent yet
	held[0].nc.Close()
	for i := 0; ; i++ {
		c := waiting
		if i > 0 {
			c = dialFrom(t, f.addr, bad)
		}
		c.writeFrame(mustHello(t))
		if a := c.read(); a.kind == 'H' {
			break
		} else if i > 100 {
			t.Fatalf("room not given back: %v", a)
		}
	}
}

// TestHeldConnectionsCapped: past the cap a source may hold as many
// undecided connections again; past that, connections are refused at
// once; and a silent one is closed by the login deadline.
func TestHeldConnectionsCapped(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.MaxPendingPerSource = 2
		c.LoginTimeout = 2 * time.Second
	})
	const bad = "127.0.0.4"
	for range 4 { // 2 pending, 2 held
		dialFrom(t, f.addr, bad).writeRaw("\n")
	}
	refused := dialFrom(t, f.addr, bad)
	wantError(t, refused.read(), 'E', "unavailable", 0)
	refused.expectClosed()
	silent := dialFrom(t, f.addr, "127.0.0.5")
	silent.expectClosed() // the login deadline
}

// TestPendingSourceIPv6: through ServeConn, addresses of one IPv6 /64
// share one cap, another /64 of the same /48 has its own, and an
// IPv4-mapped address is its IPv4 source.
func TestPendingSourceIPv6(t *testing.T) {
	f := newFixture(t, func(c *server.Config) { c.MaxPendingPerSource = 1 })
	pipeFrom(t, f.srv, "[2001:db8:1:2::1]:1000").hello()
	expectRefusedHello(t, pipeFrom(t, f.srv, "[2001:db8:1:2::ffff]:1001"))
	pipeFrom(t, f.srv, "[2001:db8:1:3::1]:1000").hello()

	pipeFrom(t, f.srv, "[::ffff:192.0.2.9]:1000").hello()
	expectRefusedHello(t, pipeFrom(t, f.srv, "192.0.2.9:1001"))
	pipeFrom(t, f.srv, "192.0.2.10:1000").hello()
}

// TestFailedLoginsPerSource: the failed-login limit holds for every
// address of one IPv6 /64 together, and for the /64s of one /48 with
// its larger budget; another network is not affected.
func TestFailedLoginsPerSource(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.Chat.LoginLimit = 2
		c.Chat.LoginBlock = 3
	})
	try := func(remote string) string {
		c := pipeFrom(t, f.srv, remote)
		c.hello()
		a := c.call("login", map[string]any{"password": "wrong-password-" + remote})
		return a.str("code")
	}
	got := []string{
		try("[2001:db8:1:2::1]:1"), try("[2001:db8:1:2::2]:1"), try("[2001:db8:1:2::3]:1"), // one /64
		try("[2001:db8:1:3::1]:1"), try("[2001:db8:1:4::1]:1"), // the /48's budget of 3 is spent
		try("[2001:db8:2::1]:1"), // another /48
	}
	want := []string{"auth", "auth", "rate_limited", "auth", "rate_limited", "auth"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("answers %v, want %v", got, want)
	}
}

// TestServeConnShutdown: a connection handed in once shutdown began is
// closed.
func TestServeConnShutdown(t *testing.T) {
	f := newFixture(t, nil)
	srv := f.srv
	f.stop()
	ours, theirs := stdnet.Pipe()
	defer ours.Close()
	srv.ServeConn(theirs)
	ours.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := ours.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection handed in after shutdown: read %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(stdnet.Error)
	return ok && ne.Timeout()
}

// TestAdmit: Admit refuses exactly where ServeConn refuses a source at
// once (past its pending cap, holding as many undecided connections), and
// admits a source merely at its pending cap, whose next connection may
// carry a resume, and a full server, whose refusal ServeConn answers.
func TestAdmit(t *testing.T) {
	f := newFixture(t, func(c *server.Config) {
		c.MaxPendingPerSource = 2
		c.MaxConns = 6
	})
	bad := &stdnet.TCPAddr{IP: stdnet.ParseIP("192.0.2.1"), Port: 5000}
	other := &stdnet.TCPAddr{IP: stdnet.ParseIP("192.0.2.2"), Port: 5000}
	for i := range 4 { // 2 pending, then 2 held
		if !f.srv.Admit(bad) {
			t.Fatalf("connection %d of the source refused", i+1)
		}
		pipeFrom(t, f.srv, bad.String())
	}
	if f.srv.Admit(bad) {
		t.Fatal("a source holding its pending and held caps admitted")
	}
	// ServeConn agrees.
	refused := pipeFrom(t, f.srv, bad.String())
	wantError(t, refused.read(), 'E', "unavailable", 0)
	refused.expectClosed()
	if !f.srv.Admit(other) {
		t.Fatal("another source refused")
	}
	pipeFrom(t, f.srv, other.String())
	pipeFrom(t, f.srv, other.String())
	if !f.srv.Admit(other) {
		t.Fatal("a full server refuses before the upgrade: ServeConn's unavailable is the answer")
	}
	full := pipeFrom(t, f.srv, other.String())
	wantError(t, full.read(), 'E', "unavailable", 0)
	if !strings.Contains(f.logs.String(), "connection refused before upgrade: too many from this source") {
		t.Fatalf("refusal not logged:\n%s", f.logs.String())
	}
}
