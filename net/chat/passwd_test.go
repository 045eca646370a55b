package chat

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net"
	"librecord/net/testkit"
)

// newChannel returns the server's channel of a fresh client hello.
func newChannel(t *testing.T) *crypto.Channel {
	t.Helper()
	client := crypto.NewSessionKeys()
	peer, err := crypto.ParseClientHello(client.ClientHello())
	if err != nil {
		t.Fatal(err)
	}
	server := crypto.NewSessionKeys()
	return crypto.NewChannel(server, peer)
}

func ask(t *testing.T, h *Hub, s *Session, req *net.Request) answer {
	t.Helper()
	r := newReply()
	h.Handle(s, req, 1, r)
	return r.wait(t)
}

// TestPasswd drives PROTOCOL.md 3.8 on a real database: the answer, the
// old password refused and the new one accepted at login, this session
// kept, the user's other session ended at its next request, a retry of
// the same id answered the same, and no password in the log.
func TestPasswd(t *testing.T) {
	h, store, general := sessionHub(t)
	logs := &testkit.Buffer{}
	h.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := &events{}
	a := loginOn(t, h, &recConn{"a", log}, general)
	b := loginOn(t, h, &recConn{"b", log}, general)

	got := ask(t, h, a, &net.Request{Op: net.OpPasswd, ID: 5, Password: alicePassword})
	if got.Op != net.OpPasswd || got.Re != 5 {
		t.Fatalf("passwd answered %+v", got)
	}
	if err := crypto.CheckPassword(got.Password); err != nil || len(got.Password) != 34 {
		t.Fatalf("new password %q is not one `user add` makes (%v)", got.Password, err)
	}
	ctx := context.Background()
	if _, err := store.Authenticate(ctx, alicePassword); !errors.Is(err, db.ErrAuth) {
		t.Fatalf("old password: err = %v, want ErrAuth", err)
	}
	if c, err := store.Authenticate(ctx, got.Password); err != nil || c.Pseudo != "alice" {
		t.Fatalf("new password: %+v, %v", c, err)
	}

	t.Run("ThisSessionKept", func(t *testing.T) {
		if r := ask(t, h, a, &net.Request{Op: net.OpSalons, ID: 6}); r.Op != net.OpSalons {
			t.Fatalf("salons after passwd answered %+v", r)
		}
	})
	t.Run("OtherSessionEnded", func(t *testing.T) {
		if r := ask(t, h, b, &net.Request{Op: net.OpSalons, ID: 2}); r.Code != net.CodeAuth {
			t.Fatalf("the other session's next request answered %+v, want auth", r)
		}
		if h.Lookup(b.signer) != nil {
			t.Fatal("the other session is still live")
		}
		if h.Lookup(a.signer) == nil {
			t.Fatal("the changing session ended")
		}
	})
	t.Run("RetrySameID", func(t *testing.T) {
		again := ask(t, h, a, &net.Request{Op: net.OpPasswd, ID: 5, Password: "not checked on a retry"})
		if again != got {
			t.Fatalf("retry answered %+v, want %+v", again, got)
		}
		if c, err := store.Authenticate(ctx, got.Password); err != nil || c.Pseudo != "alice" {
			t.Fatalf("after the retry the password changed again: %v", err)
		}
	})
	t.Run("NotLogged", func(t *testing.T) {
		if out := logs.String(); strings.Contains(out, got.Password) || strings.Contains(out, alicePassword) {
			t.Fatalf("a password reached the log:\n%s", out)
		}
		if !strings.Contains(logs.String(), "password changed") {
			t.Fatalf("the change is not logged:\n%s", logs.String())
		}
	})
}

