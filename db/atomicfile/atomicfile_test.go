package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// entries lists the names in dir, to catch a temporary file left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

func check(t *testing.T, path, want string, mode fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s holds %q, want %q", path, got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}

func TestWrite(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "known_servers")
		if err := Write(path, 0o600, writeString("one\n")); err != nil {
			t.Fatal(err)
		}
		check(t, path, "one\n", 0o600)
		if err := Write(path, 0o644, writeString("two\n")); err != nil {
			t.Fatal(err)
		}
		check(t, path, "two\n", 0o644)
		if got := entries(t, dir); len(got) != 1 {
			t.Errorf("directory holds %v, want the file only", got)
		}
	})
	t.Run("FailedWriteKeepsOldFile", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "history")
		if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := Write(path, 0o600, func(w io.Writer) error {
			io.WriteString(w, "half")
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		check(t, path, "old", 0o600)
		if got := entries(t, dir); len(got) != 1 {
			t.Errorf("directory holds %v after a failure, want the old file only", got)
		}
	})
	t.Run("RenameFailsCleansUp", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "target")
		// A non-empty directory at path: the rename over it fails.
		if err := os.MkdirAll(filepath.Join(path, "inside"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := Write(path, 0o600, writeString("x")); err == nil {
			t.Fatal("Write over a non-empty directory succeeded")
		}
		if got := entries(t, dir); len(got) != 1 || got[0] != "target" {
			t.Errorf("directory holds %v after a failure, want target only", got)
		}
	})
	t.Run("NoDirectory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", "file")
		err := Write(path, 0o600, writeString("x"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want one matching fs.ErrNotExist", err)
		}
	})
}

func TestCreate(t *testing.T) {
	fill := func(s string) func(string) error {
		return func(tmp string) error {
			return os.WriteFile(tmp, []byte(s), 0)
		}
	}
	t.Run("OK", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "chat.db")
		if err := Create(path, 0o600, fill("db")); err != nil {
			t.Fatal(err)
		}
		check(t, path, "db", 0o600)
		if got := entries(t, dir); len(got) != 1 {
			t.Errorf("directory holds %v, want the file only", got)
		}
	})
	t.Run("ErrExist", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "chat.db")
		if err := os.WriteFile(path, []byte("precious"), 0o640); err != nil {
			t.Fatal(err)
		}
		err := Create(path, 0o600, fill("new"))
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("err = %v, want one matching fs.ErrExist", err)
		}
		check(t, path, "precious", 0o640)
		if got := entries(t, dir); len(got) != 1 {
			t.Errorf("directory holds %v, want the old file only", got)
		}
	})
	t.Run("FailedFillLeavesNothing", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "backup.db")
		boom := errors.New("boom")
		var seen string
		err := Create(path, 0o600, func(tmp string) error {
			seen = tmp
			os.WriteFile(tmp, []byte("half"), 0)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if filepath.Dir(seen) != dir {
			t.Errorf("temporary file %s is not in the target's directory %s", seen, dir)
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("directory holds %v after a failure, want nothing", got)
		}
	})
	t.Run("NoFileName", func(t *testing.T) {
		if err := Create(t.TempDir()+"/", 0o600, fill("x")); err == nil {
			t.Error("Create of a directory path succeeded")
		}
	})
}
