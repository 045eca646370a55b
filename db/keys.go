package db

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"librecord/crypto"
)

// Purposes of the keys wrapped by the data key (crypto.Key.Wrap).
const (
	passwordIDLabel = "password-id" // also the label of the identifiers' Tag before schema 2
	rotationLabel   = "rotation"
)

// inUsePath is the file whose lock says who has the database open (useLock).
func inUsePath(dbPath string) string { return dbPath + ".inuse" }

// keyring is the data key and, around a key rotation, one other key. A
// blob opens with either; new blobs are sealed with data.
type keyring struct {
	data *crypto.Key
	// other is the new data key while a rotation is unfinished (rotating),
	// or, in the process that finished one, the old key (readers that
	// began before the swap may still hand it old blobs).
	other    *crypto.Key
	rotating bool
	// wrapped is the wrapped data key this handle read or wrote last.
	wrapped []byte
}

func (r *keyring) open(blob, ad []byte) ([]byte, error) {
	pt, err := r.data.Open(blob, ad)
	if err != nil && r.other != nil {
		pt, err = r.other.Open(blob, ad)
	}
	return pt, err
}

func (r *keyring) erase() {
	if r != nil {
		r.data.Erase()
		r.other.Erase()
	}
}

// checkWrapped returns ErrKeyChanged if the wrapped data key in the file
// is no longer the one this handle unwrapped (another process changed the
// passphrase or finished a rotation): writing with this handle's keys
// would then lock everyone out.
func (d *DB) checkWrapped(ctx context.Context, tx *sql.Tx) error {
	wrapped, err := metaValue(ctx, tx, metaWrappedKey)
	if err != nil {
		return storageErr(err)
	}
	if !bytes.Equal(wrapped, d.ring.Load().wrapped) {
		return ErrKeyChanged
	}
	return nil
}

// storePasswordKey records the password key of a database made before
// schema 2, derived at unlock from the data key exactly as the stored
// identifiers were made, so that it survives a key rotation.
func (d *DB) storePasswordKey(ctx context.Context) error {
	tx, err := d.begin(ctx)
	if err != nil {
		return storageErr(err)
	}
	defer tx.Rollback()
	if err := d.checkWrapped(ctx, tx); err != nil {
		return err
	}
	// Another process upgrading at the same moment stores the same key.
	wrapped := d.ring.Load().data.Wrap(d.pwKey, passwordIDLabel)
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, metaPasswordKey, wrapped); err != nil {
		return storageErr(err)
	}
	if err := tx.Commit(); err != nil {
		return storageErr(err)
	}
	d.pwLegacy = false
	return nil
}

// RotationUnfinished reports whether the database holds an interrupted
// key rotation (as of this handle's open): RotateKey finishes it; until
// then every message still reads, and ChangePassphrase refuses.
func (d *DB) RotationUnfinished() bool { return d.ring.Load().rotating }

// ChangePassphrase re-wraps the data key under a key derived from
// newPassphrase with a fresh salt; no message is re-encrypted, and a
// running serve, which holds the data key, is not disturbed. When it
// returns nil the old wrapped key is gone from the database file and its
// WAL (overwritten, then checkpointed). Backups taken before keep opening
// with the old passphrase, and hold the same data key. It returns
// ErrRotationUnfinished or ErrKeyChanged, changing nothing, or
// ErrNotScrubbed once the change is made.
func (d *DB) ChangePassphrase(ctx context.Context, newPassphrase []byte) error {
	if len(newPassphrase) == 0 {
		return errors.New("change passphrase: empty passphrase")
	}
	salt := crypto.NewSalt()
	kek := crypto.DeriveKey(newPassphrase, salt, d.ppKDF)
	defer kek.Erase()
	tx, err := d.begin(ctx)
	if err != nil {
		return storageErr(err)
	}
	defer tx.Rollback()
	if err := d.checkWrapped(ctx, tx); err != nil {
		return err
	}
	rotation, err := metaOptional(ctx, tx, metaRotationKey)
	if err != nil {
		return storageErr(err)
	}
	if rotation != nil {
		return ErrRotationUnfinished
	}
	ring := d.ring.Load()
	wrapped := kek.Wrap(ring.data, "")
	if err := setMeta(ctx, tx, metaPassphraseSalt, salt, metaWrappedKey, wrapped); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return storageErr(err)
	}
	d.ring.Store(&keyring{data: ring.data, other: ring.other, rotating: ring.rotating, wrapped: wrapped})
	if err := d.scrub(ctx, false); err != nil {
		return fmt.Errorf("%w: %v", ErrNotScrubbed, err)
	}
	return nil
}

