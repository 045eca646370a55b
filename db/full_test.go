package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	sqlite3 "modernc.org/sqlite/lib"
)

// fullText is the size of every message of the full-disk tests: big enough
// that a page holds only two, so the file fills in a few inserts.
var fullText = strings.Repeat("x", 1500)

// openFull opens path with its size capped at what it is now: the next
// write that needs a new page fails with SQLITE_FULL, as on a full disk.
func openFull(t *testing.T, path string) *DB {
	t.Helper()
	d, err := OpenWith(context.Background(), path, testPass, Options{MaxPageCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func isFull(err error) bool {
	code, ok := sqliteCode(err)
	return ok && code&0xff == sqlite3.SQLITE_FULL
}

// integrityOK runs PRAGMA integrity_check on its own connection.
func integrityOK(t *testing.T, path string) {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res string
	if err := c.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
		t.Fatal(err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check: %s", res)
	}
}

func countRows(t *testing.T, d *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.r.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// fillMessages stores messages with cids c00000, c00001, ... until the
// database is full, and returns the index of the cid that did not fit.
func fillMessages(t *testing.T, d *DB, salonID int64, u User) int {
	t.Helper()
	for i := range 100 {
		_, err := d.InsertMessages(context.Background(), []NewMessage{{
			SalonID: salonID, UserID: u.ID, Cid: fmt.Sprintf("c%05d", i), Pseudo: u.Pseudo, Text: fullText, Portions: 1,
		}})
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrBusy) || !isFull(err) {
			t.Fatalf("insert into a full database: %v, want ErrBusy from SQLITE_FULL", err)
		}
		return i
	}
	t.Fatal("100 messages fit under the page cap")
	return 0
}

// TestFullDisk: when the database runs out of space, InsertMessages
// returns ErrBusy and stores nothing of the batch, what was stored before
// reads back, the file stays sound, and once space is back the same batch
// (same cids) is stored exactly once.
func TestFullDisk(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	setup, err := Open(ctx, path, testPass)
	if err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, setup, "alice", DefaultSalon)
	salon, err := setup.Salon(ctx, DefaultSalon)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		send(t, setup, salon.ID, u, fmt.Sprintf("before-%d", i), fmt.Sprintf("before %d", i))
	}
	setup.Close()

	d := openFull(t, path)
	next := fillMessages(t, d, salon.ID, u)
	t.Logf("%d messages fit under the cap", next)
	stored := countRows(t, d, `SELECT count(*) FROM messages`)
	if stored != 3+next {
		t.Fatalf("%d messages stored, want %d", stored, 3+next)
	}

	// The batch starts with the message that just did not fit, so it
	// cannot fit either.
	batch := make([]NewMessage, 5)
	for i := range batch {
		batch[i] = NewMessage{SalonID: salon.ID, UserID: u.ID, Cid: fmt.Sprintf("c%05d", next+i),
			Pseudo: u.Pseudo, Text: fullText, Portions: 1}
	}
	if _, err := d.InsertMessages(ctx, batch); !errors.Is(err, ErrBusy) || !isFull(err) {
		t.Fatalf("InsertMessages on a full database: %v, want ErrBusy from SQLITE_FULL", err)
	}
	if n := countRows(t, d, `SELECT count(*) FROM messages`); n != stored {
		t.Fatalf("after the failed batch %d messages, want %d", n, stored)
	}
	for _, m := range batch {
		if _, found, err := d.LookupCid(ctx, u.ID, m.Cid); err != nil || found {
			t.Fatalf("LookupCid(%s) after the failed batch: found %v, %v", m.Cid, found, err)
		}
	}
	msgs, _, err := d.Latest(ctx, salon.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != stored || msgs[0].Text != "before 0" || msgs[2].Text != "before 2" || msgs[len(msgs)-1].Text != fullText {
		t.Fatalf("read back %d messages %q..., want %d starting with the three before", len(msgs), texts(msgs[:min(3, len(msgs))]), stored)
	}
	integrityOK(t, path)

	// Space is back.
	if _, err := d.w.ExecContext(ctx, `PRAGMA max_page_count = 1000000`); err != nil {
		t.Fatal(err)
	}
	first, err := d.InsertMessages(ctx, batch)
	if err != nil {
		t.Fatalf("InsertMessages once space is back: %v", err)
	}
	again, err := d.InsertMessages(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range batch {
		if first[i].Duplicate || first[i].ID == 0 || !again[i].Duplicate || again[i].ID != first[i].ID {
			t.Fatalf("%s: first store %+v, retry %+v: want stored once, then known", m.Cid, first[i], again[i])
		}
		if n := countRows(t, d, `SELECT count(*) FROM messages WHERE cid = ?`, m.Cid); n != 1 {
			t.Fatalf("%s stored %d times", m.Cid, n)
		}
	}
	if n := countRows(t, d, `SELECT count(*) FROM messages`); n != stored+len(batch) {
		t.Fatalf("%d messages, want %d", n, stored+len(batch))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	integrityOK(t, path)
}

// TestFullDiskAdmin: AddUser on a full database says storage is
// unavailable because the disk is full, and adds nothing.
func TestFullDiskAdmin(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	d := openFull(t, path)
	// A user takes a few rows: add users until one does not fit.
	var err error
	added := 0
	for ; added < 200; added++ {
		if _, err = d.AddUser(ctx, fmt.Sprintf("user%03d", added), fmt.Sprintf("password-%03d", added), []string{DefaultSalon}); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrBusy) || !isFull(err) {
		t.Fatalf("AddUser on a full database after %d users: %v, want ErrBusy from SQLITE_FULL", added, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "storage unavailable") || !strings.Contains(msg, "full") {
		t.Fatalf("AddUser error %q does not say storage is full", msg)
	}
	t.Logf("%d users fit under the cap", added)
	failed := fmt.Sprintf("user%03d", added)
	users, err := d.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != added {
		t.Fatalf("%d users after the failed add, want %d", len(users), added)
	}
	if _, err := d.User(ctx, failed); !errors.Is(err, ErrNotFound) {
		t.Fatalf("User(%s) after the failed add: %v, want ErrNotFound", failed, err)
	}
	if n := countRows(t, d, `SELECT count(*) FROM grants`); n != added {
		t.Fatalf("%d grants after the failed add, want %d", n, added)
	}
	integrityOK(t, path)

	if _, err := d.w.ExecContext(ctx, `PRAGMA max_page_count = 1000000`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddUser(ctx, failed, fmt.Sprintf("password-%03d", added), []string{DefaultSalon}); err != nil {
		t.Fatalf("AddUser once space is back: %v", err)
	}
}
