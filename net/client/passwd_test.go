package client_test

import (
	"bufio"
	"context"
	"errors"
	stdnet "net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/server"
)

// losingProxy forwards connections to target; once armed, it swallows
// the next frame the server writes and closes that connection both ways:
// the answer is written by the server and lost.
type losingProxy struct {
	ln      stdnet.Listener
	armed   atomic.Bool
	dropped atomic.Int32
}

func newLosingProxy(t *testing.T, target string) *losingProxy {
	t.Helper()
	p := &losingProxy{}
	p.ln = acceptLoop(t, func(c stdnet.Conn) { pipeWith(c, target, p.down) })
	return p
}

// down forwards the server's frames, but the one it swallows when armed.
func (p *losingProxy) down(c, up stdnet.Conn) {
	fr := lnet.NewFrameReader(bufio.NewReader(up), lnet.DefaultMaxPortions)
	for {
		payload, _, err := fr.Next()
		if err != nil {
			return
		}
		if p.armed.CompareAndSwap(true, false) {
			p.dropped.Add(1)
			return // both ends close: the answer is lost
		}
		if _, err := c.Write(lnet.AppendFrame(nil, payload)); err != nil {
			return
		}
	}
}

func (p *losingProxy) addr() string { return p.ln.Addr().String() }

// dialLogin opens a session on addr and logs in with password.
func dialLogin(t *testing.T, addr, password string, cfg client.Config) (*client.Session, error) {
	t.Helper()
	known, err := client.LoadKnownServers(filepath.Join(t.TempDir(), "known_servers"))
	if err != nil {
		t.Fatal(err)
	}
	tr := client.Trust{Known: known, Ask: func(string, string) (bool, error) { return true, nil }}
	cfg.Addr, cfg.CheckIdentity = addr, tr.Check
	sess, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	_, err = sess.Login(context.Background(), password)
	return sess, err
}

// TestPasswdAnswerLost: the server changes the password and writes its
// answer, which is lost with the connection. Passwd resumes, sends the
// same request again and gets the same new password: the person is not
// locked out. The new password then logs in, the old one does not.
func TestPasswdAnswerLost(t *testing.T) {
	s := startServer(t)
	p := newLosingProxy(t, s.addr)
	ctx := context.Background()
	alice, err := dialLogin(t, p.addr(), "alice-password", client.Config{ResumeBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.armed.Store(true)
	next, err := alice.Passwd(ctx, "alice-password")
	if err != nil {
		t.Fatalf("Passwd: %v", err)
	}
	if p.dropped.Load() != 1 {
		t.Fatalf("the proxy dropped %d answers, want 1", p.dropped.Load())
	}
	if _, err := alice.Salons(ctx); err != nil {
		t.Fatalf("the session after Passwd: %v", err)
	}
	if _, err := dialLogin(t, s.addr, "alice-password", client.Config{}); !client.IsCode(err, lnet.CodeAuth) {
		t.Fatalf("login with the old password: %v, want auth", err)
	}
	if _, err := dialLogin(t, s.addr, next, client.Config{}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
}

// TestPasswdWrongPassword: auth, the session still logged in.
func TestPasswdWrongPassword(t *testing.T) {
	s := startServer(t, func(c *server.Config) { c.Chat.LoginLimit = 0 })
	alice, err := dialLogin(t, s.addr, "alice-password", client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var se *client.ServerError
	if _, err := alice.Passwd(context.Background(), "not-her-password"); !errors.As(err, &se) || se.Code != lnet.CodeAuth {
		t.Fatalf("wrong password: %v, want auth", err)
	}
	if _, err := alice.Salons(context.Background()); err != nil {
		t.Fatalf("the session after a wrong password: %v", err)
	}
}