// setMeta updates meta rows, given as key, value pairs.
func setMeta(ctx context.Context, tx *sql.Tx, kv ...any) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, kv[i], kv[i+1]); err != nil {
			return storageErr(err)
		}
	}
	return nil
}

// CheckAlone returns ErrInUse if another handle, in any process, has the
// database open, so that a command can refuse before asking for anything.
// RotateKey checks again for itself.
func (d *DB) CheckAlone() error {
	if err := d.inUse.exclusive(); err != nil {
		return fmt.Errorf("%s: %w", d.path, err)
	}
	return d.inUse.shared()
}

// RotateOptions tune RotateKey. The zero value is production.
type RotateOptions struct {
	// BatchSize is how many messages one transaction re-encrypts
	// (default DefaultRotateBatch).
	BatchSize int
	// Progress, if set, is called after each committed batch with the
	// messages handled so far by this call and the number there were to do.
	Progress func(done, total int64)
	// AfterBatch, if set, is called after each committed batch with the
	// count of batches so far; an error stops the rotation there, left
	// unfinished as a crash would leave it. Test-only.
	AfterBatch func(batches int) error
}

// DefaultRotateBatch keeps each transaction of a rotation to a few
// milliseconds, so that it never holds one giant transaction.
const DefaultRotateBatch = 1000

// Rotation is what RotateKey did.
type Rotation struct {
	// Resumed: an interrupted rotation was found and finished.
	Resumed bool
	// Reencrypted counts the messages re-encrypted by this call.
	Reencrypted int64
	// Unreadable lists the messages that opened under neither key (a
	// corrupt or tampered row): left as they were, and unreadable for good.
	Unreadable []int64
}

