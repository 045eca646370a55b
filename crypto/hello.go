package crypto

import (
	"crypto/ed25519"
	"errors"

	"golang.org/x/crypto/curve25519"
)

// helloContext starts what the server identity signs in a server hello.
const helloContext = "librecord hello v1"

// errUnknownEnvelope is EnvelopeKind's error for an empty envelope, an
// unknown first byte or a version other than ProtocolVersion. PROTOCOL.md
// section 2 answers it with error "frame".
var errUnknownEnvelope = errors.New("unknown envelope kind or version")

// EnvelopeKind returns the kind of a decoded frame (KindHello, KindSealed or
// KindPlainError) after checking its version byte, or an error.
func EnvelopeKind(envelope []byte) (byte, error) {
	if len(envelope) < 2 || envelope[1] != ProtocolVersion {
		return 0, errUnknownEnvelope
	}
	switch k := envelope[0]; k {
	case KindHello, KindSealed, KindPlainError:
		return k, nil
	}
	return 0, errUnknownEnvelope
}

// ClientHello returns the 67-byte client hello for these keys:
// 'H' 0x01 'C' | X25519 public | Ed25519 public.
func (k *SessionKeys) ClientHello() []byte {
	b := make([]byte, 0, clientHelloSize)
	b = append(b, KindHello, ProtocolVersion, 'C')
	b = append(b, k.boxPub[:]...)
	return append(b, k.signPub[:]...)
}

// ParseClientHello checks size, kind, version and role and returns the
// client's session public keys, or ErrBadHello. A low-order X25519 key,
// which would make the shared box key public, is ErrBadHello too.
func ParseClientHello(b []byte) (PeerKeys, error) {
	var p PeerKeys
	if len(b) != clientHelloSize || b[0] != KindHello || b[1] != ProtocolVersion || b[2] != 'C' {
		return p, ErrBadHello
	}
	copy(p.Box[:], b[3:35])
	copy(p.Sign[:], b[35:67])
	if !goodBoxKey(&p.Box) {
		return PeerKeys{}, ErrBadHello
	}
	return p, nil
}

// ServerHello returns the 163-byte server hello answering clientHello,
// signed by the server's long-lived identity key:
// 'H' 0x01 'S' | X25519 public | Ed25519 public | identity public | sig.
func (k *SessionKeys) ServerHello(identity ed25519.PrivateKey, clientHello []byte) []byte {
	b := make([]byte, 0, serverHelloSize)
	b = append(b, KindHello, ProtocolVersion, 'S')
	b = append(b, k.boxPub[:]...)
	b = append(b, k.signPub[:]...)
	b = append(b, identity.Public().(ed25519.PublicKey)...)
	return append(b, ed25519.Sign(identity, helloSigned(clientHello, k.boxPub[:], k.signPub[:]))...)
}

// helloSigned returns exactly what the identity signature of a server
// hello covers: "librecord hello v1" | client hello | B_x25519_pub |
// B_ed25519_pub.
func helloSigned(clientHello, box, sign []byte) []byte {
	m := make([]byte, 0, len(helloContext)+len(clientHello)+64)
	m = append(m, helloContext...)
	m = append(m, clientHello...)
	m = append(m, box...)
	return append(m, sign...)
}

// ParseServerHello checks a server hello against the client hello it
// answers and returns the server's session keys and identity public key.
// It returns ErrBadHello or ErrBadIdentity.
func ParseServerHello(b, clientHello []byte) (PeerKeys, ed25519.PublicKey, error) {
	var p PeerKeys
	if len(b) != serverHelloSize || b[0] != KindHello || b[1] != ProtocolVersion || b[2] != 'S' {
		return p, nil, ErrBadHello
	}
	copy(p.Box[:], b[3:35])
	copy(p.Sign[:], b[35:67])
	identity := ed25519.PublicKey(append([]byte(nil), b[67:99]...))
	if !ed25519.Verify(identity, helloSigned(clientHello, b[3:35], b[35:67]), b[99:163]) {
		return PeerKeys{}, nil, ErrBadIdentity
	}
	if !goodBoxKey(&p.Box) {
		return PeerKeys{}, nil, ErrBadHello
	}
	return p, identity, nil
}

// probeScalar is any valid X25519 scalar: X25519 clamps it to a multiple of
// 8, so its product with a point of order 1, 2, 4 or 8 is the all-zero value
// that curve25519.X25519 refuses.
var probeScalar = [32]byte{9}

// goodBoxKey reports whether pub is not a low-order X25519 point.
func goodBoxKey(pub *[32]byte) bool {
	_, err := curve25519.X25519(probeScalar[:], pub[:])
	return err == nil
}

// PlainError returns the hello-less error envelope 'E' 0x01 | body, which
// only the server sends, only when it cannot seal (PROTOCOL.md 2.3).
func PlainError(body []byte) []byte {
	b := make([]byte, 0, 2+len(body))
	b = append(b, KindPlainError, ProtocolVersion)
	return append(b, body...)
}

// errBadPlainError is ParsePlainError's error for an envelope that is not
// a plain error with a body.
var errBadPlainError = errors.New("malformed plain error envelope")

// ParsePlainError returns the body of a plain error envelope. The body is
// unauthenticated: anyone on the path can forge it.
func ParsePlainError(b []byte) ([]byte, error) {
	if len(b) < 3 || b[0] != KindPlainError || b[1] != ProtocolVersion {
		return nil, errBadPlainError
	}
	return b[2:], nil
}
