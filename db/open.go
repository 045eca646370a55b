package db

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"librecord/crypto"
)

//go:embed migrations/*.sql
var embedded embed.FS

// migrations is the goose source: db/migrations, as goose wants it.
var migrations = func() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}()

// applicationID marks a file as ours in its SQLite header ("LRCD"), so a
// foreign file is recognised on a read-only look before anything opens it
// for writing.
const applicationID = 0x4C524344

// Keys of the meta table.
const (
	metaPassphraseKDF   = "passphrase_kdf"   // JSON crypto.KDFParams
	metaPassphraseSalt  = "passphrase_salt"  // Argon2id salt of the passphrase
	metaWrappedKey      = "wrapped_data_key" // data key wrapped by the passphrase key
	metaPasswordKDF     = "password_kdf"     // JSON crypto.KDFParams
	metaPasswordSalt    = "password_salt"    // install-wide salt of password identifiers
	metaIdentityPublic  = "identity_public"  // Ed25519 public key, 32 bytes
	metaIdentityPrivate = "identity_private" // Ed25519 seed sealed by the data key
	metaCreatedAt       = "created_at"       // unix milliseconds
	// Since schema 2 (keys.go):
	metaPasswordKey    = "password_key"    // password-identifier key wrapped by the data key
	metaRotationKey    = "rotation_key"    // during a key rotation: the new data key wrapped by the old
	metaRotationCursor = "rotation_cursor" // during a key rotation: last message id re-encrypted (decimal)
)

// escapePath makes a file name safe inside a SQLite "file:" URI: SQLite
// decodes %XX and cuts the name at '?' and '#'.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// dsn builds the connection string. The pragmas apply to every pooled
// connection:
//   - journal_mode(WAL): readers never block the writer nor the writer
//     readers, so serve keeps answering while an admin command or a backup
//     reads, and a commit costs one append and one sync.
//   - synchronous(FULL): in WAL mode, NORMAL may lose the last commits on a
//     power cut; FULL syncs the WAL at every commit, so an acknowledged
//     message is on disk. Group commit (InsertMessages) keeps it fast.
//   - foreign_keys(1): grants and messages follow their user and salon.
//   - busy_timeout: wait for another process's write instead of failing.
//     On the writer it is short, and begin retries every few milliseconds
//     up to Options.BusyTimeout (see begin).
//   - _txlock=immediate (writer only): take the write lock at BEGIN, so a
//     read-then-write transaction never dies half way with SQLITE_BUSY
//     (FINDINGS.md: 749 failures in 2000 with deferred BEGIN, 0 with this).
//   - secure_delete(1) (writer only): deleted and overwritten content
//     (a replaced wrapped key, a re-encrypted or removed message) is
//     zeroed, not left in free space for someone holding an old key.
func dsn(path string, busy time.Duration, writer bool) string {
	q := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)", busy.Milliseconds())
	if writer {
		q += "&_pragma=journal_mode(WAL)&_pragma=secure_delete(1)&_txlock=immediate"
	} else {
		q += "&_pragma=query_only(1)"
	}
	return "file:" + escapePath(path) + "?" + q
}

// roDSN opens without any right to write: used to look at a file before
// trusting it (a foreign file is never modified).
func roDSN(path string, busy time.Duration) string {
	return fmt.Sprintf("file:%s?mode=ro&_pragma=busy_timeout(%d)", escapePath(path), busy.Milliseconds())
}

func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

