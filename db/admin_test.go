package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDisableEnable(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	mustUser(t, d, "alice", "general")
	mustUser(t, d, "bob", "general")
	ca, _ := d.Authenticate(ctx, "password-of-alice")
	cb, _ := d.Authenticate(ctx, "password-of-bob")

	u, changed, err := d.SetDisabled(ctx, "ALICE", true)
	if err != nil || !changed || !u.Disabled || u.Pseudo != "alice" {
		t.Fatalf("disable: %+v %v %v", u, changed, err)
	}
	if _, err := d.Authenticate(ctx, "password-of-alice"); !errors.Is(err, ErrDisabled) || !errors.Is(err, ErrAuth) {
		t.Fatalf("login of a disabled user: %v, want ErrDisabled and ErrAuth", err)
	}
	if _, err := d.Authenticate(ctx, "not anyone's password"); errors.Is(err, ErrDisabled) {
		t.Fatal("a wrong password is not ErrDisabled")
	}
	if ok, err := d.Valid(ctx, ca); ok || err != nil {
		t.Fatalf("disabled session still valid: %v %v", ok, err)
	}
	if ok, _ := d.Valid(ctx, cb); !ok {
		t.Fatal("bob's session ended by alice's disabling")
	}
	if _, changed, _ := d.SetDisabled(ctx, "alice", true); changed {
		t.Fatal("second disable changed something")
	}
	users, err := d.Users(ctx)
	if err != nil || len(users) != 2 || !users[0].Disabled || users[1].Disabled {
		t.Fatalf("Users: %+v %v", users, err)
	}
	if u, _ := d.User(ctx, "alice"); !u.Disabled || len(u.Salons) != 1 {
		t.Fatalf("User: %+v", u)
	}
	// Her password stays hers: nobody else may take it meanwhile.
	if _, err := d.AddUser(ctx, "carol", "password-of-alice", nil); !errors.Is(err, ErrPasswordInUse) {
		t.Fatalf("disabled user's password given away: %v", err)
	}

	if _, changed, err := d.SetDisabled(ctx, "alice", false); !changed || err != nil {
		t.Fatalf("enable: %v %v", changed, err)
	}
	if c, err := d.Authenticate(ctx, "password-of-alice"); err != nil || c.UserID != ca.UserID {
		t.Fatalf("login after enable: %+v %v", c, err)
	}
	if _, _, err := d.SetDisabled(ctx, "nobody", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

// rawBytes is the database file and its WAL, as on disk.
func rawBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func blobOf(t *testing.T, raw *sql.DB, id int64) []byte {
	t.Helper()
	var b []byte
	if err := raw.QueryRow(`SELECT blob FROM messages WHERE id = ?`, id).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRemoveMessages(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, _ := d.AddSalon(ctx, "dev")
	keep := send(t, d, gen.ID, alice, "c1", "keep me")
	small := send(t, d, gen.ID, alice, "c2", "remove me")
	// Larger than a page: its blob lives on overflow pages, freed whole.
	big := send(t, d, gen.ID, alice, "c3", strings.Repeat("a long secret ", 1500))
	other := send(t, d, dev.ID, alice, "c4", "in dev")

	raw, err := sql.Open("sqlite", "file:"+d.Path()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	blobs := [][]byte{blobOf(t, raw, small.ID), blobOf(t, raw, big.ID)}
	raw.Close()
	for _, b := range blobs {
		if !bytes.Contains(rawBytes(t, d.Path()), b[len(b)-48:]) {
			t.Fatal("the test cannot see a stored ciphertext in the raw bytes")
		}
	}

	// All or none: an id of another salon, or no message, removes nothing.
	for _, ids := range [][]int64{{small.ID, other.ID}, {small.ID, 999}} {
		_, err := d.RemoveMessages(ctx, "general", ids)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "message ") {
			t.Fatalf("RemoveMessages(%v): %v", ids, err)
		}
	}
	if _, err := d.RemoveMessages(ctx, "nope", []int64{small.ID}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown salon: %v", err)
	}
	if msgs, _, _ := d.Latest(ctx, gen.ID, 10); len(msgs) != 3 {
		t.Fatalf("a refused removal deleted something: %d left", len(msgs))
	}

	name, err := d.RemoveMessages(ctx, "GENERAL", []int64{big.ID, small.ID, small.ID})
	if err != nil || name != "general" {
		t.Fatalf("RemoveMessages: %q %v", name, err)
	}
	msgs, _, err := d.Latest(ctx, gen.ID, 10)
	if err != nil || len(msgs) != 1 || msgs[0].ID != keep.ID {
		t.Fatalf("after removal: %+v %v", msgs, err)
	}
	var exported []int64
	if err := d.Export(ctx, "general", func(m Message) error { exported = append(exported, m.ID); return nil }); err != nil || len(exported) != 1 {
		t.Fatalf("export after removal: %v %v", exported, err)
	}
	if fi, err := os.Stat(d.Path() + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("WAL not truncated: %d bytes", fi.Size())
	}
	all := rawBytes(t, d.Path())
	for i, b := range blobs {
		for off := 0; off+32 <= len(b); off += 32 {
			if bytes.Contains(all, b[off:off+32]) {
				t.Fatalf("removed blob %d still on disk (bytes %d..%d)", i, off, off+32)
			}
		}
	}
	// The id is not reused, and the cid of a removed message is free.
	if st := send(t, d, gen.ID, alice, "c2", "again"); st.ID <= other.ID || st.Duplicate {
		t.Fatalf("send after removal: %+v", st)
	}
}

func TestRenameSalon(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	send(t, d, gen.ID, alice, "c1", "history follows")
	d.AddSalon(ctx, "dev")

	from, to, err := d.RenameSalon(ctx, "GENERAL", "lobby")
	if err != nil || from != "general" || to != "lobby" {
		t.Fatalf("rename: %q %q %v", from, to, err)
	}
	if _, err := d.Access(ctx, alice.ID, "general"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old name still open: %v", err)
	}
	s, err := d.Access(ctx, alice.ID, "Lobby")
	if err != nil || s.ID != gen.ID || s.Name != "lobby" {
		t.Fatalf("new name: %+v %v", s, err)
	}
	if msgs, _, err := d.Latest(ctx, s.ID, 10); err != nil || len(msgs) != 1 || msgs[0].Salon != "lobby" {
		t.Fatalf("history: %+v %v", msgs, err)
	}
	if _, _, err := d.RenameSalon(ctx, "lobby", "DEV"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("rename onto dev: %v", err)
	}
	if _, _, err := d.RenameSalon(ctx, "lobby", "bad name"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, _, err := d.RenameSalon(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, to, err := d.RenameSalon(ctx, "lobby", "Lobby"); err != nil || to != "Lobby" {
		t.Fatalf("change of case: %q %v", to, err)
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"off": 0, "90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour, "1h": time.Hour, "36500d": MaxRetention,
	} {
		got, err := ParseRetention(in)
		if err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
		if FormatRetention(got) != in {
			t.Errorf("FormatRetention(%v) = %q, want %q", got, FormatRetention(got), in)
		}
	}
	for _, in := range []string{"", "0d", "0h", "d", "90", "90m", "-1d", "1.5d", "90 d", "36501d", "1w", "Off", "99999999d", "+3d"} {
		if _, err := ParseRetention(in); err == nil {
			t.Errorf("ParseRetention(%q) accepted", in)
		}
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, _ := d.AddSalon(ctx, "dev")
	var old []Stored
	for i := 0; i < 7; i++ {
		old = append(old, send(t, d, gen.ID, alice, "old"+string(rune('a'+i)), "old"))
	}
	send(t, d, dev.ID, alice, "dev1", "dev keeps everything")
	// The next messages are stored at a later millisecond than the old ones.
	for time.Now().UnixMilli() <= old[len(old)-1].At.UnixMilli() {
		time.Sleep(time.Millisecond)
	}
	fresh := send(t, d, gen.ID, alice, "new", "new")

	if n, err := d.Prune(ctx, time.Now().Add(1000*time.Hour), 3); n != 0 || err != nil {
		t.Fatalf("prune without retention: %d %v", n, err)
	}
	if _, err := d.SetRetention(ctx, "GENERAL", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	infos, _ := d.Salons(ctx)
	if infos[0].Name != "dev" || infos[0].Retention != 0 || infos[1].Retention != 24*time.Hour {
		t.Fatalf("Salons: %+v", infos)
	}
	// As of a day after the fresh message was stored: only it stays.
	n, err := d.Prune(ctx, fresh.At.Add(24*time.Hour), 3)
	if err != nil || n != 7 {
		t.Fatalf("prune: %d %v", n, err)
	}
	msgs, more, err := d.Latest(ctx, gen.ID, 10)
	if err != nil || more || len(msgs) != 1 || msgs[0].ID != fresh.ID {
		t.Fatalf("after prune: %+v %v %v", msgs, more, err)
	}
	if msgs, _, _ := d.Latest(ctx, dev.ID, 10); len(msgs) != 1 {
		t.Fatal("prune touched a salon without retention")
	}
	if n, err := d.Prune(ctx, fresh.At.Add(24*time.Hour), 3); n != 0 || err != nil {
		t.Fatalf("second prune: %d %v", n, err)
	}
	if _, err := d.SetRetention(ctx, "general", -time.Hour); err == nil {
		t.Fatal("negative retention accepted")
	}
	if _, err := d.SetRetention(ctx, "nope", time.Hour); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown salon: %v", err)
	}
}

// TestUpgradeAdminFixture: a database made by the binary of main before
// this schema (commit 4e23b48: init --insecure-test-kdf, passphrase
// "fixture passphrase"; alice and bob on general, alice on dev; three
// messages in general, two in dev) upgrades in place at its first open:
// users enabled, salons keep everything, history readable, and the new
// columns work.
func TestUpgradeAdminFixture(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	src, err := os.Open("testdata/admin-main-4e23b48.db")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()

	d, err := Open(ctx, path, []byte("fixture passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var version int64
	if err := d.r.QueryRow(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil || version != latestVersion() {
		t.Fatalf("schema %d, want %d (%v)", version, latestVersion(), err)
	}
	users, err := d.Users(ctx)
	if err != nil || len(users) != 2 || users[0].Disabled || users[1].Disabled {
		t.Fatalf("users: %+v %v", users, err)
	}
	infos, err := d.Salons(ctx)
	if err != nil || len(infos) != 2 || infos[0].Retention != 0 || infos[1].Retention != 0 || infos[1].Messages != 3 {
		t.Fatalf("salons: %+v %v", infos, err)
	}
	var texts []string
	if err := d.Export(ctx, "general", func(m Message) error { texts = append(texts, m.Text); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(texts) != 3 || texts[0] != "bonjour from the fixture" {
		t.Fatalf("history: %q", texts)
	}
	if _, _, err := d.SetDisabled(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, "bob-fixture-password"); !errors.Is(err, ErrDisabled) {
		t.Fatalf("disabled bob: %v", err)
	}
	if c, err := d.Authenticate(ctx, "alice-fixture-password"); err != nil || c.Pseudo != "alice" {
		t.Fatalf("alice: %+v %v", c, err)
	}
	if _, err := d.SetRetention(ctx, "dev", time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Prune(ctx, time.Now().Add(2*time.Hour), 0); err != nil || n != 2 {
		t.Fatalf("prune dev: %d %v", n, err)
	}
}

// TestChangesCounter: every change that can take access or a login away,
// or remove messages, moves the change counter (migration 00004's
// triggers); storing messages and adding users or salons do not.
func TestChangesCounter(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	if _, err := d.AddSalon(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddSalon(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddUser(ctx, "bob", "bob's password 1", []string{"general"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddUser(ctx, "eve", "eve's password 1", nil); err != nil {
		t.Fatal(err)
	}
	general, err := d.Salon(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	store := func() int64 {
		st, err := d.InsertMessages(ctx, []NewMessage{{SalonID: general.ID, Text: "x", System: true}})
		if err != nil {
			t.Fatal(err)
		}
		return st[0].ID
	}
	last, err := d.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string) {
		t.Helper()
		if n, err := d.Changes(ctx); err != nil || n != last {
			t.Fatalf("%s moved the counter: %d -> %d (%v)", what, last, n, err)
		}
	}
	moved := func(what string) {
		t.Helper()
		n, err := d.Changes(ctx)
		if err != nil || n <= last {
			t.Fatalf("%s did not move the counter: %d -> %d (%v)", what, last, n, err)
		}
		last = n
	}
	id := store()
	same("a stored message")
	if _, err := d.AddUser(ctx, "carol", "carol's password 1", nil); err != nil {
		t.Fatal(err)
	}
	same("a new user")
	if _, err := d.AddSalon(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	same("a new salon")
	steps := []struct {
		what string
		do   func() error
	}{
		{"grant", func() error { _, err := d.Grant(ctx, "dev", []string{"bob"}); return err }},
		{"revoke", func() error { _, err := d.Revoke(ctx, "dev", []string{"bob"}); return err }},
		{"disable", func() error { _, _, err := d.SetDisabled(ctx, "bob", true); return err }},
		{"enable", func() error { _, _, err := d.SetDisabled(ctx, "bob", false); return err }},
		{"reset-password", func() error { return d.ResetPassword(ctx, "bob", "bob's password 2") }},
		{"passwd", func() error {
			c, err := d.Authenticate(ctx, "bob's password 2")
			if err == nil {
				_, err = d.ChangePassword(ctx, c, "bob's password 2", "bob's password 3")
			}
			return err
		}},
		{"salon rename", func() error { _, _, err := d.RenameSalon(ctx, "dev", "ops"); return err }},
		{"salon remove", func() error { return d.RemoveSalon(ctx, "old", false) }},
		{"user remove", func() error { return d.RemoveUser(ctx, "eve") }},
		{"message remove", func() error { _, err := d.RemoveMessages(ctx, "general", []int64{id}); return err }},
		{"prune", func() error {
			store()
			if _, err := d.SetRetention(ctx, "general", time.Millisecond); err != nil {
				return err
			}
			moved("retention")
			n, err := d.Prune(ctx, time.Now().Add(time.Hour), 0)
			if err == nil && n == 0 {
				err = errors.New("nothing pruned")
			}
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		moved(s.what)
	}
}

// TestUpgradeFromSchema3: a database made by main's binary before the
// change counter (testdata/README.md) opens, migrates, keeps its users,
// grants and disabled user, and its new counter moves with a change.
func TestUpgradeFromSchema3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "librecord.db")
	copyFile(t, "testdata/main-9f652e1.db", path)
	d := openPass(t, path, []byte("fixture passphrase"))
	var version int64
	if err := d.r.QueryRow(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil || version != latestVersion() {
		t.Fatalf("schema %d, want %d (%v)", version, latestVersion(), err)
	}
	c, err := d.Authenticate(ctx, "alice fixture password")
	if err != nil || c.Pseudo != "alice" {
		t.Fatalf("alice: %+v %v", c, err)
	}
	if _, err := d.Access(ctx, c.UserID, "ops"); err != nil {
		t.Fatalf("alice's access to ops: %v", err)
	}
	if _, err := d.Authenticate(ctx, "bob fixture password"); !errors.Is(err, ErrDisabled) {
		t.Fatalf("bob: %v, want disabled", err)
	}
	before, err := d.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.SetDisabled(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	if after, err := d.Changes(ctx); err != nil || after <= before {
		t.Fatalf("change counter %d -> %d (%v)", before, after, err)
	}
}

// A salon removed with purge takes its messages with it as RemoveMessages
// does: no ciphertext of theirs stays in the file or its WAL, and the WAL
// is truncated.
func TestRemoveSalonPurgeScrubs(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, _ := d.AddSalon(ctx, "dev")
	keep := send(t, d, gen.ID, alice, "c1", "keep me")
	small := send(t, d, dev.ID, alice, "c2", "remove me")
	// Larger than a page: its blob lives on overflow pages, freed whole.
	big := send(t, d, dev.ID, alice, "c3", strings.Repeat("a long secret ", 1500))

	raw, err := sql.Open("sqlite", "file:"+d.Path()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	blobs := [][]byte{blobOf(t, raw, small.ID), blobOf(t, raw, big.ID)}
	raw.Close()
	for _, b := range blobs {
		if !bytes.Contains(rawBytes(t, d.Path()), b[len(b)-48:]) {
			t.Fatal("the test cannot see a stored ciphertext in the raw bytes")
		}
	}

	if err := d.RemoveSalon(ctx, "DEV", true); err != nil {
		t.Fatalf("RemoveSalon: %v", err)
	}
	if msgs, _, err := d.Latest(ctx, gen.ID, 10); err != nil || len(msgs) != 1 || msgs[0].ID != keep.ID {
		t.Fatalf("the other salon after removal: %+v %v", msgs, err)
	}
	if fi, err := os.Stat(d.Path() + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("WAL not truncated: %d bytes", fi.Size())
	}
	all := rawBytes(t, d.Path())
	for i, b := range blobs {
		for off := 0; off+32 <= len(b); off += 32 {
			if bytes.Contains(all, b[off:off+32]) {
				t.Fatalf("blob %d of the removed salon still on disk (bytes %d..%d)", i, off, off+32)
			}
		}
	}
}
