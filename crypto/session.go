package crypto

import (
	"crypto/ed25519"
	"errors"
)

// Sizes fixed by PROTOCOL.md section 2.
const (
	ClientHelloSize  = 67
	ServerHelloSize  = 163
	SealedHeaderSize = 42 // 'S' 0x01 | signer_id[8] | recipient_id[8] | nonce[24]
	ProtocolVersion  = 0x01
	KindHello        = 'H'
	KindSealed       = 'S'
	KindPlainError   = 'E'
)

// ErrCrypto is returned by Channel.Open for any envelope that fails the
// checks of PROTOCOL.md 2.2 (unknown ids, box does not open, bad signature,
// old seq). It deliberately says nothing about which check failed.
var ErrCrypto = errors.New("envelope failed authentication")

// ErrBadHello is returned for a hello of the wrong size, role or version.
var ErrBadHello = errors.New("malformed hello")

// ErrShortEnvelope is returned for a sealed envelope shorter than its header.
var ErrShortEnvelope = errors.New("sealed envelope shorter than its header")

// ErrBadIdentity is returned when a server hello's identity signature does
// not verify.
var ErrBadIdentity = errors.New("server identity signature does not verify")

// SessionKeys are the two fresh key pairs (X25519 for boxes, Ed25519 for
// signatures) one side generates for one session. Erase them when the
// session ends.
type SessionKeys struct {
	// unexported: X25519 pair, Ed25519 pair
}

// PeerKeys are the session public keys the other side sent in its hello.
type PeerKeys struct {
	Box  [32]byte // X25519 public key
	Sign [32]byte // Ed25519 public key
}

// NewSessionKeys generates fresh session key pairs from crypto/rand.
func NewSessionKeys() (*SessionKeys, error) { panic("TODO") }

// Erase overwrites the private keys. The keys are unusable afterwards.
func (k *SessionKeys) Erase() { panic("TODO") }

// ClientHello returns the 67-byte client hello for these keys.
func (k *SessionKeys) ClientHello() []byte { panic("TODO") }

// ParseClientHello checks size, kind, version and role and returns the
// client's session public keys, or ErrBadHello.
func ParseClientHello(b []byte) (PeerKeys, error) { panic("TODO") }

// ServerHello returns the 163-byte server hello answering clientHello,
// signed by the server's long-lived identity key.
func (k *SessionKeys) ServerHello(identity ed25519.PrivateKey, clientHello []byte) []byte {
	panic("TODO")
}

// ParseServerHello checks a server hello against the client hello it
// answers and returns the server's session keys and identity public key.
// It returns ErrBadHello or ErrBadIdentity.
func ParseServerHello(b, clientHello []byte) (PeerKeys, ed25519.PublicKey, error) {
	panic("TODO")
}

// Channel is one side's sealing state for a session: own keys, the peer's
// public keys (with the box key precomputed), and both seq counters. It is
// safe for concurrent use. Counters survive reconnects: keep the Channel.
type Channel struct {
	// unexported
}

// NewChannel builds a channel from own session keys and the peer's public
// keys. The channel takes ownership of own: Channel.Erase erases them.
func NewChannel(own *SessionKeys, peer PeerKeys) *Channel { panic("TODO") }

// Seal returns a sealed envelope carrying body, with the next seq.
func (c *Channel) Seal(body []byte) []byte { panic("TODO") }

// Open checks a sealed envelope (ids, box, signature, seq greater than the
// last accepted) and returns its body. Any failure is ErrCrypto (or
// ErrShortEnvelope); a failed envelope changes no state.
func (c *Channel) Open(envelope []byte) ([]byte, error) { panic("TODO") }

// PeerSignerID is the signer_id the peer's envelopes carry: the first 8
// bytes of SHA-256 of the peer's Ed25519 session key. Servers index
// sessions by it.
func (c *Channel) PeerSignerID() [8]byte { panic("TODO") }

// Erase overwrites the channel's private and shared keys.
func (c *Channel) Erase() { panic("TODO") }

// EnvelopeSignerID returns the signer_id of a sealed envelope without
// opening it, or ErrShortEnvelope.
func EnvelopeSignerID(envelope []byte) ([8]byte, error) { panic("TODO") }
