package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"sync"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// Envelope sizes, the protocol version byte and the envelope kinds
// (first byte) fixed by PROTOCOL.md section 2.
const (
	clientHelloSize  = 67
	serverHelloSize  = 163
	SealedHeaderSize = 42 // 'S' 0x01 | signer_id[8] | recipient_id[8] | nonce[24]
	ProtocolVersion  = 0x01
	KindHello        = 'H'
	KindSealed       = 'S'
	KindPlainError   = 'E'
)

// SealedOverhead is how many bytes a sealed envelope adds to its body:
// the header, the box tag, the seq and the signature.
const SealedOverhead = SealedHeaderSize + box.Overhead + 8 + ed25519.SignatureSize

// errCrypto is Channel.Open's error for any envelope that fails the checks
// of PROTOCOL.md 2.2 (unknown ids, box does not open, bad signature, old
// seq). It deliberately says nothing about which check failed.
var errCrypto = errors.New("envelope failed authentication")

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
	boxPub   [32]byte
	boxPriv  [32]byte
	signPub  [32]byte
	signPriv ed25519.PrivateKey // seed | public key, 64 bytes
	erased   bool
}

// PeerKeys are the session public keys the other side sent in its hello.
type PeerKeys struct {
	Box  [32]byte // X25519 public key
	Sign [32]byte // Ed25519 public key
}

// NewSessionKeys generates fresh session key pairs.
func NewSessionKeys() *SessionKeys {
	var boxPriv, signSeed [32]byte
	random(boxPriv[:])
	random(signSeed[:])
	defer clear(boxPriv[:])
	defer clear(signSeed[:])
	return sessionKeysFromSeeds(boxPriv[:], signSeed[:])
}

// sessionKeysFromSeeds builds session keys from their private material
// (random, or fixed by known-answer tests).
func sessionKeysFromSeeds(boxPriv, signSeed []byte) *SessionKeys {
	k := &SessionKeys{}
	copy(k.boxPriv[:], boxPriv)
	pub, err := curve25519.X25519(k.boxPriv[:], curve25519.Basepoint)
	if err != nil {
		panic("crypto: " + err.Error()) // only for a scalar of the wrong size
	}
	copy(k.boxPub[:], pub)
	k.signPriv = ed25519.NewKeyFromSeed(signSeed)
	copy(k.signPub[:], k.signPriv[32:])
	return k
}

// Erase overwrites the private keys. The keys are unusable afterwards.
func (k *SessionKeys) Erase() {
	if k == nil {
		return
	}
	clear(k.boxPriv[:])
	clear(k.signPriv)
	k.erased = true
}

// shortID is the first 8 bytes of SHA-256(key), the form of signer_id and
// recipient_id.
func shortID(key []byte) (id [8]byte) {
	sum := sha256.Sum256(key)
	copy(id[:], sum[:8])
	return id
}

// Channel is one side's sealing state for a session: own keys, the peer's
// public keys (with the box key precomputed), and both seq counters. It is
// safe for concurrent use. Counters survive reconnects: keep the Channel.
//
// Seal draws the next seq: an envelope sealed later carries a larger seq,
// and the peer refuses one that arrives after a larger one. Goroutines that
// seal for one connection must therefore write in the order they sealed,
// e.g. by holding one lock over Seal and the write (net.EnvelopeWriter).
type Channel struct {
	sendMu  sync.Mutex // guards own signing key, sendSeq and shared on the send side
	recvMu  sync.Mutex // guards recvSeq and shared on the receive side
	own     *SessionKeys
	peer    PeerKeys
	shared  [32]byte // box.Precompute(peer.Box, own.boxPriv)
	sendSeq uint64   // last seq sealed
	recvSeq uint64   // last seq accepted
	erased  bool     // set under both locks

	ownSigner     [8]byte // signer_id of what we seal
	ownRecipient  [8]byte // recipient_id of what we open
	peerSigner    [8]byte // signer_id of what we open
	peerRecipient [8]byte // recipient_id of what we seal
}

// NewChannel builds a channel from own session keys and the peer's public
// keys. The channel takes ownership of own: Channel.Erase erases them.
func NewChannel(own *SessionKeys, peer PeerKeys) *Channel {
	c := &Channel{
		own:           own,
		peer:          peer,
		ownSigner:     shortID(own.signPub[:]),
		ownRecipient:  shortID(own.boxPub[:]),
		peerSigner:    shortID(peer.Sign[:]),
		peerRecipient: shortID(peer.Box[:]),
		erased:        own.erased,
	}
	box.Precompute(&c.shared, &peer.Box, &own.boxPriv)
	return c
}

// signedPrefix is the start of what a sealed envelope's signature covers:
// 'S' 0x01 | signer_id | recipient_id.
const signedPrefix = 2 + 8 + 8