// TestPasswdWrongPassword: a wrong current password is auth, the session
// stays logged in, and it counts as a failed login of the source, so
// that past the budget both passwd and login are refused unchecked.
func TestPasswdWrongPassword(t *testing.T) {
	h, store, general := sessionHubWith(t, func(c *Config) { c.LoginLimit, c.LoginWindow = 2, time.Hour })
	s := loginOn(t, h, nopConn{}, general)
	for id := int64(2); id <= 3; id++ {
		if r := ask(t, h, s, &net.Request{Op: net.OpPasswd, ID: id, Password: "not alice's password"}); r.Code != net.CodeAuth || r.Re != id {
			t.Fatalf("wrong password answered %+v, want auth", r)
		}
		if r := ask(t, h, s, &net.Request{Op: net.OpSalons, ID: id + 10}); r.Op != net.OpSalons {
			t.Fatalf("session after a wrong passwd answered %+v", r)
		}
	}
	// Two failures: the source is over its budget, even the right
	// password is refused without a check.
	if r := ask(t, h, s, &net.Request{Op: net.OpPasswd, ID: 4, Password: alicePassword}); r.Code != net.CodeRateLimited {
		t.Fatalf("passwd over the budget answered %+v, want rate_limited", r)
	}
	other := newSessionFrom(t, h, "127.0.0.1:2")
	if r := ask(t, h, other, &net.Request{Op: net.OpLogin, ID: 1, Password: alicePassword}); r.Code != net.CodeRateLimited {
		t.Fatalf("login from the same source answered %+v, want rate_limited", r)
	}
	if _, err := store.Authenticate(context.Background(), alicePassword); err != nil {
		t.Fatalf("the password changed after refusals: %v", err)
	}
}

// holdStore holds ChangePassword until release is closed.
type holdStore struct {
	Store
	entered chan struct{}
	release chan struct{}
}

func (s *holdStore) ChangePassword(ctx context.Context, c db.Credential, current, next string) (db.Credential, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.Store.ChangePassword(ctx, c, current, next)
}

// TestPasswdRetryDuringChange: a retry of the same id that arrives while
// the first is still being stored (the client resumed meanwhile) waits
// for it and gets the same answer, not an auth for a password that has
// just changed.
func TestPasswdRetryDuringChange(t *testing.T) {
	h, store, general := sessionHub(t)
	hold := &holdStore{Store: store, entered: make(chan struct{}, 1), release: make(chan struct{})}
	h.store = hold
	s := loginOn(t, h, nopConn{}, general)
	first, second := newReply(), newReply()
	go h.Handle(s, &net.Request{Op: net.OpPasswd, ID: 4, Password: alicePassword}, 1, first)
	<-hold.entered
	go h.Handle(s, &net.Request{Op: net.OpPasswd, ID: 4, Password: alicePassword}, 1, second)
	close(hold.release)
	a, b := first.wait(t), second.wait(t)
	if a.Op != net.OpPasswd || a != b {
		t.Fatalf("first %+v, retry %+v: want the same passwd answer", a, b)
	}
	select {
	case <-hold.entered:
		t.Fatal("the retry changed the password again")
	default:
	}
}

// TestPasswdParkedFetchGoesOn: a fetch parked before the change wakes
// after it and answers messages: the session's own credential changed
// with the database, so its check does not end the session.
func TestPasswdParkedFetchGoesOn(t *testing.T) {
	h, _, general := sessionHub(t)
	s := loginOn(t, h, nopConn{}, general)
	parked := newReply()
	h.Handle(s, &net.Request{Op: net.OpFetch, ID: 2, Salon: "general", HasAfter: true, After: general.Last, WaitMS: net.MaxWaitMS}, 1, parked)
	if got := ask(t, h, s, &net.Request{Op: net.OpPasswd, ID: 3, Password: alicePassword}); got.Op != net.OpPasswd {
		t.Fatalf("passwd answered %+v", got)
	}
	if got := ask(t, h, s, &net.Request{Op: net.OpSend, ID: 4, Salon: "general", Text: "still here", Cid: "c4"}); got.Op != net.OpAck {
		t.Fatalf("send answered %+v", got)
	}
	if got := parked.wait(t); got.Op != net.OpMessages || got.Re != 2 {
		t.Fatalf("the parked fetch answered %+v, want its messages", got)
	}
	if h.Lookup(s.signer) == nil {
		t.Fatal("the session ended")
	}
}
