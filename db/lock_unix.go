//go:build unix

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// fileLocker is a goose lock.Locker holding an exclusive flock on a lock
// file next to the database while migrations run. The file is removed on
// unlock; a waiter that locked a removed file notices (the path no longer
// names the inode it holds) and tries again.
type fileLocker struct {
	path string
	f    *os.File
}

// lockPoll is how often a waiting process retries the lock.
const lockPoll = 20 * time.Millisecond

func (l *fileLocker) Lock(ctx context.Context, _ *sql.DB) error {
	for {
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				break
			}
			select {
			case <-ctx.Done():
				f.Close()
				return ctx.Err()
			case <-time.After(lockPoll):
			}
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("migration lock: %w", err)
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(l.path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			l.f = f
			return nil
		}
		f.Close() // the holder before us removed it: start over
	}
}

func (l *fileLocker) Unlock(context.Context, *sql.DB) error {
	if l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	l.f.Close()
	l.f = nil
	return err
}
