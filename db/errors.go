package db

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"

	lnet "librecord/net"
)

func checkName(kind, s string) error {
	if !lnet.ValidName(s) {
		return fmt.Errorf("%w: %s %q: %s", ErrInvalidName, kind, s, lnet.NameRule)
	}
	return nil
}

// Kinds of things a NotFoundError names.
const (
	KindUser  = "user"
	KindSalon = "salon"
)

// NotFoundError is ErrNotFound naming what was looked for, so that callers
// choose their next step by kind instead of reading the message.
type NotFoundError struct {
	Kind string // KindUser or KindSalon
	Name string // as it was asked for
}

// Error reads like `salon "dev": not found`.
func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.Name, ErrNotFound) }

// Unwrap makes errors.Is(err, ErrNotFound) hold.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// storageErr maps driver errors in one place: lock, I/O and disk-full
// trouble becomes ErrBusy (PROTOCOL.md code "unavailable": nothing stored,
// retry), unique constraints the error a person understands.
func storageErr(err error) error {
	if err == nil {
		return nil
	}
	code, ok := sqliteCode(err)
	if !ok {
		return err
	}
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL:
		return fmt.Errorf("%w: %w", ErrBusy, err)
	case sqlite3.SQLITE_CONSTRAINT:
		msg := err.Error()
		switch {
		case strings.Contains(msg, "users.pass_id"):
			return ErrPasswordInUse
		case strings.Contains(msg, "users.pseudo"), strings.Contains(msg, "salons.name"):
			return ErrDuplicate
		}
	}
	return err
}

// isNoRows is sql.ErrNoRows, named for the reader.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
