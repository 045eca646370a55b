package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// Moderation and retention (issue 11). Every change here takes effect on
// a running server at its next answer: what serve keeps in memory (access,
// credentials, recent messages) is tied to the change counter that these
// changes move (Changes, migration 00004).

// SetDisabled disables (or enables again) the user named pseudo. A
// disabled user's login is refused (ErrDisabled) and their live sessions
// end at their next request (Valid turns false); their messages, grants
// and password stay. It returns the user as now stored and whether this
// call changed anything.
func (d *DB) SetDisabled(ctx context.Context, pseudo string, disabled bool) (User, bool, error) {
	tx, err := d.begin(ctx)
	if err != nil {
		return User{}, false, storageErr(err)
	}
	defer tx.Rollback()
	u, err := userByName(ctx, tx, pseudo)
	if err != nil {
		return User{}, false, err
	}
	if u.Disabled == disabled {
		return u, false, nil
	}
	var at any // NULL: enabled
	if disabled {
		at = time.Now().UnixMilli()
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET disabled_at = ? WHERE id = ?`, at, u.ID); err != nil {
		return User{}, false, storageErr(err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, false, storageErr(err)
	}
	u.Disabled = disabled
	return u, true, nil
}

// RenameSalon gives the salon named old (ignoring case) the name new. Its
// id stays, so its grants and messages (whose blobs are bound to the id,
// not the name) follow. ErrNotFound, ErrInvalidName, or ErrDuplicate when
// another salon has the name new ignoring case; a change of case only is
// allowed. Clients still asking for old get forbidden from then on, as for
// a salon they may not open. It returns the names as they were and are.
func (d *DB) RenameSalon(ctx context.Context, old, new string) (from, to string, err error) {
	if err := checkName("salon name", new); err != nil {
		return "", "", err
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return "", "", storageErr(err)
	}
	defer tx.Rollback()
	s, err := salonByName(ctx, tx, old)
	if err != nil {
		return "", "", err
	}
	if other, err := salonByName(ctx, tx, new); err == nil && other.ID != s.ID {
		return "", "", fmt.Errorf("%w: salon %q exists", ErrDuplicate, other.Name)
	} else if err != nil && !isNotFound(err) {
		return "", "", err
	}
	if s.Name == new {
		return s.Name, new, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE salons SET name = ? WHERE id = ?`, new, s.ID); err != nil {
		return "", "", storageErr(err)
	}
	return s.Name, new, storageErr(tx.Commit())
}

// MaxRetention bounds a salon's retention (a century): longer is a typo.
const MaxRetention = 100 * 365 * 24 * time.Hour

// SetRetention sets how long the salon named name keeps its messages: 0
// keeps them forever, otherwise from a millisecond to MaxRetention. serve
// and Prune delete the older ones. It returns the salon's name as created.
func (d *DB) SetRetention(ctx context.Context, name string, retention time.Duration) (string, error) {
	if retention < 0 || retention > MaxRetention || (retention > 0 && retention < time.Millisecond) {
		return "", fmt.Errorf("retention %v: want 0 (keep forever) or up to %v", retention, MaxRetention)
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return "", storageErr(err)
	}
	defer tx.Rollback()
	s, err := salonByName(ctx, tx, name)
	if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE salons SET retain_ms = ? WHERE id = ?`, retention.Milliseconds(), s.ID); err != nil {
		return "", storageErr(err)
	}
	return s.Name, storageErr(tx.Commit())
}

// RemoveMessages deletes the messages ids of the salon named salon for
// good, all or none: an id that is not a message of that salon is
// ErrNotFound ("message N in salon S") and nothing is deleted. The rows
// go with SQLite's secure_delete on, so their cells and freed pages are
// overwritten with zeros, then a checkpoint copies the WAL into the file
// and truncates it, so that no copy of the old pages stays in the WAL.
// Fetches and exports no longer return them. It returns the salon's name
// as created. When the deletion committed but the WAL could not be
// truncated (readers kept it busy past the busy timeout), the error says
// so and is ErrBusy; running it again truncates it.
func (d *DB) RemoveMessages(ctx context.Context, salon string, ids []int64) (string, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	tx, err := d.beginDelete(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	s, err := salonByName(ctx, tx, salon)
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ? AND salon_id = ?`, id, s.ID)
		if err != nil {
			return "", storageErr(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", fmt.Errorf("message %d in salon %q: %w", id, s.Name, ErrNotFound)
		}
	}
	if err := tx.Commit(); err != nil {
		return "", storageErr(err)
	}
	if err := d.TruncateWAL(ctx); err != nil {
		return s.Name, fmt.Errorf("messages removed, but %w", err)
	}
	return s.Name, nil
}

// beginDelete begins a write transaction that deletes messages for good:
// with SQLite's secure_delete on, so their cells and freed pages are
// overwritten with zeros (the writer's DSN sets it too; this keeps the
// guarantee next to the deletions that rely on it). Callers that want no
// copy left in the WAL call TruncateWAL after the commit.
func (d *DB) beginDelete(ctx context.Context) (*sql.Tx, error) {
	tx, err := d.begin(ctx)
	if err != nil {
		return nil, storageErr(err)
	}
	if _, err := tx.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		tx.Rollback()
		return nil, storageErr(err)
	}
	return tx, nil
}