// Seal returns a sealed envelope carrying body, with the next seq. It
// returns nil once the channel is erased (a session that ended has nothing
// more to say).
func (c *Channel) Seal(body []byte) []byte {
	var nonce [24]byte
	random(nonce[:])
	return c.seal(body, &nonce)
}

// seal is Seal with a given nonce, for known-answer tests.
func (c *Channel) seal(body []byte, nonce *[24]byte) []byte {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.erased || c.sendSeq == ^uint64(0) {
		return nil
	}
	c.sendSeq++

	// plain = 'S' 0x01 | signer_id | recipient_id | seq | body | sig.
	// The signature covers all but its own 64 bytes; the box holds plain[18:].
	n := signedPrefix + 8 + len(body) + ed25519.SignatureSize
	scratch := plainBufs.Get().(*[]byte)
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	plain := (*scratch)[:n]
	defer func() {
		clear(plain) // the body in clear goes before the buffer is shared again
		if cap(*scratch) <= maxKeptPlain {
			plainBufs.Put(scratch)
		}
	}()
	plain[0], plain[1] = KindSealed, ProtocolVersion
	copy(plain[2:10], c.ownSigner[:])
	copy(plain[10:18], c.peerRecipient[:])
	binary.BigEndian.PutUint64(plain[18:26], c.sendSeq)
	copy(plain[26:], body)
	signed := plain[:len(plain)-ed25519.SignatureSize]
	copy(plain[len(signed):], ed25519.Sign(c.own.signPriv, signed))

	out := make([]byte, SealedHeaderSize, len(plain)-signedPrefix+SealedHeaderSize+box.Overhead)
	copy(out, plain[:signedPrefix])
	copy(out[signedPrefix:], nonce[:])
	return box.SealAfterPrecomputation(out, plain[signedPrefix:], nonce, &c.shared)
}

// plainBufs are the buffers seal signs in, shared by every channel and
// cleared after each use: one per envelope sealed was a third of the
// bytes a busy server allocated.
var plainBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxKeptPlain bounds the buffers plainBufs keeps.
const maxKeptPlain = 64 << 10

// Open checks a sealed envelope (ids, box, signature, seq greater than the
// last accepted) and returns its body. Any failure is one error that does
// not say which check failed (or ErrShortEnvelope); a failed envelope
// changes no state. Once the channel is erased, every envelope fails.
func (c *Channel) Open(envelope []byte) ([]byte, error) {
	if len(envelope) < SealedHeaderSize {
		return nil, ErrShortEnvelope
	}
	if envelope[0] != KindSealed || envelope[1] != ProtocolVersion ||
		subtle.ConstantTimeCompare(envelope[2:10], c.peerSigner[:]) != 1 ||
		subtle.ConstantTimeCompare(envelope[10:18], c.ownRecipient[:]) != 1 {
		return nil, errCrypto
	}
	sealed := envelope[SealedHeaderSize:]
	if len(sealed) < box.Overhead+8+ed25519.SignatureSize {
		return nil, errCrypto
	}
	var nonce [24]byte
	copy(nonce[:], envelope[signedPrefix:SealedHeaderSize])

	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.erased {
		return nil, errCrypto
	}
	// Open the box right after a copy of the signed prefix, so that
	// prefix | seq | body is contiguous for the signature check.
	buf := make([]byte, signedPrefix, signedPrefix+len(sealed)-box.Overhead)
	copy(buf, envelope[:signedPrefix])
	plain, ok := box.OpenAfterPrecomputation(buf, sealed, &nonce, &c.shared)
	if !ok {
		return nil, errCrypto
	}
	signed := plain[:len(plain)-ed25519.SignatureSize]
	if !ed25519.Verify(c.peer.Sign[:], signed, plain[len(signed):]) {
		return nil, errCrypto
	}
	seq := binary.BigEndian.Uint64(plain[signedPrefix : signedPrefix+8])
	if seq <= c.recvSeq {
		return nil, errCrypto
	}
	c.recvSeq = seq
	return signed[signedPrefix+8:], nil
}

// PeerSignerID is the signer_id the peer's envelopes carry: the first 8
// bytes of SHA-256 of the peer's Ed25519 session key. Servers index
// sessions by it.
func (c *Channel) PeerSignerID() [8]byte { return c.peerSigner }

// Erase overwrites the channel's private and shared keys. Afterwards Seal
// returns nil and Open fails. Erase may be called more than once.
func (c *Channel) Erase() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	clear(c.shared[:])
	c.own.Erase()
	c.erased = true
}

// Erased reports whether Erase has been called.
func (c *Channel) Erased() bool {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.erased
}

// EnvelopeSignerID returns the signer_id of a sealed envelope without
// opening it, or ErrShortEnvelope.
func EnvelopeSignerID(envelope []byte) ([8]byte, error) {
	var id [8]byte
	if len(envelope) < SealedHeaderSize {
		return id, ErrShortEnvelope
	}
	copy(id[:], envelope[2:10])
	return id, nil
}
