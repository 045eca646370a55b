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

// useLock is a handle's hold on the database's ".inuse" file: a shared
// flock while the handle is open, exclusive while RotateKey runs, so that
// a key rotation never runs beside another handle (serve or an admin
// command, in any process) that still seals with the old key. The file
// is never removed: removing it would let two holders lock two inodes.
type useLock struct {
	path string
	f    *os.File
}

// lockInUse takes the shared lock, or returns ErrRotating at once if a
// rotation holds it exclusively.
func lockInUse(dbPath string) (*useLock, error) {
	l := &useLock{path: inUsePath(dbPath)}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := flock(f, syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dbPath, ErrRotating)
		}
		return nil, fmt.Errorf("open database: lock %s: %w", l.path, err)
	}
	l.f = f
	return l, nil
}

// exclusive turns the shared lock into an exclusive one, or returns
// ErrInUse at once if another handle holds it (the shared lock is then
// taken again).
func (l *useLock) exclusive() error {
	err := flock(l.f, syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return nil
	}
	// A failed conversion may have dropped the shared lock (flock(2)).
	if err2 := flock(l.f, syscall.LOCK_SH); err2 != nil {
		return fmt.Errorf("lock %s: %w", l.path, err2)
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrInUse
	}
	return fmt.Errorf("lock %s: %w", l.path, err)
}

// shared turns an exclusive lock back into a shared one.
func (l *useLock) shared() error { return flock(l.f, syscall.LOCK_SH) }

func (l *useLock) release() error { return l.f.Close() }

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