// RotateKey replaces the data key with a new random one, re-encrypts every
// message and the identity key under it, and wraps it under a key derived
// from newPassphrase; the password identifiers keep their own key, so
// users keep their passwords. Messages are re-encrypted in transactions of
// BatchSize, the progress recorded in the database with each: a process
// killed half way leaves a database that opens and reads as before (with
// the old passphrase), and RotateKey on it finishes the job.
//
// It needs the database to itself: ErrInUse if any other handle, in any
// process, has it open (serve, an admin command); while it runs, Open
// elsewhere returns ErrRotating. When it returns nil the old wrapped key
// and the old message ciphertexts are gone from the file and its WAL
// (rewritten with secure_delete, vacuumed, checkpointed); ErrNotScrubbed
// means the rotation is done but that last step failed.
func (d *DB) RotateKey(ctx context.Context, newPassphrase []byte, opts RotateOptions) (Rotation, error) {
	var res Rotation
	if len(newPassphrase) == 0 {
		return res, errors.New("rotate key: empty passphrase")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultRotateBatch
	}
	if err := d.inUse.exclusive(); err != nil {
		return res, fmt.Errorf("%s: %w", d.path, err)
	}
	defer d.inUse.shared()

	ring, resumed, err := d.startRotation(ctx)
	if err != nil {
		return res, err
	}
	res.Resumed = resumed
	var total int64
	if err := d.r.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE id > ?`, d.rotationCursorHint(ctx)).Scan(&total); err != nil {
		return res, storageErr(err)
	}
	var done int64
	for batches := 1; ; batches++ {
		read, sealed, unreadable, more, err := d.rotateBatch(ctx, ring, opts.BatchSize)
		if err != nil {
			return res, err
		}
		done += int64(read)
		res.Reencrypted += int64(sealed)
		res.Unreadable = append(res.Unreadable, unreadable...)
		if opts.Progress != nil {
			opts.Progress(done, max(total, done))
		}
		if !more {
			break
		}
		if opts.AfterBatch != nil {
			if err := opts.AfterBatch(batches); err != nil {
				return res, err
			}
		}
	}

	// The slow derivation before taking the write lock.
	salt := crypto.NewSalt()
	kek := crypto.DeriveKey(newPassphrase, salt, d.ppKDF)
	defer kek.Erase()
	n, unreadable, err := d.finishRotation(ctx, ring, kek, salt)
	if err != nil {
		return res, err
	}
	res.Reencrypted += int64(n)
	res.Unreadable = append(res.Unreadable, unreadable...)
	if err := d.scrub(ctx, true); err != nil {
		return res, fmt.Errorf("%w: %v", ErrNotScrubbed, err)
	}
	return res, nil
}

// startRotation records a new data key (wrapped by the current one) and a
// cursor at 0, or finds the rotation this handle opened unfinished.
func (d *DB) startRotation(ctx context.Context) (*keyring, bool, error) {
	tx, err := d.begin(ctx)
	if err != nil {
		return nil, false, storageErr(err)
	}
	defer tx.Rollback()
	if err := d.checkWrapped(ctx, tx); err != nil {
		return nil, false, err
	}
	rotation, err := metaOptional(ctx, tx, metaRotationKey)
	if err != nil {
		return nil, false, storageErr(err)
	}
	ring := d.ring.Load()
	if rotation != nil || ring.rotating {
		if rotation == nil || !ring.rotating {
			return nil, false, ErrKeyChanged // started or finished by another handle since open
		}
		return ring, true, nil
	}
	next := crypto.NewKey()
	if err := setMeta(ctx, tx, metaRotationKey, ring.data.Wrap(next, rotationLabel),
		metaRotationCursor, []byte("0")); err != nil {
		next.Erase()
		return nil, false, err
	}
	if err := tx.Commit(); err != nil {
		next.Erase()
		return nil, false, storageErr(err)
	}
	ring = &keyring{data: ring.data, other: next, rotating: true, wrapped: ring.wrapped}
	d.ring.Store(ring)
	return ring, false, nil
}

// rotationCursorHint reads the cursor for the progress count (0 if unreadable).
func (d *DB) rotationCursorHint(ctx context.Context) int64 {
	v, err := metaOptional(ctx, d.r, metaRotationCursor)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(v), 10, 64)
	return n
}

// rotateBatch re-encrypts the next batch after the cursor in one
// transaction and moves the cursor past it.
func (d *DB) rotateBatch(ctx context.Context, ring *keyring, size int) (read, sealed int, unreadable []int64, more bool, err error) {
	tx, err := d.begin(ctx)
	if err != nil {
		return 0, 0, nil, false, storageErr(err)
	}
	defer tx.Rollback()
	read, sealed, unreadable, more, err = d.reencrypt(ctx, tx, ring, size)
	if err != nil {
		return 0, 0, nil, false, err
	}
	return read, sealed, unreadable, more, storageErr(tx.Commit())
}

// reencrypt re-seals up to size messages after the cursor under the new
// key, inside tx, and moves the cursor past those read. more is true when
// size were read.
// A blob that already opens under the new key (stored by a serve started
// on the unfinished rotation) is left as it is.
func (d *DB) reencrypt(ctx context.Context, tx *sql.Tx, ring *keyring, size int) (read, sealed int, unreadable []int64, more bool, err error) {
	raw, err := metaValue(ctx, tx, metaRotationCursor)
	if err != nil {
		return 0, 0, nil, false, storageErr(err)
	}
	cursor, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || cursor < 0 {
		return 0, 0, nil, false, fmt.Errorf("corrupt database: %s %q", metaRotationCursor, raw)
	}
	type row struct {
		id, salonID, at, userID int64
		cid                     string
		portions                int
		blob                    []byte
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, salon_id, at, user_id, coalesce(cid, ''), portions, blob
		FROM messages WHERE id > ? ORDER BY id LIMIT ?`, cursor, size)
	if err != nil {
		return 0, 0, nil, false, storageErr(err)
	}
	var batch []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.salonID, &r.at, &r.userID, &r.cid, &r.portions, &r.blob); err != nil {
			rows.Close()
			return 0, 0, nil, false, storageErr(err)
		}
		batch = append(batch, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, nil, false, storageErr(err)
	}
	if len(batch) == 0 {
		return 0, 0, nil, false, nil
	}
	update, err := tx.PrepareContext(ctx, `UPDATE messages SET blob = ? WHERE id = ?`)
	if err != nil {
		return 0, 0, nil, false, storageErr(err)
	}
	defer update.Close()
	for _, r := range batch {
		ad := messageAD(r.id, r.salonID, r.at, r.userID, r.cid, r.portions)
		pt, err := ring.data.Open(r.blob, ad)
		if err != nil {
			if _, err := ring.other.Open(r.blob, ad); err != nil {
				unreadable = append(unreadable, r.id)
			}
			continue
		}
		blob := ring.other.Seal(pt, ad)
		clear(pt)
		if _, err := update.ExecContext(ctx, blob, r.id); err != nil {
			return 0, 0, nil, false, storageErr(err)
		}
		sealed++
	}
	last := strconv.FormatInt(batch[len(batch)-1].id, 10)
	if err := setMeta(ctx, tx, metaRotationCursor, []byte(last)); err != nil {
		return 0, 0, nil, false, err
	}
	return len(batch), sealed, unreadable, len(batch) == size, nil
}