// TruncateWAL checkpoints the WAL into the database file and truncates it
// to zero bytes. It waits, retrying every few milliseconds up to the busy
// timeout, for readers and writers (of any process) that keep it from
// completing; then ErrWALBusy (which is ErrBusy). It blocks new writers while it runs: serve
// does not call it (see Prune).
func (d *DB) TruncateWAL(ctx context.Context) error {
	deadline := time.Now().Add(d.opts.BusyTimeout)
	for {
		var busy, frames, done int
		err := d.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done)
		if err == nil && busy == 0 {
			return nil
		}
		if err != nil {
			code, ok := sqliteCode(err)
			if !ok || (code&0xff != sqlite3.SQLITE_BUSY && code&0xff != sqlite3.SQLITE_LOCKED) {
				return storageErr(err)
			}
		}
		if time.Now().After(deadline) {
			return ErrWALBusy
		}
		pause := time.NewTimer(time.Millisecond + time.Duration(rand.Int64N(int64(4*time.Millisecond))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return ctx.Err()
		case <-pause.C:
		}
	}
}

// DefaultPruneBatch is how many messages one Prune transaction deletes at
// most: small enough that a send waiting for the write lock waits about
// as long as for one group commit.
const DefaultPruneBatch = 300

// Prune deletes the messages older than their salon's retention as of
// now (salons with retention 0 keep everything), with secure_delete on,
// in transactions of at most batch messages each (DefaultPruneBatch when
// batch <= 0), so that writers waiting for the lock (serve's group
// commits) get it between two of them. It returns how many it deleted,
// also when it stops on an error. It does not truncate the WAL: the
// deleted pages' old copies there go as SQLite checkpoints and reuses it
// (`librecord prune` calls TruncateWAL after it).
//
// Messages are read in id order and deletion stops at the first one not
// old enough: ids grow with the server's clock, so only after the clock
// went back does a message wait for the newer-looking one before it.
func (d *DB) Prune(ctx context.Context, now time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	type salonRetention struct{ id, retainMS int64 }
	rows, err := d.r.QueryContext(ctx, `SELECT id, retain_ms FROM salons WHERE retain_ms > 0 ORDER BY id`)
	if err != nil {
		return 0, storageErr(err)
	}
	var salons []salonRetention
	for rows.Next() {
		var s salonRetention
		if err := rows.Scan(&s.id, &s.retainMS); err != nil {
			rows.Close()
			return 0, storageErr(err)
		}
		salons = append(salons, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, storageErr(err)
	}
	var total int64
	for _, s := range salons {
		cutoff := now.UnixMilli() - s.retainMS
		for {
			n, err := d.pruneBatch(ctx, s.id, cutoff, batch)
			total += int64(n)
			if err != nil {
				return total, err
			}
			if n < batch {
				break
			}
		}
	}
	return total, nil
}

// pruneBatch deletes, in one transaction, up to batch of the oldest
// messages of the salon stored before cutoff (unix ms).
func (d *DB) pruneBatch(ctx context.Context, salonID, cutoff int64, batch int) (int, error) {
	tx, err := d.beginDelete(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, at FROM messages WHERE salon_id = ? ORDER BY id LIMIT ?`, salonID, batch)
	if err != nil {
		return 0, storageErr(err)
	}
	n, last := 0, int64(0)
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return 0, storageErr(err)
		}
		if at >= cutoff {
			break
		}
		n, last = n+1, id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, storageErr(err)
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE salon_id = ? AND id <= ?`, salonID, last); err != nil {
		return 0, storageErr(err)
	}
	if err := tx.Commit(); err != nil {
		return 0, storageErr(err)
	}
	return n, nil
}

// errRetention is what ParseRetention says about input it refuses.
var errRetention = errors.New("retention: use a whole number of days or hours, such as 90d or 36h, or off")

// ParseRetention reads a retention as the host types it: "off" (0, keep
// forever), or a whole number of days ("90d") or hours ("36h"), from one
// hour to MaxRetention.
func ParseRetention(s string) (time.Duration, error) {
	if s == "off" {
		return 0, nil
	}
	if len(s) < 2 || len(s) > 8 {
		return 0, fmt.Errorf("%q: %w", s, errRetention)
	}
	unit := time.Hour
	switch s[len(s)-1] {
	case 'd':
		unit = 24 * time.Hour
	case 'h':
	default:
		return 0, fmt.Errorf("%q: %w", s, errRetention)
	}
	var n int64
	for _, c := range s[:len(s)-1] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q: %w", s, errRetention)
		}
		n = n*10 + int64(c-'0')
	}
	if n == 0 {
		return 0, fmt.Errorf("%q: %w (to keep everything, say off)", s, errRetention)
	}
	if d := time.Duration(n) * unit; d <= MaxRetention {
		return d, nil
	}
	return 0, fmt.Errorf("%q: %w, at most %d days", s, errRetention, int64(MaxRetention/(24*time.Hour)))
}

// FormatRetention writes a retention as ParseRetention reads it: "off",
// whole days as "90d", else whole hours, else Go's duration format.
func FormatRetention(d time.Duration) string {
	switch {
	case d == 0:
		return "off"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// Healthy reports whether the database answers a read (serve's /healthz).
func (d *DB) Healthy(ctx context.Context) error {
	var n int64
	if err := d.r.QueryRowContext(ctx, `SELECT count(*) FROM meta`).Scan(&n); err != nil {
		return storageErr(err)
	}
	if n == 0 {
		return errors.New("corrupt database: no settings")
	}
	return nil
}
