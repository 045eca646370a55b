package crypto

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// ErrDecrypt is returned when a blob or wrapped key does not open: wrong
// key, tampered bytes, or a blob moved to another row.
var ErrDecrypt = errors.New("decryption failed")

// KDFParams are Argon2id parameters, stored per database.
type KDFParams struct {
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m"`
	Threads   uint8  `json:"p"`
}

// Bounds on KDF parameters read from a database: a tampered file must not
// make us spin for minutes or allocate gigabytes per login.
const (
	maxKDFTime      = 32
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFThreads   = 64
)

// DefaultPassphraseKDF is the production cost of deriving the key-wrapping
// key from the host passphrase: paid once per process start, so it can be
// heavy (RFC 9106's second recommendation with 2 lanes; ~200 ms, 64 MiB).
func DefaultPassphraseKDF() KDFParams { return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2} }

// DefaultPasswordKDF is the production cost of a password identifier: paid
// on every login, bounded in concurrency by the caller (OWASP's Argon2id
// setting; ~30 ms, 19 MiB).
func DefaultPasswordKDF() KDFParams { return KDFParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1} }

// InsecureTestKDF is a near-free Argon2id setting for test suites only. A
// database created with it protects nothing against an offline guesser.
func InsecureTestKDF() KDFParams { return KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} }

// Validate bounds parameters read from a database before use.
func (p KDFParams) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range 1..%d", p.Time, maxKDFTime)
	case p.Threads < 1 || p.Threads > maxKDFThreads:
		return fmt.Errorf("argon2id threads %d out of range 1..%d", p.Threads, maxKDFThreads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// argon2id runs Argon2id and expands its output under a versioned label, so
// that the same passphrase and salt never give the same key for two uses.
// It panics on invalid parameters: callers Validate what they read.
func argon2id(secret, salt []byte, p KDFParams, label string) []byte {
	if err := p.Validate(); err != nil {
		panic("crypto: " + err.Error())
	}
	prk := argon2.IDKey(secret, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(prk)
	out, err := hkdf.Expand(sha256.New, prk, label, 32)
	if err != nil {
		panic("crypto: hkdf: " + err.Error()) // only for lengths > 255*32
	}
	return out
}

// Key is a 256-bit symmetric key (XChaCha20-Poly1305) for data at rest.
type Key struct {
	b [chacha20poly1305.KeySize]byte
}

// NewKey returns a random key.
func NewKey() *Key {
	k := new(Key)
	random(k.b[:])
	return k
}

// DeriveKey derives the key-wrapping key from the host passphrase. p must
// pass Validate (DeriveKey panics otherwise).
func DeriveKey(passphrase, salt []byte, p KDFParams) *Key {
	out := argon2id(passphrase, salt, p, "librecord/v1/storage")
	k := new(Key)
	copy(k.b[:], out)
	clear(out)
	return k
}

// blobVersion is the first byte of every blob made by Seal.
const blobVersion = 1

// Seal encrypts plaintext bound to ad (e.g. a message's row and salon). The
// blob is: version byte, 24-byte random nonce, ciphertext and tag.
func (k *Key) Seal(plaintext, ad []byte) []byte {
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		panic("crypto: " + err.Error()) // key size is fixed
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = blobVersion
	random(out[1:])
	return aead.Seal(out, out[1:], plaintext, versionedAD(ad))
}

// Open decrypts a blob made by Seal with the same ad, or returns ErrDecrypt.
func (k *Key) Open(blob, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		panic("crypto: " + err.Error())
	}
	n := 1 + aead.NonceSize()
	if len(blob) < n+aead.Overhead() || blob[0] != blobVersion {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, blob[1:n], blob[n:], versionedAD(ad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// versionedAD binds the blob format version to the caller's data.
func versionedAD(ad []byte) []byte {
	return append([]byte{blobVersion}, ad...)
}

// wrapAD is the associated data of a wrapped key, followed by "/" and
// its purpose when it has one.
const wrapAD = "librecord/v1/wrapped-key"

func wrapPurpose(purpose string) []byte {
	if purpose == "" {
		return []byte(wrapAD)
	}
	return []byte(wrapAD + "/" + purpose)
}

// Wrap encrypts another key under k for one purpose (e.g. "password-id";
// "" for the data key): it unwraps only with the same purpose, so two keys
// wrapped by k cannot stand in for each other.
func (k *Key) Wrap(other *Key, purpose string) []byte {
	return k.Seal(other.b[:], wrapPurpose(purpose))
}

// Unwrap decrypts a key made by Wrap with the same purpose, or returns
// ErrDecrypt.
func (k *Key) Unwrap(blob []byte, purpose string) (*Key, error) {
	pt, err := k.Open(blob, wrapPurpose(purpose))
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	if len(pt) != chacha20poly1305.KeySize {
		return nil, ErrDecrypt
	}
	out := new(Key)
	copy(out.b[:], pt)
	return out, nil
}

// TagKey returns the subkey of k for label whose MAC makes tags: a
// deterministic 32-byte HMAC-SHA256, so equal inputs give equal tags
// (usable as a lookup key), and without k a tag can be neither computed
// nor checked. Stored on its own, the subkey keeps the tags' values.
func (k *Key) TagKey(label string) *Key {
	sub, err := hkdf.Expand(sha256.New, k.b[:], "librecord/v1/tag/"+label, 32)
	if err != nil {
		panic("crypto: hkdf: " + err.Error())
	}
	out := new(Key)
	copy(out.b[:], sub)
	clear(sub)
	return out
}

// MAC returns the deterministic 32-byte HMAC-SHA256 of msg under k.
func (k *Key) MAC(msg []byte) []byte {
	m := hmac.New(sha256.New, k.b[:])
	m.Write(msg)
	return m.Sum(nil)
}

// Erase overwrites the key.
func (k *Key) Erase() {
	if k != nil {
		clear(k.b[:])
	}
}
