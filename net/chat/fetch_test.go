package chat

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"librecord/crypto"
	"librecord/db"
	"librecord/net"
)

// wholeStore drops the budget of every page query: fetch reads limit
// messages and trims afterwards, as before budgets.
type wholeStore struct{ Store }

func (s wholeStore) LatestWithin(ctx context.Context, salonID int64, limit int, _ db.Budget) ([]db.Message, bool, error) {
	return s.Store.LatestWithin(ctx, salonID, limit, db.Budget{})
}

func (s wholeStore) BeforeWithin(ctx context.Context, salonID, id int64, limit int, _ db.Budget) ([]db.Message, bool, error) {
	return s.Store.BeforeWithin(ctx, salonID, id, limit, db.Budget{})
}

func (s wholeStore) AfterWithin(ctx context.Context, salonID, id int64, limit int, _ db.Budget) ([]db.Message, bool, error) {
	return s.Store.AfterWithin(ctx, salonID, id, limit, db.Budget{})
}

// countingStore counts the messages the budgeted queries return (those
// the database decrypted).
type countingStore struct {
	*db.DB
	read int
}

func (s *countingStore) LatestWithin(ctx context.Context, salonID int64, limit int, b db.Budget) ([]db.Message, bool, error) {
	msgs, more, err := s.DB.LatestWithin(ctx, salonID, limit, b)
	s.read += len(msgs)
	return msgs, more, err
}

func (s *countingStore) BeforeWithin(ctx context.Context, salonID, id int64, limit int, b db.Budget) ([]db.Message, bool, error) {
	msgs, more, err := s.DB.BeforeWithin(ctx, salonID, id, limit, b)
	s.read += len(msgs)
	return msgs, more, err
}

func (s *countingStore) AfterWithin(ctx context.Context, salonID, id int64, limit int, b db.Budget) ([]db.Message, bool, error) {
	msgs, more, err := s.DB.AfterWithin(ctx, salonID, id, limit, b)
	s.read += len(msgs)
	return msgs, more, err
}

// createTestDB creates a database with cheap KDF parameters in a temp dir.
func createTestDB(t *testing.T) (path string, pass []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "chat.db")
	kdf := crypto.InsecureTestKDF()
	pass = []byte("test passphrase")
	if err := db.Create(context.Background(), path, pass, db.CreateOptions{KDF: &kdf}); err != nil {
		t.Fatal(err)
	}
	return path, pass
}

// devWithAlice returns a fresh database with the salon dev, and alice,
// who may open it.
func devWithAlice(t *testing.T) (*db.DB, db.Salon, db.User) {
	t.Helper()
	ctx := context.Background()
	d := testDB(t)
	salon, err := d.AddSalon(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.AddUser(ctx, "alice", "alice's password", []string{salon.Name})
	if err != nil {
		t.Fatal(err)
	}
	return d, salon, u
}

func testDB(t *testing.T) *db.DB {
	t.Helper()
	path, pass := createTestDB(t)
	d, err := db.Open(context.Background(), path, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestFetchBudgetSameAnswer: reading within the frame's budget gives
// byte for byte the answer that reading limit messages and trimming them
// gives (PROTOCOL.md 3.3: those nearest the cursor, more: true), for
// every cursor, over texts that escape to twice their size, system
// messages and one message too large for the frame; and it reads less.
func TestFetchBudgetSameAnswer(t *testing.T) {
	ctx := context.Background()
	d, salon, u := devWithAlice(t)
	const maxBody = 1500
	var msgs []db.NewMessage
	for i := range 40 {
		n := (i * 37) % 400 // 0 to 399 bytes
		var text string
		switch i % 4 {
		case 0:
			text = strings.Repeat("x", n)
		case 1:
			text = strings.Repeat(`"`, n) // escapes to 2n
		case 2:
			text = strings.Repeat("\u2028", n/3+1) // 3 bytes, escapes to 6
		case 3:
			text = fmt.Sprintf("bob%d disconnected", i)
		}
		if i == 20 {
			text = strings.Repeat("y", maxBody) // stored under larger limits
		}
		m := db.NewMessage{SalonID: salon.ID, UserID: u.ID, Cid: fmt.Sprint(i), Pseudo: "alice", Text: text, Portions: 1}
		if i%4 == 3 {
			m = db.NewMessage{SalonID: salon.ID, Text: text, System: true}
		}
		msgs = append(msgs, m)
	}
	stored, err := d.InsertMessages(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingStore{DB: d}
	hub := func(s Store) *Hub {
		return &Hub{store: s, cfg: Config{MaxBody: maxBody}, ctx: ctx, log: slog.New(slog.DiscardHandler)}
	}
	budgeted, whole := hub(counting), hub(wholeStore{d})
	answer := func(h *Hub, req *net.Request, limit int) []byte {
		p, err := h.query(0, salon, req, limit)
		if err != nil {
			t.Fatal(err)
		}
		return h.pageBody(req, salon.Name, p)
	}
	asked := 0
	for _, limit := range []int{1, 3, 40} {
		reqs := []*net.Request{{ID: 1}}
		for _, s := range stored {
			reqs = append(reqs, &net.Request{ID: s.ID, HasBefore: true, Before: s.ID}, &net.Request{ID: s.ID, HasAfter: true, After: s.ID})
		}
		reqs = append(reqs, &net.Request{ID: 9, HasAfter: true, After: 0})
		for _, req := range reqs {
			want, got := answer(whole, req, limit), answer(budgeted, req, limit)
			if !bytes.Equal(got, want) {
				t.Fatalf("limit %d, request %+v:\nbudget %s\nwhole  %s", limit, req, got, want)
			}
			if len(got) > maxBody && !bytes.Contains(got, []byte(strings.Repeat("y", maxBody))) {
				t.Fatalf("answer of %d bytes over the %d-byte limit", len(got), maxBody)
			}
			asked += limit
		}
	}
	t.Logf("budgeted queries read %d messages where whole ones read up to %d", counting.read, asked)
	if counting.read*2 > asked {
		t.Fatalf("budgeted queries read %d messages of up to %d asked", counting.read, asked)
	}
}
