//go:build !unix

package db

import (
	"context"
	"database/sql"
)

// fileLocker does nothing where flock is missing: there, do not start two
// librecord processes on one database during an upgrade.
type fileLocker struct{ path string }

func (l *fileLocker) Lock(context.Context, *sql.DB) error   { return nil }
func (l *fileLocker) Unlock(context.Context, *sql.DB) error { return nil }

// useLock does nothing where flock is missing: there, stop serve and
// every admin command before librecord passphrase --rotate-key.
type useLock struct{}

func lockInUse(string) (*useLock, error) { return &useLock{}, nil }
func (l *useLock) exclusive() error      { return nil }
func (l *useLock) shared() error         { return nil }
func (l *useLock) release() error        { return nil }
