package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"librecord/db"
	"librecord/net"
)

// The full-disk tests run the hub on a real database whose size is capped
// (db.Options.MaxPageCount): SQLite then fails with SQLITE_FULL, exactly
// as on a full disk.

// fullText is the size of every message: a page holds two.
var fullText = strings.Repeat("x", 1500)

const alicePassword = "alice's password"

// testReply collects the one answer of a request.
type testReply struct{ answers chan []byte }

func newReply() *testReply                         { return &testReply{answers: make(chan []byte, 1)} }
func (r *testReply) Send(body []byte)              { r.answers <- body }
func (r *testReply) SendClose(body []byte)         { r.answers <- body }
func (r *testReply) Drop()                         { close(r.answers) }
func (r *testReply) Done() <-chan struct{}         { return nil }
func (r *testReply) Room() func()                  { return func() {} }
func (r *testReply) AfterClose(func()) func() bool { return func() bool { return true } }

type answer struct {
	Op     string `json:"op"`
	Re     int64  `json:"re"`
	Code   string `json:"code"`
	Msg    int64  `json:"msg"`
	Status string `json:"status"`
	// Password is a passwd answer's new password.
	Password string `json:"password"`
}

func (r *testReply) wait(t *testing.T) answer {
	t.Helper()
	select {
	case body, ok := <-r.answers:
		if !ok {
			t.Fatal("request dropped without an answer")
		}
		var a answer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10 s")
	}
	return answer{}
}

type nopConn struct{}

func (nopConn) Close()  {}
func (nopConn) Finish() {}

