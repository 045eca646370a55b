// Package db is Librecord's storage: one SQLite file (modernc.org/sqlite),
// schema migrations embedded from db/migrations (goose), users, salons,
// access grants and messages encrypted at rest (PROTOCOL.md section 7).
// Open it with Open (or Create/OpenOrCreate); every method is safe for
// concurrent use and safe while another process uses the same file.
package db

import (
	"context"
	"crypto/ed25519"
	"errors"
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
)

// CreateOptions tune a new database. The zero value is production.
type CreateOptions struct {
	// KDF overrides the Argon2id parameters of the passphrase and of the
	// password identifiers. Test-only: nil means the production defaults.
	KDF *crypto.KDFParams
}

// DB is an open, unlocked Librecord database.
type DB struct{}

// Create makes a new database at path: salt, KDF parameters, wrapped data
// key, encrypted identity key, salon "general". ErrExists if path exists.
func Create(ctx context.Context, path string, passphrase []byte, opts CreateOptions) error {
	panic("TODO")
}

// Open opens and unlocks an existing database, migrating it if needed.
func Open(ctx context.Context, path string, passphrase []byte) (*DB, error) { panic("TODO") }

// OpenOrCreate creates path if it does not exist (serve's first run), then opens it.
func OpenOrCreate(ctx context.Context, path string, passphrase []byte, opts CreateOptions) (*DB, error) {
	panic("TODO")
}

// Close closes the database.
func (d *DB) Close() error { panic("TODO") }

// Identity is the server's long-lived Ed25519 identity key.
func (d *DB) Identity() ed25519.PrivateKey { panic("TODO") }

// Fingerprint reads the identity fingerprint without a passphrase.
func Fingerprint(ctx context.Context, path string) (string, error) { panic("TODO") }

// Backup writes a consistent copy of the database to target (which must
// not exist) without a passphrase, safe while serve runs.
func Backup(ctx context.Context, path, target string) error { panic("TODO") }

// User is one account.
type User struct {
	ID     int64
	Pseudo string
	Salons []string // salons the user may open, sorted
}

// Credential identifies a logged-in user and the password they logged in
// with, so that a removal or password reset ends their sessions.
type Credential struct {
	UserID int64
	Pseudo string
	Hash   []byte // the password identifier
}

// Authenticate hashes password (Argon2id, bounded concurrency) and returns
// the matching user, or ErrAuth.
func (d *DB) Authenticate(ctx context.Context, password string) (Credential, error) { panic("TODO") }

// Valid reports whether the credential still names a user with the same password.
func (d *DB) Valid(ctx context.Context, c Credential) (bool, error) { panic("TODO") }

// Salon is a salon with its newest message id (0 when empty).
type Salon struct {
	ID   int64
	Name string
	Last int64
}

// Access returns the salon if the user may open it (name matched ignoring
// case), or ErrNotFound when the salon does not exist or the user has no access.
func (d *DB) Access(ctx context.Context, userID int64, name string) (Salon, error) { panic("TODO") }

// UserSalons lists the salons the user may open, by name, with their last id.
func (d *DB) UserSalons(ctx context.Context, userID int64) ([]Salon, error) { panic("TODO") }

// UsersWithAccess returns the ids of the users who may open salon.
func (d *DB) UsersWithAccess(ctx context.Context, salonID int64) ([]int64, error) { panic("TODO") }

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
}

// InsertMessages stores msgs in one transaction and one sync (group
// commit), deduplicating by (user, cid). When it returns nil every message
// is durable. On error nothing is stored (ErrBusy for lock or disk trouble).
func (d *DB) InsertMessages(ctx context.Context, msgs []NewMessage) ([]Stored, error) {
	panic("TODO")
}

// Latest returns the newest limit messages of a salon, oldest first, and
// whether older ones exist.
func (d *DB) Latest(ctx context.Context, salonID int64, limit int) ([]Message, bool, error) {
	panic("TODO")
}

// Before returns the limit messages just before id, oldest first, and
// whether older ones exist.
func (d *DB) Before(ctx context.Context, salonID, id int64, limit int) ([]Message, bool, error) {
	panic("TODO")
}

// After returns the first limit messages after id, oldest first, and
// whether newer ones exist.
func (d *DB) After(ctx context.Context, salonID, id int64, limit int) ([]Message, bool, error) {
	panic("TODO")
}

// LookupCid returns what a previous send of cid by this user stored, if any.
func (d *DB) LookupCid(ctx context.Context, userID int64, cid string) (Stored, bool, error) {
	panic("TODO")
}
