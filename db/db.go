// Package db is Librecord's storage: one SQLite file (modernc.org/sqlite),
// schema migrations embedded from db/migrations (goose), users, salons,
// access grants and messages encrypted at rest (PROTOCOL.md section 7).
// Open it with Open (or Create/OpenOrCreate); every method is safe for
// concurrent use and safe while another process uses the same file.
//
// Keys: a random data key seals every message blob, the identity private
// key and the password-identifier key; it is stored wrapped by a key
// derived (Argon2id) from the host passphrase, so changing the passphrase
// re-wraps one key and re-encrypts nothing (ChangePassphrase). RotateKey
// replaces the data key itself, re-encrypting in batches that a second
// run resumes. Fingerprint and Backup need no passphrase.
package db

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"librecord/crypto"
)

// Errors a caller maps to user-facing messages or protocol codes.
var (
	// ErrNoDatabase: the file does not exist (hint: run librecord init).
	ErrNoDatabase = errors.New("no database")
	// ErrExists: Create found a file already there; nothing was touched.
	ErrExists = errors.New("database already exists")
	// ErrNotLibrecord: the file is not a Librecord database; not one byte was changed.
	ErrNotLibrecord = errors.New("not a Librecord database")
	// ErrSchemaTooNew: the file was written by a newer librecord.
	ErrSchemaTooNew = errors.New("database schema is newer than this librecord")
	// ErrWrongPassphrase: the passphrase does not unwrap the data key.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrAuth: no user has this password (Authenticate).
	ErrAuth = errors.New("wrong password")
	// ErrDisabled: the password is right but the host disabled its user
	// (Authenticate). It is also ErrAuth: the peer gets the same answer;
	// only the failed-login count tells them apart.
	ErrDisabled = fmt.Errorf("%w: user disabled by the host", ErrAuth)
	// ErrNotFound: unknown user or salon.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: pseudo or salon name already taken (ignoring case).
	ErrDuplicate = errors.New("name already taken")
	// ErrPasswordInUse: another user already has this password.
	ErrPasswordInUse = errors.New("password already in use")
	// ErrInvalidName: a pseudo or salon name outside PROTOCOL.md section 4.
	ErrInvalidName = errors.New("invalid name")
	// ErrBusy: storage unavailable (locked too long, disk full): nothing stored.
	ErrBusy = errors.New("storage unavailable")
	// ErrInvalidPassword: a chosen password is too short, too long or holds
	// a control character (crypto.CheckPassword).
	ErrInvalidPassword = errors.New("invalid password")
	// ErrWALBusy: TruncateWAL kept waiting for other connections (of any
	// process) past the busy timeout. It is also ErrBusy. After a deletion
	// for good it means the rows are gone from the database but old copies
	// of their pages may remain in the WAL; truncating it again (`librecord
	// prune`) clears them.
	ErrWALBusy = fmt.Errorf("%w: the WAL checkpoint kept waiting for other connections", ErrBusy)
	// ErrSalonNotEmpty: RemoveSalon without purge on a salon with messages.
	ErrSalonNotEmpty = errors.New("salon has messages")
	// ErrInUse: RotateKey found the database open elsewhere (serve or an
	// admin command, in this process or another); nothing was changed.
	ErrInUse = errors.New("database in use by another librecord process")
	// ErrRotating: Open found a key rotation running on the file.
	ErrRotating = errors.New("a key rotation is running on this database")
	// ErrRotationUnfinished: ChangePassphrase found an interrupted key
	// rotation, which only RotateKey may finish; nothing was changed.
	ErrRotationUnfinished = errors.New("an interrupted key rotation is unfinished")
	// ErrNotScrubbed: a passphrase change or key rotation was committed
	// (the new passphrase is in force) but the old wrapped key or old
	// ciphertexts could not be cleared from the file or its WAL (busy, or
	// no space to rebuild the file). Running the command again clears them.
	ErrNotScrubbed = errors.New("the change is done, but old key material may remain on disk")
	// ErrKeyChanged: another process changed the passphrase or the data key
	// since this handle opened the database; nothing was changed.
	ErrKeyChanged = errors.New("the passphrase or data key was changed since the database was opened")
)

// CreateOptions tune a new database. The zero value is production.
type CreateOptions struct {
	// KDF overrides the Argon2id parameters of the passphrase and of the
	// password identifiers. Test-only: nil means the production defaults.
	KDF *crypto.KDFParams
	// Open tunes the handle OpenOrCreate returns.
	Open Options
}

// Options tune an open handle. The zero value is production.
type Options struct {
	// BusyTimeout is how long a statement waits for another connection or
	// process holding the write lock before failing with ErrBusy
	// (default DefaultBusyTimeout).
	BusyTimeout time.Duration
	// MaxConcurrentHashes bounds the Argon2id password hashes computed at
	// once (Authenticate, AddUser, ResetPassword), so that a burst of logins
	// cannot eat the server's memory (default: the number of CPUs, at most 4).
	MaxConcurrentHashes int
	// MaxPageCount caps the file at this many pages for this handle's
	// writes (SQLite's max_page_count, never below the size at open).
	// Test-only: it makes the database run out of space exactly as a full
	// disk does (SQLITE_FULL), unprivileged. 0 means no cap.
	MaxPageCount int64
}