// inspect checks that path is an existing Librecord database whose schema
// this binary knows, touching nothing, and returns a read-only handle on it.
func inspect(ctx context.Context, path string, busy time.Duration) (*sql.DB, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNoDatabase, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (not a regular file)", path, ErrNotLibrecord)
	}
	// First look: immutable=1 reads the header without locks, -wal or -shm
	// files, so even a foreign WAL database keeps every byte and file as it was.
	if err := checkApplicationID(ctx, path); err != nil {
		return nil, err
	}
	ro, err := sql.Open("sqlite", roDSN(path, busy))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	var version int64
	err = ro.QueryRowContext(ctx, `SELECT coalesce(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&version)
	if err != nil {
		ro.Close()
		if strings.Contains(err.Error(), "no such table") {
			return nil, fmt.Errorf("%s: %w (no schema version)", path, ErrNotLibrecord)
		}
		return nil, fmt.Errorf("read schema version of %s: %w", path, err)
	}
	if latest := latestVersion(); version > latest {
		ro.Close()
		return nil, fmt.Errorf("%s: %w (schema %d, this binary knows up to %d): upgrade librecord", path, ErrSchemaTooNew, version, latest)
	}
	return ro, nil
}

func checkApplicationID(ctx context.Context, path string) error {
	probe, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=ro&immutable=1")
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer probe.Close()
	var id int64
	err = probe.QueryRowContext(ctx, "PRAGMA application_id").Scan(&id)
	if code, ok := sqliteCode(err); ok && code&0xff == sqlite3.SQLITE_NOTADB {
		return fmt.Errorf("%s: %w (not an SQLite file)", path, ErrNotLibrecord)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if id != applicationID {
		return fmt.Errorf("%s: %w", path, ErrNotLibrecord)
	}
	return nil
}

// latestVersion is the newest migration embedded in this binary.
func latestVersion() int64 {
	entries, err := fs.ReadDir(migrations, ".")
	if err != nil {
		panic(err)
	}
	var latest int64
	for _, e := range entries {
		var v int64
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func metaValue(ctx context.Context, q querier, key string) ([]byte, error) {
	var v []byte
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("corrupt database: missing %s", key)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return v, nil
}

// metaOptional is metaValue for keys that may be absent (nil, nil then).
func metaOptional(ctx context.Context, q querier, key string) ([]byte, error) {
	var v []byte
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return v, nil
}

func metaKDF(ctx context.Context, q querier, key string) (crypto.KDFParams, error) {
	var p crypto.KDFParams
	raw, err := metaValue(ctx, q, key)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, fmt.Errorf("corrupt database: %s: %w", key, err)
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("corrupt database: %s: %w", key, err)
	}
	return p, nil
}

// minSaltLen bounds salts read from the database.
const minSaltLen = 16

// unlock reads the secrets with the passphrase, writing nothing.
func (d *DB) unlock(ctx context.Context, q querier, passphrase []byte) error {
	var err error
	if d.ppKDF, err = metaKDF(ctx, q, metaPassphraseKDF); err != nil {
		return err
	}
	if d.pwKDF, err = metaKDF(ctx, q, metaPasswordKDF); err != nil {
		return err
	}
	salt, err := metaValue(ctx, q, metaPassphraseSalt)
	if err != nil {
		return err
	}
	if d.pwSalt, err = metaValue(ctx, q, metaPasswordSalt); err != nil {
		return err
	}
	if len(salt) < minSaltLen || len(d.pwSalt) < minSaltLen {
		return errors.New("corrupt database: salt too short")
	}
	wrapped, err := metaValue(ctx, q, metaWrappedKey)
	if err != nil {
		return err
	}
	pub, err := metaValue(ctx, q, metaIdentityPublic)
	if err != nil {
		return err
	}
	sealed, err := metaValue(ctx, q, metaIdentityPrivate)
	if err != nil {
		return err
	}
	pwKey, err := metaOptional(ctx, q, metaPasswordKey)
	if err != nil {
		return err
	}
	rotation, err := metaOptional(ctx, q, metaRotationKey)
	if err != nil {
		return err
	}
	kek := crypto.DeriveKey(passphrase, salt, d.ppKDF)
	defer kek.Erase()
	data, err := kek.Unwrap(wrapped, "")
	if err != nil {
		return ErrWrongPassphrase
	}
	ring := &keyring{data: data, wrapped: wrapped}
	fail := func(msg string) error {
		ring.erase()
		d.pwKey.Erase()
		clear(d.identity)
		return errors.New("corrupt database: " + msg)
	}
	seed, err := data.Open(sealed, identityAD(pub))
	if err != nil || len(seed) != ed25519.SeedSize {
		return fail("identity key does not open")
	}
	d.identity = ed25519.NewKeyFromSeed(seed)
	clear(seed)
	if pwKey == nil {
		// Made before schema 2: the identifiers were tagged under the data
		// key's own subkey, which becomes the password key (stored at open).
		d.pwKey, d.pwLegacy = data.TagKey(passwordIDLabel), true
	} else if d.pwKey, err = data.Unwrap(pwKey, passwordIDLabel); err != nil {
		return fail("password key does not open")
	}
	if rotation != nil {
		if ring.other, err = data.Unwrap(rotation, rotationLabel); err != nil {
			return fail("rotation key does not open")
		}
		ring.rotating = true
	}
	d.ring.Store(ring)
	return nil
}

// stillCurrent returns ErrKeyChanged if the wrapped data key or the
// rotation state differ from what unlock read (a rotation finished or
// started in between).
func (d *DB) stillCurrent(ctx context.Context, q querier) error {
	wrapped, err := metaValue(ctx, q, metaWrappedKey)
	if err != nil {
		return err
	}
	rotation, err := metaOptional(ctx, q, metaRotationKey)
	if err != nil {
		return err
	}
	if !bytes.Equal(wrapped, d.ring.Load().wrapped) || (rotation != nil) != d.ring.Load().rotating {
		return ErrKeyChanged
	}
	return nil
}

func identityAD(pub []byte) []byte {
	return append([]byte("librecord/v1/identity\x00"), pub...)
}

// OpenWith is Open with tuning options.
func OpenWith(ctx context.Context, path string, passphrase []byte, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	ro, err := inspect(ctx, path, opts.BusyTimeout)
	if err != nil {
		return nil, err
	}
	d := &DB{path: path, opts: opts, hashSlots: make(chan struct{}, opts.MaxConcurrentHashes)}
	err = d.unlock(ctx, ro, passphrase)
	if err == nil {
		// Held from here until Close, so that a key rotation cannot start
		// while this handle holds the old key. Taken after the passphrase
		// is checked (a wrong one writes nothing, not even the lock file),
		// so the keys are checked again under it.
		d.inUse, err = lockInUse(path)
		if err == nil {
			err = d.stillCurrent(ctx, ro)
			if err != nil {
				d.inUse.release()
			}
		}
		if err != nil {
			d.ring.Load().erase()
			d.pwKey.Erase()
			clear(d.identity)
		}
	}
	ro.Close()
	if err != nil {
		if errors.Is(err, ErrWrongPassphrase) || errors.Is(err, ErrRotating) || errors.Is(err, ErrKeyChanged) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, fmt.Errorf("unlock %s: %w", path, err)
	}
	abandon := func() {
		d.inUse.release()
		d.ring.Load().erase()
		d.pwKey.Erase()
		clear(d.identity)
	}
	// From here on the file is known to be ours and the passphrase right:
	// opening for writing may switch a restored backup to WAL and migrate.
	if err := migrateFile(ctx, path, opts.BusyTimeout); err != nil {
		abandon()
		return nil, err
	}
	wdsn := dsn(path, writerBusyTimeout, true)
	if opts.MaxPageCount > 0 {
		wdsn += fmt.Sprintf("&_pragma=max_page_count(%d)", opts.MaxPageCount)
	}
	d.w, err = sql.Open("sqlite", wdsn)
	if err != nil {
		abandon()
		return nil, fmt.Errorf("open database: %w", err)
	}
	d.w.SetMaxOpenConns(1)
	d.w.SetConnMaxIdleTime(0)
	d.r, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, false))
	if err != nil {
		d.w.Close()
		abandon()
		return nil, fmt.Errorf("open database: %w", err)
	}
	d.r.SetMaxOpenConns(4)
	d.r.SetMaxIdleConns(4)
	// Connect the writer now, so that an unusable file or directory fails
	// here with a clear message rather than at the first message.
	if err := d.w.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s for writing: %w", path, err)
	}
	if d.pwLegacy {
		if err := d.storePasswordKey(ctx); err != nil {
			d.Close()
			return nil, fmt.Errorf("upgrade %s: %w", path, err)
		}
	}
	return d, nil
}

// migrateFile applies the pending migrations of an existing database on a
// connection of its own.
func migrateFile(ctx context.Context, path string, busy time.Duration) error {
	conn, err := sql.Open("sqlite", dsn(path, busy, true))
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer conn.Close()
	return migrate(ctx, conn, path, migrations, true)
}

// migrate applies pending migrations from src. With lock, goose runs under
// an exclusive lock on path+".lock", so two processes starting together
// never apply the same migration twice (goose takes no lock on SQLite:
// FINDINGS.md); the second one finds nothing pending once it gets the lock.
func migrate(ctx context.Context, conn *sql.DB, path string, src fs.FS, lock bool) error {
	var opts []goose.ProviderOption
	if lock {
		opts = append(opts, goose.WithLocker(&fileLocker{path: path + ".lock"}))
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, conn, src, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("read schema version of %s: %w", path, err)
	}
	if current > target {
		return fmt.Errorf("%s: %w (schema %d, this binary knows up to %d): upgrade librecord", path, ErrSchemaTooNew, current, target)
	}
	if current == target {
		return nil
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	return nil
}

// Check reports, without a passphrase and touching nothing, whether path is
// a Librecord database this binary can open: ErrNoDatabase,
// ErrNotLibrecord or ErrSchemaTooNew otherwise. Commands call it before
// asking for a passphrase.
func Check(ctx context.Context, path string) error {
	ro, err := inspect(ctx, path, DefaultBusyTimeout)
	if err != nil {
		return err
	}
	return ro.Close()
}

// WeakKDF reports whether the database was created with Argon2id
// parameters below the production defaults (--insecure-test-kdf), so that
// serve can warn that its passphrase and passwords resist no guessing.
func (d *DB) WeakKDF() bool {
	pp, pw := crypto.DefaultPassphraseKDF(), crypto.DefaultPasswordKDF()
	return d.ppKDF.MemoryKiB < pp.MemoryKiB || d.ppKDF.Time < pp.Time ||
		d.pwKDF.MemoryKiB < pw.MemoryKiB || d.pwKDF.Time < pw.Time
}

// writerBusyTimeout is SQLite's own wait on the writer connection. SQLite's
// busy handler backs off to one retry every 100 ms; against a process that
// commits back to back (serve under load) it lands in a free moment about
// once in several tries, so an admin write took ~400 ms on average in
// TestAdminWhileServing. begin polls every few milliseconds instead.
const writerBusyTimeout = 10 * time.Millisecond

// begin starts an IMMEDIATE transaction on the writer, retrying while
// another process holds the write lock, up to Options.BusyTimeout; then
// ErrBusy.
func (d *DB) begin(ctx context.Context) (*sql.Tx, error) {
	deadline := time.Now().Add(d.opts.BusyTimeout)
	for {
		tx, err := d.w.BeginTx(ctx, nil)
		if err == nil {
			return tx, nil
		}
		code, ok := sqliteCode(err)
		busy := ok && (code&0xff == sqlite3.SQLITE_BUSY || code&0xff == sqlite3.SQLITE_LOCKED)
		if !busy || time.Now().After(deadline) {
			return nil, storageErr(err)
		}
		pause := time.NewTimer(time.Millisecond + time.Duration(rand.Int64N(int64(2*time.Millisecond))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return nil, ctx.Err()
		case <-pause.C:
		}
	}
}
