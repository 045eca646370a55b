// Package atomicfile writes a file so that readers, and a crash, see
// either no file or the old one, or the whole new one: never a part of it.
// The bytes go to a hidden temporary file in the target's directory (a
// rename or a link does not cross file systems), which is synced, then
// renamed or linked into place, and the directory is synced so that the new
// name survives a power cut. On failure the temporary file is removed.
//
// Write replaces a file (known_servers, the input history); Create makes a
// file that must not exist yet and never replaces one (a new database, a
// backup). Their users span the layers (db, net/client, repl; layering
// main → commands → repl → net → db → crypto), so the package sits under
// db, the lowest of them that writes files, and imports nothing of
// librecord: any of them may import it.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Write replaces the file at path (or creates it) with what write writes,
// with permissions mode. A symbolic link at path is replaced by the file:
// resolve it first to update its target.
func Write(path string, mode fs.FileMode, write func(w io.Writer) error) (err error) {
	tmp, err := temp(path, mode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Create makes the file at path, with permissions mode, from fill, which
// is given the path of an empty temporary file to fill (by writing it, or
// by having another program such as SQLite write it) and must have closed
// it when it returns. Create never replaces a file: when path exists, it
// returns an error that matches fs.ErrExist, and writes nothing there.
func Create(path string, mode fs.FileMode, fill func(tmpPath string) error) error {
	tmp, err := temp(path, mode)
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // once linked, path keeps the file
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := fill(name); err != nil {
		return err
	}
	if err := syncFile(name); err != nil {
		return err
	}
	// Link, unlike rename, fails when path exists.
	if err := os.Link(name, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// temp creates the hidden temporary file beside path, with mode.
func temp(path string, mode fs.FileMode) (*os.File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return nil, fmt.Errorf("%q names no file", path)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // its path is the pattern, not a file
		}
		return nil, fmt.Errorf("cannot create a file in %s: %w", dir, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return tmp, nil
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return nil
}

// syncDir makes the entries of dir durable. Windows cannot sync a
// directory (and its renames are durable without it).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
