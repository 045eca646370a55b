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
