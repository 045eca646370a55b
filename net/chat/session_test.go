package chat

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"librecord/db"
	"librecord/net"
)

// The session tests drive a hub on a real database through its methods,
// with connections and replies that record what happens to them, and
// force interleavings with the hub's hooks instead of waiting on timers
// (the session timeout is an hour: no clock runs out by itself).

// events records, in order, what happened to the test connections and
// replies of one test.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(ev string) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// recConn is a Conn named name that records Close and Finish.
type recConn struct {
	name string
	log  *events
}

func (c *recConn) Close()  { c.log.add(c.name + " close") }
func (c *recConn) Finish() { c.log.add(c.name + " finish") }

// recReply is a testReply that also records SendClose.
type recReply struct {
	*testReply
	log *events
}

func (r recReply) SendClose(body []byte) {
	r.log.add("reply send+close")
	r.testReply.SendClose(body)
}

// validStore is the database whose credential check can be made to fail,
// as after a password change (which moves the change counter, as the
// database's triggers do).
type validStore struct {
	Store
	mu      sync.Mutex
	invalid bool
}

func (s *validStore) Changes(ctx context.Context) (int64, error) {
	n, err := s.Store.Changes(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.invalid {
		n++
	}
	return n, err
}

func (s *validStore) Valid(ctx context.Context, c db.Credential) (bool, error) {
	s.mu.Lock()
	invalid := s.invalid
	s.mu.Unlock()
	if invalid {
		return false, nil
	}
	return s.Store.Valid(ctx, c)
}

func (s *validStore) invalidate() {
	s.mu.Lock()
	s.invalid = true
	s.mu.Unlock()
}

// sessionHub returns a hub over a fresh database where alice may open
// general, and that salon.
func sessionHub(t *testing.T) (*Hub, *validStore, db.Salon) {
	t.Helper()
	return sessionHubWith(t, nil)
}

// sessionHubWith is sessionHub with its configuration changed by mutate.
func sessionHubWith(t *testing.T, mutate func(*Config)) (*Hub, *validStore, db.Salon) {
	t.Helper()
	ctx := context.Background()
	d := testDB(t)
	if _, err := d.AddUser(ctx, "alice", alicePassword, []string{db.DefaultSalon}); err != nil {
		t.Fatal(err)
	}
	general, err := d.Salon(ctx, db.DefaultSalon)
	if err != nil {
		t.Fatal(err)
	}
	store := &validStore{Store: d}
	cfg := Config{SessionTimeout: time.Hour, Poll: time.Second, MaxMessage: 4000,
		MaxFetch: 100, MaxBody: 60000}
	if mutate != nil {
		mutate(&cfg)
	}
	h := New(store, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	return h, store, general
}

// loginOn starts a session on conn and logs alice in; general (when its ID
// is set) is her last active salon, so that her session's end is announced
// there.
func loginOn(t *testing.T, h *Hub, conn Conn, general db.Salon) *Session {
	t.Helper()
	s, err := h.NewSession(newChannel(t), testPeer("127.0.0.1:1"), conn)
	if err != nil {
		t.Fatal(err)
	}
	r := newReply()
	h.Handle(s, &net.Request{Op: net.OpLogin, ID: 1, Password: alicePassword}, 1, r)
	if a := r.wait(t); a.Op != net.OpConnected {
		t.Fatalf("login answered %+v", a)
	}
	if general.ID != 0 {
		s.setLastSalon(general.ID)
	}
	return s
}

// flush waits until the writer has handled every job queued so far (the
// announcements, the bye's turn).
func flush(t *testing.T, h *Hub) {
	t.Helper()
	done := make(chan struct{})
	if err := h.submit(job{done: func(db.Stored, error) { close(done) }}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer did not reach the marker within 10 s")
	}
}

// announcements counts "alice disconnected" in the salon.
func announcements(t *testing.T, h *Hub, salon db.Salon) int {
	t.Helper()
	flush(t, h)
	msgs, _, err := h.store.LatestWithin(context.Background(), salon.ID, 100, db.Budget{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.System && m.Text == "alice disconnected" {
			n++
		}
	}
	return n
}

// expire turns the session's clock back past its timeout.
func expire(s *Session) {
	s.mu.Lock()
	s.lastActive = time.Now().Add(-2 * s.hub.cfg.SessionTimeout)
	s.mu.Unlock()
}

// TestTimeoutRacesResume: a session whose clock runs out while a resume
// lands either times out (the resume gets unknown_session) or is resumed
// and keeps living — never both.
func TestTimeoutRacesResume(t *testing.T) {
	t.Run("ResumeAfterClockSeenOut", func(t *testing.T) {
		h, _, general := sessionHub(t)
		log := &events{}
		a, b := &recConn{"a", log}, &recConn{"b", log}
		s := loginOn(t, h, a, general)
		expire(s)
		// The resume lands after idle saw the clock run out, before it
		// decides: the session must live on.
		var old Conn
		var rerr *net.Error
		h.timedOut = func(*Session) { old, rerr = h.Resume(s, b, testPeer("127.0.0.1:2"), 7) }
		h.idle(s)
		h.timedOut = nil
		if rerr != nil {
			t.Fatalf("resume answered %+v", rerr)
		}
		if old != a {
			t.Fatalf("resume returned old connection %v, want a", old)
		}
		if ev := log.all(); len(ev) != 0 {
			t.Fatalf("a resumed session closed connections: %v", ev)
		}
		if h.Lookup(s.signer) != s {
			t.Fatal("resumed session forgotten")
		}
		if n := announcements(t, h, general); n != 0 {
			t.Fatalf("%d disconnections posted for a resumed session", n)
		}
		r := newReply()
		h.Handle(s, &net.Request{Op: net.OpSalons, ID: 8}, 1, r)
		if a := r.wait(t); a.Op != net.OpSalons {
			t.Fatalf("salons after the resume answered %+v", a)
		}
		// The clock was re-armed: it runs out again, and the session ends.
		expire(s)
		h.idle(s)
		if h.Lookup(s.signer) != nil || !slices.Equal(log.all(), []string{"b close"}) {
			t.Fatalf("after its next timeout: session %v, events %v", h.Lookup(s.signer), log.all())
		}
	})
	t.Run("TimeoutThenResume", func(t *testing.T) {
		h, _, general := sessionHub(t)
		log := &events{}
		a, b := &recConn{"a", log}, &recConn{"b", log}
		s := loginOn(t, h, a, general)
		expire(s)
		h.idle(s)
		if _, rerr := h.Resume(s, b, testPeer("127.0.0.1:2"), 7); rerr == nil || rerr.Code != net.CodeUnknownSession {
			t.Fatalf("resume of a timed out session answered %+v, want unknown_session", rerr)
		}
		if ev := log.all(); !slices.Equal(ev, []string{"a close"}) {
			t.Fatalf("events %v, want only a closed", ev)
		}
		if n := announcements(t, h, general); n != 1 {
			t.Fatalf("%d disconnections posted, want 1", n)
		}
	})
}

// TestEndClosesCurrentConnection: a session that ends on the connection a
// resume just moved it from closes the connection it now lives on too;
// the answer goes on the connection the request came on, before its close.
func TestEndClosesCurrentConnection(t *testing.T) {
	for name, tc := range map[string]struct {
		resume bool // the request comes on a, after a resume moved s to b
		op     string
		want   string // answer op, or error code
		closed string // the connection s lived on
	}{
		"ByeOnOldConnection":   {resume: true, op: net.OpBye, want: net.OpBye, closed: "b"},
		"ByeOnSameConnection":  {op: net.OpBye, want: net.OpBye, closed: "a"},
		"AuthOnOldConnection":  {resume: true, op: net.OpSalons, want: net.CodeAuth, closed: "b"},
		"AuthOnSameConnection": {op: net.OpSalons, want: net.CodeAuth, closed: "a"},
	} {
		t.Run(name, func(t *testing.T) {
			h, store, general := sessionHub(t)
			log := &events{}
			a, b := &recConn{"a", log}, &recConn{"b", log}
			s := loginOn(t, h, a, general)
			if tc.resume {
				if _, rerr := h.Resume(s, b, testPeer("127.0.0.1:2"), 7); rerr != nil {
					t.Fatalf("resume answered %+v", rerr)
				}
			}
			if tc.op != net.OpBye {
				store.invalidate()
			}
			r := recReply{newReply(), log}
			h.Handle(s, &net.Request{Op: tc.op, ID: 9}, 1, r)
			ans := r.wait(t)
			if got := ans.Op; got != tc.want && ans.Code != tc.want {
				t.Fatalf("%s answered %+v, want %s", tc.op, ans, tc.want)
			}
			if n := announcements(t, h, general); n != 1 { // also waits for the bye's turn
				t.Fatalf("%d disconnections posted, want 1", n)
			}
			want := []string{"reply send+close", tc.closed + " finish"}
			if ev := log.all(); !slices.Equal(ev, want) {
				t.Fatalf("events %v, want %v", ev, want)
			}
			if _, rerr := h.Resume(s, a, testPeer("127.0.0.1:3"), 10); rerr == nil || rerr.Code != net.CodeUnknownSession {
				t.Fatalf("resume after the end answered %+v, want unknown_session", rerr)
			}
		})
	}
}

// TestShutdownErasesKeys: Shutdown ends the live sessions; a session with
// no connection has its keys erased at once, one on a connection when the
// server detaches it, after its last answers are written.
func TestShutdownErasesKeys(t *testing.T) {
	h, _, general := sessionHub(t)
	log := &events{}
	a, b := &recConn{"a", log}, &recConn{"b", log}
	attached := loginOn(t, h, a, general)
	dropped := loginOn(t, h, b, general)
	h.Detach(dropped, b) // resumable until its timeout
	if dropped.Channel().Erased() || h.Sessions() != 2 {
		t.Fatal("a dropped logged-in session ended before its timeout")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !dropped.Channel().Erased() {
		t.Fatal("keys of a session with no connection kept after Shutdown")
	}
	if attached.Channel().Erased() || attached.Channel().Seal([]byte(`{"op":"bye","re":3}`)) == nil {
		t.Fatal("keys erased before the connection wrote its last answers")
	}
	if h.Sessions() != 0 || h.Lookup(attached.signer) != nil {
		t.Fatal("sessions still live after Shutdown")
	}
	h.Detach(attached, a)
	if !attached.Channel().Erased() {
		t.Fatal("keys kept once the connection was detached")
	}
	if ev := log.all(); len(ev) != 0 {
		t.Fatalf("Shutdown closed connections itself: %v", ev)
	}
}

func testPeer(addr string) Peer {
	ap := netip.MustParseAddrPort(addr)
	return Peer{Addr: addr, Source: net.SourceOf(ap.Addr())}
}
