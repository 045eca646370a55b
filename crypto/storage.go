package crypto

import "errors"

// ErrDecrypt is returned when a blob or wrapped key does not open: wrong
// key, tampered bytes, or a blob moved to another row.
var ErrDecrypt = errors.New("decryption failed")

// KDFParams are Argon2id parameters, stored per database.
type KDFParams struct {
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m"`
	Threads   uint8  `json:"p"`
}

// Validate bounds parameters read from a database before use.
func (p KDFParams) Validate() error { panic("TODO") }

// Key is a 256-bit symmetric key (XChaCha20-Poly1305) for data at rest.
type Key struct {
	// unexported
}

// NewKey returns a random key.
func NewKey() (*Key, error) { panic("TODO") }

// DeriveKey derives the key-wrapping key from the host passphrase.
func DeriveKey(passphrase, salt []byte, p KDFParams) *Key { panic("TODO") }

// Seal encrypts plaintext bound to ad (e.g. a message's row and salon).
func (k *Key) Seal(plaintext, ad []byte) []byte { panic("TODO") }

// Open decrypts a blob made by Seal with the same ad, or returns ErrDecrypt.
func (k *Key) Open(blob, ad []byte) ([]byte, error) { panic("TODO") }

// Wrap encrypts another key under k.
func (k *Key) Wrap(other *Key) []byte { panic("TODO") }

// Unwrap decrypts a key made by Wrap, or returns ErrDecrypt.
func (k *Key) Unwrap(blob []byte) (*Key, error) { panic("TODO") }

// Erase overwrites the key.
func (k *Key) Erase() { panic("TODO") }

// HashPassword returns the user identifier for a password: Argon2id with the
// install-wide salt, 32 bytes.
func HashPassword(password string, salt []byte, p KDFParams) []byte { panic("TODO") }

// GeneratePassword returns a random password of at least 128 bits of
// entropy that is easy to read aloud and paste.
func GeneratePassword() (string, error) { panic("TODO") }
