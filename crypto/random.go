package crypto

import (
	"crypto/rand"
	"encoding/base64"
)

// random fills b from crypto/rand, the only source of randomness of this
// package. It panics if the system's source fails: since Go 1.24
// crypto/rand.Read never returns an error (the runtime ends the program
// instead), so no caller could do better than stop, and no function of
// this package returns an error for it.
func random(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("crypto: the system's random source failed: " + err.Error())
	}
}

// SaltSize is the length of the salts NewSalt returns.
const SaltSize = 32

// NewSalt returns a fresh random salt of SaltSize bytes for DeriveKey or
// HashPassword. A salt is not secret: it is kept beside what it protects.
func NewSalt() []byte {
	b := make([]byte, SaltSize)
	random(b)
	return b
}

// NewID returns a fresh random identifier that no one else will draw: 128
// bits in base64url without padding, 22 printable ASCII characters (a
// client message id, PROTOCOL.md 3.2).
func NewID() string {
	var b [16]byte
	random(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
