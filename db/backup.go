package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrTargetExists: Backup's target (or an export's output) already exists;
// nothing was written.
var ErrTargetExists = errors.New("file already exists")

func backup(ctx context.Context, path, target string) error {
	ro, err := inspect(ctx, path, DefaultBusyTimeout)
	if err != nil {
		return err
	}
	defer ro.Close()
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("backup: %s: %w", target, ErrTargetExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	// VACUUM INTO a hidden file next to target (it accepts an empty file),
	// check it, then link it into place: target never holds a partial copy
	// and an existing file is never replaced.
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: cannot create a file in %s: %w", dir, bareErr(err))
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer removeSQLiteFiles(tmpPath)

	// A read transaction: in WAL mode it neither waits for nor blocks serve.
	if _, err := ro.ExecContext(ctx, `VACUUM INTO ?`, tmpPath); err != nil {
		return fmt.Errorf("backup: copy %s: %w", path, err)
	}
	if err := verifyCopy(ctx, tmpPath); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Link(tmpPath, target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("backup: %s: %w", target, ErrTargetExists)
		}
		return fmt.Errorf("backup: %w", err)
	}
	return syncDir(dir)
}

// verifyCopy syncs a fresh copy to disk and checks its structure.
func verifyCopy(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("sync copy: %w", err)
	}
	c, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=ro")
	if err != nil {
		return err
	}
	defer c.Close()
	var result string
	if err := c.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&result); err != nil {
		return fmt.Errorf("check copy: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("check copy: %s", result)
	}
	return nil
}