// fullSetup makes a database with user alice in "general", 8 messages in
// a salon "filler" (room to free later), then opens it capped and stores
// messages in general until one does not fit. It returns the handle, the
// general salon, alice, and the index of the cid c%05d that did not fit.
func fullSetup(t *testing.T) (*db.DB, db.Salon, db.User, int) {
	t.Helper()
	ctx := context.Background()
	path, pass := createTestDB(t)
	setup, err := db.Open(ctx, path, pass)
	if err != nil {
		t.Fatal(err)
	}
	filler, err := setup.AddSalon(ctx, "filler")
	if err != nil {
		t.Fatal(err)
	}
	u, err := setup.AddUser(ctx, "alice", alicePassword, []string{db.DefaultSalon, filler.Name})
	if err != nil {
		t.Fatal(err)
	}
	general, err := setup.Salon(ctx, db.DefaultSalon)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := setup.InsertMessages(ctx, []db.NewMessage{{SalonID: filler.ID, UserID: u.ID,
			Cid: fmt.Sprintf("filler-%d", i), Pseudo: u.Pseudo, Text: fullText, Portions: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	setup.Close()

	d, err := db.OpenWith(ctx, path, pass, db.Options{MaxPageCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for i := range 100 {
		_, err := d.InsertMessages(ctx, []db.NewMessage{{SalonID: general.ID, UserID: u.ID,
			Cid: fmt.Sprintf("c%05d", i), Pseudo: u.Pseudo, Text: fullText, Portions: 1}})
		if errors.Is(err, db.ErrBusy) {
			return d, general, u, i
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("100 messages fit under the page cap")
	return nil, db.Salon{}, db.User{}, 0
}

func fullHub(t *testing.T, d *db.DB) *Hub {
	t.Helper()
	h := New(d, Config{SessionTimeout: time.Minute, Poll: time.Second, MaxMessage: 4000,
		MaxFetch: 100, MaxBody: 60000, MaxBatch: 16}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	return h
}

// login starts a session and logs alice in.
func login(t *testing.T, h *Hub) *Session {
	t.Helper()
	return loginOn(t, h, nopConn{}, db.Salon{})
}

func sendReq(h *Hub, s *Session, id int64, cid string) *testReply {
	r := newReply()
	h.Handle(s, &net.Request{Op: net.OpSend, ID: id, Salon: db.DefaultSalon, Text: fullText, Cid: cid}, 1, r)
	return r
}

func wantUnavailable(t *testing.T, a answer, id int64) {
	t.Helper()
	if a.Op != net.OpError || a.Code != net.CodeUnavailable || a.Re != id {
		t.Fatalf("send %d on a full database answered %+v, want error unavailable", id, a)
	}
}

func messagesIn(t *testing.T, d *db.DB, salonID int64) int {
	t.Helper()
	msgs, _, err := d.Latest(context.Background(), salonID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(msgs)
}

// TestSendFullDisk: a send while storage is full answers unavailable and
// stores nothing; once space is freed, the retry with the same cid is
// stored once and acked, and a second retry gets the same ack.
func TestSendFullDisk(t *testing.T) {
	ctx := context.Background()
	d, general, u, next := fullSetup(t)
	h := fullHub(t, d)
	s := login(t, h)
	before := messagesIn(t, d, general.ID)
	cid := fmt.Sprintf("c%05d", next) // the message that just did not fit

	wantUnavailable(t, sendReq(h, s, 2, cid).wait(t), 2)
	if _, found, err := d.LookupCid(ctx, u.ID, cid); err != nil || found {
		t.Fatalf("after unavailable, cid found %v, %v", found, err)
	}
	if n := messagesIn(t, d, general.ID); n != before {
		t.Fatalf("%d messages after unavailable, want %d", n, before)
	}

	if err := d.RemoveSalon(ctx, "filler", true); err != nil {
		t.Fatalf("free space: %v", err)
	}
	ack := sendReq(h, s, 3, cid).wait(t)
	if ack.Op != net.OpAck || ack.Re != 3 || ack.Msg == 0 {
		t.Fatalf("retry once space is back answered %+v, want ack", ack)
	}
	again := sendReq(h, s, 4, cid).wait(t)
	if again.Op != net.OpAck || again.Msg != ack.Msg {
		t.Fatalf("second retry answered %+v, want ack of message %d", again, ack.Msg)
	}
	if n := messagesIn(t, d, general.ID); n != before+1 {
		t.Fatalf("%d messages after the retries, want %d", n, before+1)
	}
	if st, found, err := d.LookupCid(ctx, u.ID, cid); err != nil || !found || st.ID != ack.Msg {
		t.Fatalf("LookupCid = %+v, %v, %v; want message %d", st, found, err, ack.Msg)
	}
}

// holdWriter queues a job that blocks the writer until the returned
// function is called, so that the sends issued meanwhile go into one batch.
func holdWriter(t *testing.T, h *Hub) (release func()) {
	t.Helper()
	held, done := make(chan struct{}), make(chan struct{})
	if err := h.submit(job{done: func(db.Stored, error) { close(held); <-done }}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("writer not held within 10 s")
	}
	return func() { close(done) }
}

// TestGroupCommitFullDisk: when the group commit of several sends fails
// for lack of space, every send of the batch answers unavailable and none
// is stored; once space is freed, the same batch is stored and acked.
func TestGroupCommitFullDisk(t *testing.T) {
	ctx := context.Background()
	d, general, u, next := fullSetup(t)
	h := fullHub(t, d)
	s := login(t, h)
	before := messagesIn(t, d, general.ID)
	const n = 4

	batch := func(firstID int64) []*testReply {
		release := holdWriter(t, h)
		replies := make([]*testReply, n)
		for i := range replies {
			replies[i] = sendReq(h, s, firstID+int64(i), fmt.Sprintf("c%05d", next+i))
		}
		if q := len(h.jobs); q != n {
			t.Fatalf("%d jobs queued, want the %d sends", q, n)
		}
		release()
		return replies
	}

	for i, r := range batch(10) {
		wantUnavailable(t, r.wait(t), 10+int64(i))
	}
	for i := range n {
		if _, found, err := d.LookupCid(ctx, u.ID, fmt.Sprintf("c%05d", next+i)); err != nil || found {
			t.Fatalf("message %d of the failed batch: found %v, %v", i, found, err)
		}
	}
	if got := messagesIn(t, d, general.ID); got != before {
		t.Fatalf("%d messages after the failed batch, want %d", got, before)
	}

	if err := d.RemoveSalon(ctx, "filler", true); err != nil {
		t.Fatalf("free space: %v", err)
	}
	seen := map[int64]bool{}
	for i, r := range batch(20) {
		a := r.wait(t)
		if a.Op != net.OpAck || a.Re != 20+int64(i) || a.Msg == 0 || seen[a.Msg] {
			t.Fatalf("send %d once space is back answered %+v, want an ack of its own message", i, a)
		}
		seen[a.Msg] = true
	}
	if got := messagesIn(t, d, general.ID); got != before+n {
		t.Fatalf("%d messages after the retried batch, want %d", got, before+n)
	}
}
