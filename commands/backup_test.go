package commands

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"librecord/db"
)

func TestBackupNeedsNoPassphrase(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e := newInitEnv(t)
		e.mustRun("alice's password\n", false, "user", "add", "alice", "--salon", "general", "--password-stdin")
		noPass := []string{"--db", e.db} // no passphrase anywhere
		target := filepath.Join(e.dir, "backup.db")
		out, _, err := e.runRaw("", noPass, after, "backup", target)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, target) {
			t.Fatalf("backup said %q", out)
		}
		// The copy is a working database with the same passphrase and users.
		d, err := db.Open(context.Background(), target, []byte(testPassphrase))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.Authenticate(context.Background(), "alice's password"); err != nil {
			t.Fatal(err)
		}
		fp, _, err := e.runRaw("", noPass, after, "fingerprint")
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := db.Fingerprint(context.Background(), target); strings.TrimSpace(fp) != want {
			t.Fatalf("fingerprint %q, backup's %q", fp, want)
		}

		// Never overwrites.
		before, _ := os.ReadFile(target)
		_, _, err = e.runRaw("", noPass, after, "backup", target)
		if !errors.Is(err, db.ErrTargetExists) || Hint(err) == "" {
			t.Fatalf("existing target: %v", err)
		}
		if now, _ := os.ReadFile(target); string(now) != string(before) {
			t.Fatal("existing backup changed")
		}
		for name, args := range map[string][]string{
			"NoTarget":         {"backup"},
			"TwoTargets":       {"backup", "a.db", "b.db"},
			"MissingDirectory": {"backup", filepath.Join(e.dir, "no", "such", "dir", "b.db")},
		} {
			if _, _, err := e.runRaw("", noPass, after, args...); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}

func TestBackupUnwritableTarget(t *testing.T) {
	e := newInitEnv(t)
	dir := filepath.Join(e.dir, "ro")
	os.Mkdir(dir, 0o500)
	if os.Geteuid() == 0 {
		// root writes into any directory; /proc takes no new files.
		if runtime.GOOS != "linux" {
			t.Skip("needs a directory root cannot write")
		}
		dir = "/proc"
	}
	target := filepath.Join(dir, "librecord-test-backup.db")
	_, _, err := e.run("", false, "backup", target)
	if err == nil {
		t.Fatal("backup into an unwritable directory succeeded")
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("target exists: %v", err)
	}
}

func TestPassphraseChange(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		ctx := context.Background()
		e := newInitEnv(t)
		d, gen, alice := e.aliceInGeneral(false)
		d.InsertMessages(ctx, []db.NewMessage{{SalonID: gen.ID, UserID: alice.UserID, Cid: "1", Pseudo: "alice", Text: "before the change", Portions: 1}})
		fp := e.mustRun("", false, "fingerprint")

		newFile := filepath.Join(e.dir, "new.txt")
		os.WriteFile(newFile, []byte("battery staple\n"), 0o600)
		args := []string{"passphrase", "--new-passphrase-file", newFile}
		oldWrapped := wrappedKey(t, e.db)
		e.mustRun("", after, args...)
		// d stays open, as serve would: the WAL remains, without the old key.
		if bytes.Contains(onDisk(t, e.db), oldWrapped) {
			t.Fatal("the old wrapped key is still in the database file or its WAL")
		}

		if _, err := db.Open(ctx, e.db, []byte(testPassphrase)); !errors.Is(err, db.ErrWrongPassphrase) {
			t.Fatalf("old passphrase: %v", err)
		}
		d2, err := db.Open(ctx, e.db, []byte("battery staple"))
		if err != nil {
			t.Fatal(err)
		}
		defer d2.Close()
		msgs, _, err := d2.Latest(ctx, gen.ID, 10)
		if err != nil || len(msgs) != 1 || msgs[0].Text != "before the change" {
			t.Fatalf("messages after change: %v %v", msgs, err)
		}
		if _, err := d2.Authenticate(ctx, "alice's password"); err != nil {
			t.Fatal("passwords stopped working")
		}
		// The handle opened before the change (a running serve) keeps working.
		if _, _, err := d.Latest(ctx, gen.ID, 10); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(e.passFile, []byte("battery staple\n"), 0o600)
		if got := e.mustRun("", false, "fingerprint"); got != fp {
			t.Fatal("identity changed")
		}
		// No new passphrase and no terminal: refused, nothing changed.
		_, _, err = e.run("", after, "passphrase")
		if err == nil || !strings.Contains(err.Error(), "--new-passphrase-file") {
			t.Fatalf("err = %v", err)
		}
		e.mustRun("", false, "user", "list")
	})
}

func TestShortPassphraseRefused(t *testing.T) {
	t.Run("Init", func(t *testing.T) {
		e := newAdminEnv(t)
		os.WriteFile(e.passFile, []byte("short\n"), 0o600)
		_, _, err := e.run("", false, "init")
		if err == nil || !strings.Contains(err.Error(), "shorter than") {
			t.Fatalf("init with a short passphrase: %v", err)
		}
		if _, err := os.Stat(e.db); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a database was created anyway: %v", err)
		}
	})
	t.Run("Change", func(t *testing.T) {
		e := newInitEnv(t)
		newFile := filepath.Join(e.dir, "new.txt")
		os.WriteFile(newFile, []byte("abc\n"), 0o600)
		_, _, err := e.run("", true, "passphrase", "--new-passphrase-file", newFile)
		if err == nil || !strings.Contains(err.Error(), "shorter than") {
			t.Fatalf("passphrase change to a short one: %v", err)
		}
		d, err := db.Open(context.Background(), e.db, []byte(testPassphrase))
		if err != nil {
			t.Fatalf("the old passphrase should still open the database: %v", err)
		}
		d.Close()
	})
}
