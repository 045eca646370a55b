package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var newPass = []byte("battery staple")

// rawMeta reads a meta value straight from the file.
func rawMeta(t testing.TB, path, key string) []byte {
	t.Helper()
	c, err := sql.Open("sqlite", roDSN(path, DefaultBusyTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var v []byte
	if err := c.QueryRow(`SELECT value FROM meta WHERE key = ?`, key).Scan(&v); err != nil {
		t.Fatalf("meta %s: %v", key, err)
	}
	return v
}

// rawBlobs reads every message blob straight from the file, by id.
func rawBlobs(t testing.TB, path string) map[int64][]byte {
	t.Helper()
	c, err := sql.Open("sqlite", roDSN(path, DefaultBusyTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rows, err := c.Query(`SELECT id, blob FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64][]byte{}
	for rows.Next() {
		var id int64
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// onDisk is the raw bytes of the database file and its WAL (and shared
// memory index), as anyone copying the directory would get them.
func onDisk(t testing.TB, path string) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(append(all, b...), 0)
	}
	return all
}

// blobMarks is, per message, the first 33 bytes of its blob (version and
// nonce, then ciphertext): always in one page, so a byte search finds
// them wherever the blob still is.
func blobMarks(blobs map[int64][]byte) map[int64][]byte {
	out := map[int64][]byte{}
	for id, b := range blobs {
		out[id] = b[:33]
	}
	return out
}

func countFound(disk []byte, marks map[int64][]byte) int {
	n := 0
	for _, m := range marks {
		if bytes.Contains(disk, m) {
			n++
		}
	}
	return n
}

// fill stores n messages in general from alice (every tenth one long
// enough to need overflow pages), in batches, and returns their texts by id.
func fill(t testing.TB, d *DB, n int) map[int64]string {
	t.Helper()
	ctx := context.Background()
	u, err := d.User(ctx, "alice")
	if errors.Is(err, ErrNotFound) {
		u = mustUser(t, d, "alice", "general")
	} else if err != nil {
		t.Fatal(err)
	}
	gen, _ := d.Salon(ctx, "general")
	out := map[int64]string{}
	for start := 0; start < n; start += 500 {
		var msgs []NewMessage
		for i := start; i < min(n, start+500); i++ {
			text := fmt.Sprintf("message %d", i)
			if i%10 == 0 {
				text += " " + strings.Repeat("long ", 1500)
			}
			msgs = append(msgs, NewMessage{SalonID: gen.ID, UserID: u.ID, Cid: fmt.Sprintf("%d-%d", len(out), i), Pseudo: "alice", Text: text, Portions: 1})
		}
		st, err := d.InsertMessages(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range st {
			out[s.ID] = msgs[i].Text
		}
	}
	return out
}

// readAll checks that every message of want reads back with its text.
func readAll(t testing.TB, d *DB, want map[int64]string) {
	t.Helper()
	ctx := context.Background()
	got := map[int64]string{}
	if err := d.Export(ctx, "general", func(m Message) error {
		got[m.ID] = m.Text
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, text := range want {
		if got[id] != text {
			t.Fatalf("message %d: %.40q, want %.40q", id, got[id], text)
		}
	}
}

func openPass(t testing.TB, path string, pass []byte) *DB {
	t.Helper()
	d, err := Open(context.Background(), path, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestChangePassphraseScrubs: while another handle (a running serve)
// keeps the database open and writing, a passphrase change leaves the old
// wrapped key in neither the file nor its WAL, and serve keeps working.
func TestChangePassphraseScrubs(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	serve := openPass(t, path, testPass)
	want := fill(t, serve, 50)
	oldWrapped := rawMeta(t, path, metaWrappedKey)
	if !bytes.Contains(onDisk(t, path), oldWrapped) {
		t.Fatal("precondition: the wrapped key is not found on disk")
	}
	admin := openPass(t, path, testPass)
	if err := admin.ChangePassphrase(ctx, newPass); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(onDisk(t, path), oldWrapped) {
		t.Fatal("the old wrapped key is still on disk")
	}
	if _, err := Open(ctx, path, testPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase: %v", err)
	}
	// serve, which holds the data key, goes on; a new open reads it all.
	for id, text := range fill(t, serve, 5) {
		want[id] = text
	}
	readAll(t, openPass(t, path, newPass), want)
}

// TestRotateKey: a rotation re-encrypts everything under a new key, users
// keep their passwords, and afterwards neither the old wrapped key nor any
// old ciphertext is on disk.
func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	d := openPass(t, path, testPass)
	want := fill(t, d, 1200)
	bob := mustUser(t, d, "bob", "general")
	fp, _ := Fingerprint(ctx, path)
	oldWrapped := rawMeta(t, path, metaWrappedKey)
	marks := blobMarks(rawBlobs(t, path))
	if n := countFound(onDisk(t, path), marks); n != len(marks) {
		t.Fatalf("precondition: %d of %d blobs found on disk", n, len(marks))
	}

	t.Run("ErrInUse", func(t *testing.T) {
		other := openPass(t, path, testPass)
		if err := d.CheckAlone(); !errors.Is(err, ErrInUse) {
			t.Fatalf("CheckAlone with another handle open: %v", err)
		}
		_, err := d.RotateKey(ctx, newPass, RotateOptions{})
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("rotate while another handle is open: %v", err)
		}
		other.Close()
		if err := d.CheckAlone(); err != nil {
			t.Fatalf("CheckAlone alone: %v", err)
		}
		// Still holding its shared lock: a rotation elsewhere is refused.
		if err := openPass(t, path, testPass).CheckAlone(); !errors.Is(err, ErrInUse) {
			t.Fatalf("CheckAlone of a second handle: %v", err)
		}
		if !bytes.Equal(rawMeta(t, path, metaWrappedKey), oldWrapped) {
			t.Fatal("refused rotation changed the wrapped key")
		}
	})

	var batches int
	res, err := d.RotateKey(ctx, newPass, RotateOptions{BatchSize: 100, AfterBatch: func(n int) error {
		batches = n
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reencrypted != int64(len(want)) || res.Resumed || len(res.Unreadable) != 0 || batches < 11 {
		t.Fatalf("rotation %+v after %d batches, want %d messages in batches of 100", res, batches, len(want))
	}
	disk := onDisk(t, path)
	if bytes.Contains(disk, oldWrapped) {
		t.Fatal("the old wrapped key is still on disk")
	}
	if n := countFound(disk, marks); n != 0 {
		t.Fatalf("%d old ciphertexts still on disk", n)
	}
	// The rotating handle goes on working.
	for id, text := range fill(t, d, 3) {
		want[id] = text
	}
	d.Close()

	if _, err := Open(ctx, path, testPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase: %v", err)
	}
	d2 := openPass(t, path, newPass)
	readAll(t, d2, want)
	for _, pw := range []string{"password-of-alice", "password-of-bob"} {
		if _, err := d2.Authenticate(ctx, pw); err != nil {
			t.Fatalf("login with %q after rotation: %v", pw, err)
		}
	}
	if u, _ := d2.Authenticate(ctx, "password-of-bob"); u.UserID != bob.ID {
		t.Fatal("bob's password names someone else")
	}
	if fp2, _ := Fingerprint(ctx, path); fp2 != fp || d2.RotationUnfinished() {
		t.Fatal("identity changed, or rotation left unfinished")
	}
}

// copyFile copies the database file alone (as a backup taken with serve
// stopped, after a checkpoint).
func copyFile(t testing.TB, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
}

// TestOldCopyAttack is the threat that tells the two commands apart:
// someone holds an old copy of the file and the old passphrase, and later
// gets the current file. They put the old wrapped key (and salt) into it.
// After a re-wrap that opens it, new messages included; after a rotation
// it opens nothing.
func TestOldCopyAttack(t *testing.T) {
	for name, rotate := range map[string]bool{"Rewrap": false, "RotateKey": true} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			path := testCreate(t)
			d := openPass(t, path, testPass)
			fill(t, d, 10)
			stolen := Backup(ctx, path, filepath.Join(t.TempDir(), "old-copy.db"))
			if stolen != nil {
				t.Fatal(stolen)
			}
			oldWrapped, oldSalt := rawMeta(t, path, metaWrappedKey), rawMeta(t, path, metaPassphraseSalt)
			if rotate {
				if _, err := d.RotateKey(ctx, newPass, RotateOptions{}); err != nil {
					t.Fatal(err)
				}
			} else if err := d.ChangePassphrase(ctx, newPass); err != nil {
				t.Fatal(err)
			}
			after := fill(t, d, 3)
			d.Close()

			// The attacker's copy of the current file, with the old key put back.
			loot := filepath.Join(t.TempDir(), "librecord.db")
			copyFile(t, path, loot)
			c, err := sql.Open("sqlite", "file:"+loot)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string][]byte{metaWrappedKey: oldWrapped, metaPassphraseSalt: oldSalt} {
				if _, err := c.Exec(`UPDATE meta SET value = ? WHERE key = ?`, v, k); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			a, err := Open(ctx, loot, testPass)
			if rotate {
				if err == nil {
					a.Close()
					t.Fatal("the old key opens the rotated file")
				}
				return
			}
			if err != nil {
				t.Fatalf("re-wrap keeps the data key, so this should open: %v", err)
			}
			defer a.Close()
			readAll(t, a, after)
		})
	}
}

// errStop plays a crash in the middle of a rotation.
var errStop = errors.New("stopped by the test")

// TestRotateKeyResume: a rotation stopped after a few batches leaves a
// database that opens with the old passphrase and reads everything (a
// serve may run on it and store messages); a plain passphrase change is
// refused; a second RotateKey finishes the job.
func TestRotateKeyResume(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	d := openPass(t, path, testPass)
	want := fill(t, d, 1000)
	oldWrapped := rawMeta(t, path, metaWrappedKey)
	marks := blobMarks(rawBlobs(t, path))

	_, err := d.RotateKey(ctx, newPass, RotateOptions{BatchSize: 100, AfterBatch: func(n int) error {
		if n == 3 {
			// Meanwhile no one else may open the file.
			if o, err := Open(ctx, path, testPass); !errors.Is(err, ErrRotating) {
				if o != nil {
					o.Close()
				}
				return fmt.Errorf("open during a rotation: %v, want ErrRotating", err)
			}
			return errStop
		}
		return nil
	}})
	if !errors.Is(err, errStop) {
		t.Fatalf("rotation: %v", err)
	}
	d.Close()
	if got := rawMeta(t, path, metaRotationCursor); string(got) == "0" || len(got) == 0 {
		t.Fatalf("cursor %q after 3 batches", got)
	}

	if _, err := Open(ctx, path, newPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the new passphrase opens an unfinished rotation: %v", err)
	}
	serve := openPass(t, path, testPass)
	if !serve.RotationUnfinished() {
		t.Fatal("RotationUnfinished false")
	}
	readAll(t, serve, want)
	for id, text := range fill(t, serve, 20) {
		want[id] = text
	}
	if _, err := serve.Authenticate(ctx, "password-of-alice"); err != nil {
		t.Fatal(err)
	}
	if err := serve.ChangePassphrase(ctx, newPass); !errors.Is(err, ErrRotationUnfinished) {
		t.Fatalf("ChangePassphrase during a rotation: %v", err)
	}
	serve.Close()

	d = openPass(t, path, testPass)
	res, err := d.RotateKey(ctx, newPass, RotateOptions{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Reencrypted != int64(len(want)-300) {
		t.Fatalf("resume: %+v, want %d re-encrypted", res, len(want)-300)
	}
	disk := onDisk(t, path)
	if bytes.Contains(disk, oldWrapped) || countFound(disk, marks) != 0 {
		t.Fatal("old key or old ciphertext still on disk")
	}
	d.Close()
	d = openPass(t, path, newPass)
	readAll(t, d, want)
	if d.RotationUnfinished() {
		t.Fatal("still unfinished")
	}
}

// TestRotateKeyUnreadable: a corrupt row is reported and left alone; the
// rest is rotated.
func TestRotateKeyUnreadable(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	d := openPass(t, path, testPass)
	want := fill(t, d, 30)
	ids := slices.Sorted(func(yield func(int64) bool) {
		for id := range want {
			if !yield(id) {
				return
			}
		}
	})
	bad := ids[7]
	c, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(`UPDATE messages SET blob = randomblob(61) WHERE id = ?`, bad); err != nil {
		t.Fatal(err)
	}
	c.Close()
	res, err := d.RotateKey(ctx, newPass, RotateOptions{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Unreadable, []int64{bad}) || res.Reencrypted != int64(len(want)-1) {
		t.Fatalf("rotation %+v, want message %d unreadable", res, bad)
	}
	d.Close()
	d = openPass(t, path, newPass)
	delete(want, bad)
	for _, id := range ids {
		if id == bad {
			continue
		}
		msgs, _, err := d.After(ctx, 1, id-1, 1)
		if err != nil || len(msgs) != 1 || msgs[0].Text != want[id] {
			t.Fatalf("message %d: %v %v", id, msgs, err)
		}
	}
}

// TestUpgradeFromMain: a database made by main's binary before schema 2
// (testdata/README.md) opens, migrates, keeps its users' passwords and
// messages, drops the old wrapped key's page, and rotates.
func TestUpgradeFromMain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "librecord.db")
	copyFile(t, "testdata/main-4e23b48.db", path)
	fixturePass := []byte("fixture passphrase two")
	want := map[int64]string{
		1: "bonjour from alice",
		2: "second line, with accents: élève ☕",
		3: "alice disconnected",
		6: "salut alice",
		7: "bob disconnected",
	}
	check := func(d *DB) {
		t.Helper()
		readAll(t, d, want)
		ops, err := d.Salon(ctx, "ops")
		if err != nil {
			t.Fatal(err)
		}
		msgs, _, err := d.Latest(ctx, ops.ID, 10)
		if err != nil || len(msgs) != 2 || msgs[0].Text != "long message "+strings.Repeat("x", 6000) {
			t.Fatalf("ops: %d messages, %v", len(msgs), err)
		}
		for pw, pseudo := range map[string]string{"alice old password": "alice", "bob's old password": "bob"} {
			c, err := d.Authenticate(ctx, pw)
			if err != nil || c.Pseudo != pseudo {
				t.Fatalf("login of %s: %+v %v", pseudo, c, err)
			}
		}
	}
	if _, err := Open(ctx, path, []byte("fixture passphrase")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the passphrase before main's change: %v", err)
	}
	d := openPass(t, path, fixturePass)
	check(d)
	var version int64
	if err := d.r.QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&version); err != nil || version != latestVersion() || version < 2 {
		t.Fatalf("schema %d, %v", version, err)
	}
	if len(rawMeta(t, path, metaPasswordKey)) == 0 {
		t.Fatal("password key not stored at the upgrade")
	}
	// The change counter (migration 00004) exists and moves.
	before, err := d.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Revoke(ctx, "ops", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if after, err := d.Changes(ctx); err != nil || after <= before {
		t.Fatalf("change counter %d -> %d (%v)", before, after, err)
	}
	if _, err := d.Grant(ctx, "ops", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// Opens again (now with the stored password key); a passphrase change
	// leaves no copy of the old wrapped key, not even in the pages the
	// migration freed; then it rotates.
	d = openPass(t, path, fixturePass)
	check(d)
	oldWrapped := rawMeta(t, path, metaWrappedKey)
	thirdPass := []byte("fixture passphrase three")
	if err := d.ChangePassphrase(ctx, thirdPass); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(onDisk(t, path), oldWrapped) {
		t.Fatal("the old wrapped key is still on disk")
	}
	d.Close()
	d = openPass(t, path, thirdPass)
	check(d)
	if _, err := d.RotateKey(ctx, newPass, RotateOptions{BatchSize: 2}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	check(openPass(t, path, newPass))
}

// TestWrongPassphraseWritesNothing: a refused open leaves the file as it
// was and creates no lock file.
func TestWrongPassphraseWritesNothing(t *testing.T) {
	path := testCreate(t)
	before := fileBytes(t, path)
	if _, err := Open(context.Background(), path, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatal(err)
	}
	if !bytes.Equal(before, fileBytes(t, path)) {
		t.Fatal("the database changed")
	}
	// (The read-only look may leave SQLite's -wal and -shm, empty of data.)
	if _, err := os.Stat(inUsePath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after a wrong passphrase: %v", err)
	}
}

// TestChangePassphraseNotScrubbed: a reader that never ends keeps the WAL
// from being truncated: the change is made (the new passphrase opens the
// file) and ErrNotScrubbed says the old key may remain.
func TestChangePassphraseNotScrubbed(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	d, err := OpenWith(ctx, path, testPass, Options{BusyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fill(t, d, 5)
	reader, err := sql.Open("sqlite", dsn(path, time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM messages`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("reader: %d %v", n, err)
	}
	if err := d.ChangePassphrase(ctx, newPass); !errors.Is(err, ErrNotScrubbed) {
		t.Fatalf("change with a reader holding the WAL: %v", err)
	}
	tx.Rollback()
	openPass(t, path, newPass)
}
