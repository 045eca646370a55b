package db

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"librecord/crypto"
)

var testKDF = crypto.InsecureTestKDF()

var testPass = []byte("correct horse")

func testCreate(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "librecord.db")
	if err := Create(context.Background(), path, testPass, CreateOptions{KDF: &testKDF}); err != nil {
		t.Fatal(err)
	}
	return path
}

func testOpen(t testing.TB) *DB {
	t.Helper()
	d, err := Open(context.Background(), testCreate(t), testPass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCreateOpen(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	if got := dirNames(t, filepath.Dir(path)); len(got) != 1 || got[0] != "librecord.db" {
		t.Fatalf("files after create: %v, want only librecord.db", got)
	}
	d, err := Open(ctx, path, testPass)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fp, err := Fingerprint(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if want := crypto.Fingerprint(d.Identity().Public().(ed25519.PublicKey)); fp != want {
		t.Fatalf("Fingerprint = %s, identity says %s", fp, want)
	}
	s, err := d.Salon(ctx, "GENERAL")
	if err != nil || s.Name != "general" {
		t.Fatalf("salon general: %+v %v", s, err)
	}
	// Same identity on a second open.
	d2, err := Open(ctx, path, testPass)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if !d.Identity().Equal(d2.Identity()) {
		t.Fatal("identity changed between opens")
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	ctx := context.Background()
	t.Run("ErrExists", func(t *testing.T) {
		path := testCreate(t)
		before := fileBytes(t, path)
		err := Create(ctx, path, []byte("other"), CreateOptions{KDF: &testKDF})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
		if !bytes.Equal(before, fileBytes(t, path)) {
			t.Fatal("existing database changed")
		}
	})
	t.Run("ForeignFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "notes.txt")
		os.WriteFile(path, []byte("my notes"), 0o644)
		if err := Create(ctx, path, testPass, CreateOptions{KDF: &testKDF}); !errors.Is(err, ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
		if got := string(fileBytes(t, path)); got != "my notes" {
			t.Fatalf("file now %q", got)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("ErrNoDatabase", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "missing.db")
		_, err := Open(ctx, path, testPass)
		if !errors.Is(err, ErrNoDatabase) {
			t.Fatalf("err = %v, want ErrNoDatabase", err)
		}
		if _, err := Fingerprint(ctx, path); !errors.Is(err, ErrNoDatabase) {
			t.Fatalf("Fingerprint err = %v", err)
		}
		if err := Backup(ctx, path, filepath.Join(dir, "b.db")); !errors.Is(err, ErrNoDatabase) {
			t.Fatalf("Backup err = %v", err)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Fatalf("files created: %v", names)
		}
	})
	t.Run("ErrWrongPassphrase", func(t *testing.T) {
		path := testCreate(t)
		before := fileBytes(t, path)
		_, err := Open(ctx, path, []byte("wrong horse"))
		if !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("err = %v, want ErrWrongPassphrase", err)
		}
		if !bytes.Equal(before, fileBytes(t, path)) {
			t.Fatal("database changed by a wrong passphrase")
		}
	})
	foreign := map[string]func(t *testing.T, path string){
		"Text": func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.Repeat("not a database at all\n", 50)), 0o644)
		},
		"Empty": func(t *testing.T, path string) {
			os.WriteFile(path, nil, 0o644)
		},
		"OtherSQLite": func(t *testing.T, path string) {
			writeForeignSQLite(t, path)
		},
	}
	for name, mk := range foreign {
		t.Run("ErrNotLibrecord/"+name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.db")
			mk(t, path)
			before := fileBytes(t, path)
			_, err := Open(ctx, path, testPass)
			if !errors.Is(err, ErrNotLibrecord) {
				t.Fatalf("err = %v, want ErrNotLibrecord", err)
			}
			if _, err := OpenOrCreate(ctx, path, testPass, CreateOptions{KDF: &testKDF}); !errors.Is(err, ErrNotLibrecord) {
				t.Fatalf("OpenOrCreate err = %v, want ErrNotLibrecord", err)
			}
			if _, err := Fingerprint(ctx, path); !errors.Is(err, ErrNotLibrecord) {
				t.Fatalf("Fingerprint err = %v", err)
			}
			if err := Backup(ctx, path, filepath.Join(dir, "b.db")); !errors.Is(err, ErrNotLibrecord) {
				t.Fatalf("Backup err = %v", err)
			}
			if !bytes.Equal(before, fileBytes(t, path)) {
				t.Fatal("foreign file changed")
			}
			if names := dirNames(t, dir); len(names) != 1 {
				t.Fatalf("files next to it: %v", names)
			}
		})
	}
	t.Run("ErrSchemaTooNew", func(t *testing.T) {
		path := testCreate(t)
		bumpSchema(t, path, latestVersion()+1)
		before := fileBytes(t, path)
		_, err := Open(ctx, path, testPass)
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("err = %v, want ErrSchemaTooNew", err)
		}
		if !bytes.Equal(before, fileBytes(t, path)) {
			t.Fatal("database changed")
		}
	})
}

func TestKDFParamsStored(t *testing.T) {
	d := testOpen(t)
	if d.ppKDF != testKDF || d.pwKDF != testKDF {
		t.Fatalf("kdf = %+v %+v, want the test params", d.ppKDF, d.pwKDF)
	}
}

// TestConcurrentCreate starts commands together on one fresh path, each
// with its own handle as separate processes would: exactly one creates,
// every OpenOrCreate ends on the same database.
func TestConcurrentCreate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "librecord.db")
	const n = 4
	var wg sync.WaitGroup
	created := make(chan error, n)
	fps := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			created <- Create(ctx, path, testPass, CreateOptions{KDF: &testKDF})
		}()
		go func() {
			defer wg.Done()
			d, err := OpenOrCreate(ctx, path, testPass, CreateOptions{KDF: &testKDF})
			if err != nil {
				fps <- "error: " + err.Error()
				return
			}
			fps <- crypto.Fingerprint(d.Identity().Public().(ed25519.PublicKey))
			d.Close()
		}()
	}
	wg.Wait()
	close(created)
	close(fps)
	wins := 0
	for err := range created {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrExists):
			t.Errorf("Create: %v", err)
		}
	}
	if wins > 1 {
		t.Errorf("%d Creates succeeded on one path", wins)
	}
	want, err := Fingerprint(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for fp := range fps {
		if fp != want {
			t.Errorf("OpenOrCreate got %s, file has %s", fp, want)
		}
	}
	if names := dirNames(t, filepath.Dir(path)); len(names) != 1 && !onlyCompanions(names) {
		t.Errorf("left behind: %v", names)
	}
}

func onlyCompanions(names []string) bool {
	for _, n := range names {
		if n != "librecord.db" && n != "librecord.db-wal" && n != "librecord.db-shm" && n != "librecord.db.inuse" {
			return false
		}
	}
	return true
}
