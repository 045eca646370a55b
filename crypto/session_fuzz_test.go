package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
)

// fixedPair is a client/server key pair from fixed seeds, so that fuzz
// inputs mean the same thing on every run.
func fixedPair() (client, server *SessionKeys) {
	seed := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	return sessionKeysFromSeeds(seed("fuzz client box"), seed("fuzz client sign")),
		sessionKeysFromSeeds(seed("fuzz server box"), seed("fuzz server sign"))
}

// FuzzOpen opens arbitrary bytes on a fresh server channel. Nothing may
// panic, and only envelopes the client really sealed may open.
func FuzzOpen(f *testing.F) {
	ck, sk := fixedPair()
	client := NewChannel(ck, peerOf(sk))
	sealed := map[string]bool{}
	// Fixed nonces: the fuzzing workers rebuild this set and must get the
	// same bytes as the coordinator.
	for i, body := range []string{"", "x", `{"op":"login","id":1,"password":"p"}`} {
		env := client.seal([]byte(body), &[24]byte{byte(i)})
		sealed[string(env)] = true
		f.Add(env)
		f.Add(env[:len(env)-1])
	}
	f.Add([]byte("S\x01"))
	f.Add(make([]byte, SealedHeaderSize+box16+72))
	f.Fuzz(func(t *testing.T, env []byte) {
		ck, sk := fixedPair()
		server := NewChannel(sk, peerOf(ck))
		body, err := server.Open(env)
		if err == nil {
			if !sealed[string(env)] {
				t.Fatalf("an envelope the client never sealed opened: %x", env)
			}
			if len(body) != len(env)-SealedOverhead {
				t.Fatalf("body of %d bytes from an envelope of %d", len(body), len(env))
			}
			if _, err := server.Open(env); err == nil {
				t.Fatal("the same envelope opened twice")
			}
		} else if server.recvSeq != 0 {
			t.Fatal("a refused envelope moved the seq counter")
		}
		if id, err := EnvelopeSignerID(env); err == nil && !bytes.Equal(id[:], env[2:10]) {
			t.Fatal("EnvelopeSignerID reads the wrong bytes")
		}
	})
}

// box16 is the NaCl box tag size, for the seed above.
const box16 = 16

// FuzzParseHello parses arbitrary bytes as client and server hellos. Only
// well-formed hellos parse, and only the server hello the identity really
// signed for this client hello is accepted.
func FuzzParseHello(f *testing.F) {
	ck, sk := fixedPair()
	idSeed := sha256.Sum256([]byte("fuzz identity"))
	identity := ed25519.NewKeyFromSeed(idSeed[:])
	ch := ck.ClientHello()
	sh := sk.ServerHello(identity, ch)
	f.Add(ch)
	f.Add(sh)
	f.Add(append([]byte{'H', 1, 'C'}, make([]byte, 64)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if peer, err := ParseClientHello(b); err == nil {
			if len(b) != clientHelloSize || !bytes.Equal(peer.Box[:], b[3:35]) || !bytes.Equal(peer.Sign[:], b[35:]) {
				t.Fatalf("accepted client hello %x", b)
			}
		}
		if _, id, err := ParseServerHello(b, ch); err == nil {
			if !bytes.Equal(b, sh) {
				t.Fatalf("accepted a server hello the identity never signed: %x", b)
			}
			if !id.Equal(identity.Public()) {
				t.Fatal("wrong identity returned")
			}
		}
		_, _ = EnvelopeKind(b)
		_, _ = ParsePlainError(b)
	})
}
