package crypto

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

// seedKey is the Ed25519 public key of the seed 00 01 02 ... 1f, whose
// fingerprint docs/protocol.md shows.
func seedKey() ed25519.PublicKey {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

func TestFingerprintKnownAnswer(t *testing.T) {
	// Computed independently with Python (cryptography + hashlib):
	// base64 of SHA-256 of the raw 32-byte key, "=" stripped.
	const want = "SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw"
	if got := Fingerprint(seedKey()); got != want {
		t.Fatalf("Fingerprint = %s, want %s", got, want)
	}
}

func TestParseFingerprint(t *testing.T) {
	const fp = "SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw"
	for _, ok := range []string{fp, fp + "=", " " + fp + "\n"} {
		if got, err := ParseFingerprint(ok); err != nil || got != fp {
			t.Errorf("ParseFingerprint(%q) = %q, %v", ok, got, err)
		}
	}
	for _, bad := range []string{
		"", "Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw", "sha256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw",
		"SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcI", "SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIwAA",
		"SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHc_w", "MD5:aa:bb",
	} {
		if _, err := ParseFingerprint(bad); !errors.Is(err, errBadFingerprint) {
			t.Errorf("ParseFingerprint(%q): %v, want errBadFingerprint", bad, err)
		}
	}
}