// DefaultBusyTimeout is long enough that an admin command never fails
// because serve is writing: serve's transactions last milliseconds.
const DefaultBusyTimeout = 10 * time.Second

func (o Options) withDefaults() Options {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.MaxConcurrentHashes <= 0 {
		o.MaxConcurrentHashes = min(runtime.NumCPU(), 4)
	}
	return o
}

// DB is an open, unlocked Librecord database.
type DB struct {
	path string
	opts Options
	// w has one connection and begins every transaction IMMEDIATE: in-process
	// writers queue on the pool, other processes wait on busy_timeout, and a
	// read-then-write transaction never fails half way with SQLITE_BUSY.
	w *sql.DB
	// r serves reads; WAL lets them run beside the writer.
	r *sql.DB

	// ring holds the data key and, during a key rotation, the other key
	// (see keys.go). It is read, and replaced, by the writer's transactions.
	ring     atomic.Pointer[keyring]
	pwKey    *crypto.Key // keys the password identifiers (passwordID)
	pwLegacy bool        // pwKey derived from the data key, not yet stored
	identity ed25519.PrivateKey
	ppKDF    crypto.KDFParams // for re-wrapping on a passphrase change
	pwKDF    crypto.KDFParams
	pwSalt   []byte
	inUse    *useLock
	// hashSlots bounds the Argon2id hashes computed at once.
	hashSlots chan struct{}

	unreadMu   sync.Mutex
	log        *slog.Logger       // SetLogger; nil logs nothing
	unreadSeen map[int64]struct{} // unreadable rows already logged
	unreadFull bool               // unreadSeen reached maxReported
	stmts      stmts              // prepared once, reused (stmts.go)
}

// Create makes a new database at path: salt, KDF parameters, wrapped data
// key, encrypted identity key, salon "general". ErrExists if path exists.
// The file is built under a temporary name and linked into place, so two
// processes creating the same path at once cannot both succeed, and an
// existing file is never overwritten.
func Create(ctx context.Context, path string, passphrase []byte, opts CreateOptions) error {
	return create(ctx, path, passphrase, opts)
}

// Open opens and unlocks an existing database, migrating it if needed.
// It returns ErrNoDatabase, ErrNotLibrecord, ErrSchemaTooNew or
// ErrWrongPassphrase without writing anything.
func Open(ctx context.Context, path string, passphrase []byte) (*DB, error) {
	return OpenWith(ctx, path, passphrase, Options{})
}

// OpenOrCreate creates path if it does not exist (serve's first run), then opens it.
func OpenOrCreate(ctx context.Context, path string, passphrase []byte, opts CreateOptions) (*DB, error) {
	err := Create(ctx, path, passphrase, opts)
	if err != nil && !errors.Is(err, ErrExists) {
		return nil, err
	}
	return OpenWith(ctx, path, passphrase, opts.Open)
}

// Close closes the database and erases the keys it held.
func (d *DB) Close() error {
	d.stmts.close() // before the pools they were prepared on
	err := errors.Join(d.w.Close(), d.r.Close(), d.inUse.release())
	d.ring.Load().erase()
	d.pwKey.Erase()
	clear(d.identity)
	return err
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Identity is the server's long-lived Ed25519 identity key.
func (d *DB) Identity() ed25519.PrivateKey { return d.identity }

// Fingerprint reads the identity fingerprint without a passphrase.
func Fingerprint(ctx context.Context, path string) (string, error) {
	ro, err := inspect(ctx, path, DefaultBusyTimeout)
	if err != nil {
		return "", err
	}
	defer ro.Close()
	pub, err := metaValue(ctx, ro, metaIdentityPublic)
	if err != nil {
		return "", err
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%s: corrupt identity public key", path)
	}
	return crypto.Fingerprint(ed25519.PublicKey(pub)), nil
}

// Backup writes a consistent copy of the database to target (which must
// not exist) without a passphrase, safe while serve runs.
func Backup(ctx context.Context, path, target string) error {
	return backup(ctx, path, target)
}

// User is one account.
type User struct {
	ID       int64
	Pseudo   string
	Salons   []string // salons the user may open, sorted
	Disabled bool     // the host disabled the user: no login, sessions end
}

// Credential identifies a logged-in user and the password they logged in
// with, so that a removal or password reset ends their sessions.
type Credential struct {
	UserID int64
	Pseudo string
	Hash   []byte // the password identifier
}

// Salon is a salon with its newest message id (0 when empty).
type Salon struct {
	ID   int64
	Name string
	Last int64
}

// Message is a stored message, decrypted.
type Message struct {
	ID     int64
	Salon  string
	At     time.Time
	Pseudo string
	Text   string
	System bool
}

// NewMessage is a message to store. A system message has UserID 0 and no Cid.
type NewMessage struct {
	SalonID  int64
	UserID   int64
	Cid      string
	Pseudo   string
	Text     string
	System   bool
	Portions int
}

// Stored is the outcome of storing one NewMessage: its id and the portions
// of the first send with that cid (Duplicate when the cid was known).
type Stored struct {
	ID        int64
	At        time.Time
	Portions  int
	Duplicate bool
	// Err is ErrNotFound when the salon was removed before this message
	// could be stored: this message was not stored (ID is 0), the others
	// of the batch were. It is nil otherwise.
	Err error
}
