package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"librecord/db"
	"librecord/net"
	"librecord/net/testkit"
)

// gatedCounter is a change counter whose reads can be held, and which
// counts them.
type gatedCounter struct {
	Store
	mu    sync.Mutex
	n     int64
	calls int
	gate  chan struct{} // when set, a read waits for it after taking n
	in    chan struct{}
}

func (s *gatedCounter) Changes(ctx context.Context) (int64, error) {
	s.mu.Lock()
	s.calls++
	n, gate := s.n, s.gate
	s.gate = nil
	s.mu.Unlock()
	if gate != nil {
		s.in <- struct{}{}
		<-gate
	}
	return n, nil
}

// TestChangeReadsShared: callers asking while a read of the change
// counter runs share the next read, which starts after they asked: they
// see a change made while the first read ran, in one read for all.
func TestChangeReadsShared(t *testing.T) {
	s := &gatedCounter{gate: make(chan struct{}), in: make(chan struct{}, 1)}
	gate := s.gate
	h := &Hub{store: s, ctx: context.Background(), log: slog.New(slog.DiscardHandler)}
	first := make(chan int64)
	go func() {
		n, _ := h.readChanges(h.reads.mark())
		first <- n
	}()
	<-s.in // the first read took the counter and waits
	s.mu.Lock()
	s.n = 1 // a change, after the first read began
	s.mu.Unlock()
	const late = 5
	got := make(chan int64, late)
	for range late {
		go func() {
			n, _ := h.readChanges(h.reads.mark())
			got <- n
		}()
	}
	// The late callers wait for the first read to end before theirs
	// starts.
	testkit.WaitFor(t, "a late caller waiting", func() bool {
		h.reads.mu.Lock()
		defer h.reads.mu.Unlock()
		return h.reads.next != nil
	})
	close(gate)
	if n := <-first; n != 0 {
		t.Fatalf("first read %d, want 0", n)
	}
	for range late {
		if n := <-got; n != 1 {
			t.Fatalf("a late caller read %d: a read older than its call", n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls > 1+late || s.calls < 2 {
		t.Fatalf("%d reads", s.calls)
	}
	t.Logf("%d reads for %d callers", s.calls, 1+late)
}

// TestChangeReadsAfterMark: a caller shares any read that started after
// its mark, finished or running, and never one that started before.
func TestChangeReadsAfterMark(t *testing.T) {
	s := &gatedCounter{}
	h := &Hub{store: s, ctx: context.Background(), log: slog.New(slog.DiscardHandler)}
	before := h.reads.mark()
	if _, err := h.readChanges(before); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.n = 7 // a change after that read
	s.mu.Unlock()
	// An event older than the finished read: the read serves it.
	if n, _ := h.readChanges(before); n != 0 || s.calls != 1 {
		t.Fatalf("an event before the read: read %d in %d reads, want 0 in 1", n, s.calls)
	}
	// An event after it: a read of its own, which sees the change.
	if n, _ := h.readChanges(h.reads.mark()); n != 7 || s.calls != 2 {
		t.Fatalf("an event after the read: read %d in %d reads, want 7 in 2", n, s.calls)
	}
}

// counterReadsStore counts the reads of the change counter.
type counterReadsStore struct {
	Store
	mu    sync.Mutex
	reads int
}

func (s *counterReadsStore) Changes(ctx context.Context) (int64, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.Store.Changes(ctx)
}

func (s *counterReadsStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// parkedCount is how many fetches wait, not busy, on the salon.
func parkedCount(h *Hub, salonID int64) int {
	h.parking.mu.Lock()
	defer h.parking.mu.Unlock()
	n := 0
	for p := range h.parking.salons[salonID] {
		if !p.busy {
			n++
		}
	}
	return n
}

// memoryHub is a hub over a fresh database (file path, passphrase pass)
// that counts its counter reads, with alice and bob logged in, both may
// open general.
type memoryHub struct {
	h          *Hub
	store      *counterReadsStore
	path       string
	pass       []byte
	alice, bob *Session
	general    db.Salon
	id         int64
}

func newMemoryHub(t *testing.T) *memoryHub {
	t.Helper()
	ctx := context.Background()
	path, pass := createTestDB(t)
	d, err := db.Open(ctx, path, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.AddUser(ctx, "alice", alicePassword, []string{db.DefaultSalon}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddUser(ctx, "bob", "bob's password", []string{db.DefaultSalon}); err != nil {
		t.Fatal(err)
	}
	store := &counterReadsStore{Store: d}
	h := New(store, Config{SessionTimeout: time.Hour, Poll: time.Second, MaxMessage: 4000,
		MaxFetch: 100, MaxBody: 60000, MaxParked: 100}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	session := func(password string) *Session {
		s, err := h.NewSession(newChannel(t), testPeer("127.0.0.1:1"), nopConn{})
		if err != nil {
			t.Fatal(err)
		}
		r := newReply()
		h.Handle(s, &net.Request{Op: net.OpLogin, ID: 1, Password: password}, 1, r)
		if a := r.wait(t); a.Op != net.OpConnected {
			t.Fatalf("login answered %+v", a)
		}
		return s
	}
	alice, bob := session(alicePassword), session("bob's password")
	general, err := d.Salon(ctx, db.DefaultSalon)
	if err != nil {
		t.Fatal(err)
	}
	return &memoryHub{h: h, store: store, path: path, pass: pass, alice: alice, bob: bob, general: general, id: 10}
}

// sendReq sends text to general as s; the answer comes on the reply.
func (m *memoryHub) sendReq(s *Session, text string) *testReply {
	m.id++
	r := newReply()
	m.h.Handle(s, &net.Request{Op: net.OpSend, ID: m.id, Salon: db.DefaultSalon, Text: text, Cid: fmt.Sprint("c", m.id)}, 1, r)
	return r
}

// send sends text to general as s and returns the stored message's id.
func (m *memoryHub) send(t *testing.T, s *Session, text string) int64 {
	t.Helper()
	a := m.sendReq(s, text).wait(t)
	if a.Op != net.OpAck {
		t.Fatalf("send answered %+v", a)
	}
	return a.Msg
}

// longPoll asks general for what comes after the id, waiting up to wait ms.
func (m *memoryHub) longPoll(s *Session, after int64, wait int) *testReply {
	m.id++
	r := newReply()
	m.h.Handle(s, &net.Request{Op: net.OpFetch, ID: m.id, Salon: db.DefaultSalon, HasAfter: true, After: after, WaitMS: wait}, 1, r)
	return r
}

// warm fills memory: a message (general's window), then a long-poll of
// each user that ends empty (access and credential as of a counter
// read). It returns the message's id.
func (m *memoryHub) warm(t *testing.T) int64 {
	t.Helper()
	last := m.send(t, m.bob, "one")
	for _, s := range []*Session{m.alice, m.bob} {
		if a := m.longPoll(s, last, 1).wait(t); a.Op != net.OpMessages {
			t.Fatalf("warming long-poll answered %+v", a)
		}
	}
	return last
}

// other opens the database as another process would.
func (m *memoryHub) other(t *testing.T) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), m.path, m.pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestParkFromMemory: a long-poll that memory says would park (access,
// credential and the salon's window as of the last counter read) parks
// without reading the counter; the commit that wakes many of them costs
// one read for all, made after the commit, which sees a revoke made
// meanwhile by another process: the revoked user's fetch answers
// forbidden and never carries the message (PROTOCOL.md 4).
func TestParkFromMemory(t *testing.T) {
	ctx := context.Background()
	m := newMemoryHub(t)
	h, store, alice, bob := m.h, m.store, m.alice, m.bob
	last := m.warm(t)

	reads := store.count()
	const polls = 20
	var alices, bobs []*testReply
	for i := range polls {
		s := bob
		if i%2 == 0 {
			s = alice
		}
		r := m.longPoll(s, last, 10000)
		if s == alice {
			alices = append(alices, r)
		} else {
			bobs = append(bobs, r)
		}
	}
	if n := parkedCount(h, m.general.ID); n != polls {
		t.Fatalf("%d long-polls parked, want %d", n, polls)
	}
	if n := store.count() - reads; n != 0 {
		t.Fatalf("parking %d long-polls read the change counter %d times, want 0", polls, n)
	}

	// Another process takes general away from alice; bob writes there.
	if _, err := m.other(t).Revoke(ctx, db.DefaultSalon, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	reads = store.count()
	msg := m.send(t, bob, "two")
	for _, r := range bobs {
		if a := r.wait(t); a.Op != net.OpMessages {
			t.Fatalf("bob's woken long-poll answered %+v", a)
		}
	}
	for _, r := range alices {
		body := <-r.answers
		var a answer
		if err := json.Unmarshal(body, &a); err != nil || a.Op != net.OpError || a.Code != net.CodeForbidden {
			t.Fatalf("alice's woken long-poll answered %s, want forbidden (and not message %d)", body, msg)
		}
	}
	// The send's own check and the commit's, then the woken answers'.
	if n := store.count() - reads; n > 4 {
		t.Fatalf("waking %d long-polls read the change counter %d times", polls, n)
	}
}

// TestSendFromMemory: a send that memory finds allowed is queued without
// a counter read of its own; the group commit's read, made after it was
// queued, is its check. When that read finds the counter moved (here a
// revoke by another process while the send waited for the writer),
// nothing is stored and the send is checked again by reading: forbidden.
// A credential taken away the same way ends the session with auth.
func TestSendFromMemory(t *testing.T) {
	ctx := context.Background()
	m := newMemoryHub(t)
	m.warm(t)
	stored := func(text string) bool {
		t.Helper()
		msgs, _, err := m.other(t).LatestWithin(ctx, m.general.ID, 100, db.Budget{})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			if msg.Text == text {
				return true
			}
		}
		return false
	}

	// Unchanged: each send is acked; one read per commit, none per send.
	release := holdWriter(t, m.h)
	reads := m.store.count()
	var queued []*testReply
	for i := range 10 {
		queued = append(queued, m.sendReq(m.alice, fmt.Sprint("queued ", i)))
	}
	if n := m.store.count() - reads; n != 0 {
		t.Fatalf("10 sends read the change counter %d times before the commit, want 0", n)
	}
	release()
	for _, r := range queued {
		if a := r.wait(t); a.Op != net.OpAck {
			t.Fatalf("queued send answered %+v", a)
		}
	}

	// Revoked while queued: forbidden, nothing stored.
	release = holdWriter(t, m.h)
	revoked := m.sendReq(m.alice, "after the revoke")
	if _, err := m.other(t).Revoke(ctx, db.DefaultSalon, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	release()
	if a := revoked.wait(t); a.Op != net.OpError || a.Code != net.CodeForbidden {
		t.Fatalf("send revoked while queued answered %+v, want forbidden", a)
	}
	flush(t, m.h)
	if stored("after the revoke") {
		t.Fatal("the send refused as forbidden was stored")
	}

	// bob's send, checked in memory, meets his account disabled.
	m.send(t, m.bob, "fills memory at the new counter")
	release = holdWriter(t, m.h)
	disabled := m.sendReq(m.bob, "after the disable")
	if _, _, err := m.other(t).SetDisabled(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	release()
	if a := disabled.wait(t); a.Op != net.OpError || a.Code != net.CodeAuth {
		t.Fatalf("send of a user disabled while queued answered %+v, want auth", a)
	}
	flush(t, m.h)
	if stored("after the disable") || !stored("queued 9") {
		t.Fatal("the send refused as auth was stored, or an acked one was not")
	}
}
