package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"librecord/db/atomicfile"
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
	err = atomicfile.Create(target, 0o600, func(tmp string) error {
		defer removeCompanions(tmp)
		// A read transaction: in WAL mode it neither waits for nor blocks serve.
		if _, err := ro.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
			return fmt.Errorf("copy %s: %w", path, err)
		}
		return verifyCopy(ctx, tmp)
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s: %w", target, ErrTargetExists)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// verifyCopy checks the structure of a fresh copy.
func verifyCopy(ctx context.Context, path string) error {
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