// finishRotation, in one transaction: re-encrypts any message stored since
// the last batch, re-seals the identity and password keys under the new
// key, wraps it under kek, and drops the old wrapped key and the rotation
// state.
func (d *DB) finishRotation(ctx context.Context, ring *keyring, kek *crypto.Key, salt []byte) (int, []int64, error) {
	tx, err := d.begin(ctx)
	if err != nil {
		return 0, nil, storageErr(err)
	}
	defer tx.Rollback()
	if err := d.checkWrapped(ctx, tx); err != nil {
		return 0, nil, err
	}
	var n int
	var unreadable []int64
	for {
		_, k, u, more, err := d.reencrypt(ctx, tx, ring, DefaultRotateBatch)
		if err != nil {
			return 0, nil, err
		}
		n += k
		unreadable = append(unreadable, u...)
		if !more {
			break
		}
	}
	pub := d.identity.Public().(ed25519.PublicKey)
	seed := d.identity.Seed()
	sealedSeed := ring.other.Seal(seed, identityAD(pub))
	clear(seed)
	wrapped := kek.Wrap(ring.other, "")
	if err := setMeta(ctx, tx,
		metaPassphraseSalt, salt,
		metaWrappedKey, wrapped,
		metaIdentityPrivate, sealedSeed,
		metaPasswordKey, ring.other.Wrap(d.pwKey, passwordIDLabel)); err != nil {
		return 0, nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key IN (?, ?)`, metaRotationKey, metaRotationCursor); err != nil {
		return 0, nil, storageErr(err)
	}
	// Swapped inside the transaction: this handle's writes all go through
	// the one writer connection, so none seals with the old key after it.
	d.ring.Store(&keyring{data: ring.other, other: ring.data, wrapped: wrapped})
	if err := tx.Commit(); err != nil {
		d.ring.Store(ring)
		return 0, nil, storageErr(err)
	}
	return n, unreadable, nil
}

// scrub removes from the files what a change just replaced. The changed
// pages were rewritten with secure_delete on, so the main file's copies
// are clean once checkpointed; the WAL still holds older frames until a
// truncating checkpoint. With vacuum, the whole file is rebuilt first,
// which also clears free space written before secure_delete was on.
func (d *DB) scrub(ctx context.Context, vacuum bool) error {
	if vacuum {
		if _, err := d.w.ExecContext(ctx, `VACUUM`); err != nil {
			return fmt.Errorf("compact %s: %w", d.path, storageErr(err))
		}
	}
	return d.checkpoint(ctx)
}

// checkpoint copies the WAL into the main file and truncates it to zero
// bytes, retrying while other connections (serve) read or write, up to
// Options.BusyTimeout.
func (d *DB) checkpoint(ctx context.Context) error {
	deadline := time.Now().Add(d.opts.BusyTimeout)
	for {
		var busy, frames, copied int
		err := d.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied)
		if err == nil && busy == 0 {
			return nil
		}
		if err != nil {
			code, ok := sqliteCode(err)
			if !ok || (code&0xff != sqlite3.SQLITE_BUSY && code&0xff != sqlite3.SQLITE_LOCKED) {
				return fmt.Errorf("checkpoint %s: %w", d.path, storageErr(err))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("checkpoint %s: %w: other connections kept the WAL busy", d.path, ErrBusy)
		}
		pause := time.NewTimer(5*time.Millisecond + time.Duration(rand.Int64N(int64(5*time.Millisecond))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return ctx.Err()
		case <-pause.C:
		}
	}
}
