package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
)

// NewIdentity generates the server's long-lived Ed25519 identity key.
func NewIdentity() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	return priv, err
}

// Fingerprint returns the identity fingerprint as PROTOCOL.md section 6 and
// OpenSSH print it: "SHA256:" + standard base64 without padding of the
// SHA-256 of the 32-byte public key.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
