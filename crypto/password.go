package crypto

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MinPasswordLength is the fewest characters a chosen password may have.
const MinPasswordLength = 12

// MaxPasswordLength bounds a password in bytes (it is hashed on every login).
const MaxPasswordLength = 1024

// HashPassword returns the user identifier for a password: Argon2id with the
// install-wide salt, 32 bytes. p must pass Validate (HashPassword panics
// otherwise).
func HashPassword(password string, salt []byte, p KDFParams) []byte {
	return argon2id([]byte(password), salt, p, "librecord/v1/password-id")
}

// passwordAlphabet is Crockford's base32 in lower case: no i, l, o or u, so
// nothing is ambiguous when read aloud or copied by hand.
const passwordAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// GeneratePassword returns a random password of at least 128 bits of
// entropy that is easy to read aloud and paste: 28 characters of lower-case
// Crockford base32 (140 bits) in groups of four, such as
// "7k2m-q9xd-...".
func GeneratePassword() string {
	var raw [28]byte
	random(raw[:])
	defer clear(raw[:])
	var b strings.Builder
	for i, c := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(passwordAlphabet[c&31]) // 256 is a multiple of 32: uniform
	}
	return b.String()
}

// CheckPassword reports why a chosen password is refused: shorter than
// MinPasswordLength characters, longer than MaxPasswordLength bytes, not
// UTF-8, or holding a control character (it could not be typed at a prompt).
func CheckPassword(password string) error {
	switch {
	case !utf8.ValidString(password):
		return errors.New("password is not valid UTF-8")
	case len(password) > MaxPasswordLength:
		return fmt.Errorf("password is longer than %d bytes", MaxPasswordLength)
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	for _, r := range password {
		if r < 0x20 || r == 0x7f {
			return errors.New("password holds a control character")
		}
	}
	return nil
}
