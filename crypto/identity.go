package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// NewIdentity generates the server's long-lived Ed25519 identity key.
func NewIdentity() ed25519.PrivateKey {
	var seed [ed25519.SeedSize]byte
	random(seed[:])
	defer clear(seed[:])
	return ed25519.NewKeyFromSeed(seed[:])
}

// Fingerprint returns the identity fingerprint as PROTOCOL.md section 6 and
// OpenSSH print it: "SHA256:" + standard base64 without padding of the
// SHA-256 of the 32-byte public key.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// errBadFingerprint is ParseFingerprint's error.
var errBadFingerprint = errors.New(`fingerprint is not "SHA256:" followed by 43 characters of base64, as librecord serve prints it`)

// ParseFingerprint checks a fingerprint typed by a person (e.g. a --trust
// flag) or read from a file and returns it in the form Fingerprint prints:
// "SHA256:" and the unpadded standard base64 of 32 bytes. Trailing "=" are
// accepted.
func ParseFingerprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "SHA256:")
	if !ok {
		return "", errBadFingerprint
	}
	sum, err := base64.RawStdEncoding.Strict().DecodeString(strings.TrimRight(rest, "="))
	if err != nil || len(sum) != sha256.Size {
		return "", errBadFingerprint
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum), nil
}
