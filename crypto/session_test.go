package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/crypto/nacl/box"
)

// pair runs the hello exchange and returns the client and server channels.
func pair(t testing.TB) (client, server *Channel, identity ed25519.PrivateKey) {
	t.Helper()
	identity = NewIdentity()
	ck := NewSessionKeys()
	sk := NewSessionKeys()
	ch := ck.ClientHello()
	cpeer, err := ParseClientHello(ch)
	if err != nil {
		t.Fatal(err)
	}
	sh := sk.ServerHello(identity, ch)
	speer, idPub, err := ParseServerHello(sh, ch)
	if err != nil {
		t.Fatal(err)
	}
	if !idPub.Equal(identity.Public()) {
		t.Fatal("identity key differs")
	}
	return NewChannel(ck, speer), NewChannel(sk, cpeer), identity
}

func TestHelloKnownAnswer(t *testing.T) {
	identity := NewIdentity()
	ck := NewSessionKeys()
	sk := NewSessionKeys()
	ch := ck.ClientHello()
	if len(ch) != 67 || clientHelloSize != 67 {
		t.Fatalf("client hello is %d bytes, want 67", len(ch))
	}
	want := append([]byte{'H', 0x01, 'C'}, ck.boxPub[:]...)
	want = append(want, ck.signPub[:]...)
	if !bytes.Equal(ch, want) {
		t.Fatalf("client hello layout:\n got %x\nwant %x", ch, want)
	}
	sh := sk.ServerHello(identity, ch)
	if len(sh) != 163 || serverHelloSize != 163 {
		t.Fatalf("server hello is %d bytes, want 163", len(sh))
	}
	head := append([]byte{'H', 0x01, 'S'}, sk.boxPub[:]...)
	head = append(head, sk.signPub[:]...)
	head = append(head, identity.Public().(ed25519.PublicKey)...)
	if !bytes.Equal(sh[:99], head) {
		t.Fatalf("server hello layout:\n got %x\nwant %x", sh[:99], head)
	}
	// The exact bytes signed, built from the text of PROTOCOL.md 2.1.
	signed := []byte("librecord hello v1")
	signed = append(signed, ch...)
	signed = append(signed, sk.boxPub[:]...)
	signed = append(signed, sk.signPub[:]...)
	if len(signed) != 18+67+64 {
		t.Fatalf("signed bytes are %d long", len(signed))
	}
	if !bytes.Equal(helloSigned(ch, sk.boxPub[:], sk.signPub[:]), signed) {
		t.Fatal("helloSigned differs from the hand-built bytes")
	}
	if !ed25519.Verify(identity.Public().(ed25519.PublicKey), signed, sh[99:]) {
		t.Fatal("identity_sig does not verify over the hand-built bytes")
	}
}

func TestParseHelloErrors(t *testing.T) {
	identity := NewIdentity()
	ck := NewSessionKeys()
	sk := NewSessionKeys()
	ch := ck.ClientHello()
	sh := sk.ServerHello(identity, ch)
	mod := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"Short", ch[:66]},
		{"Long", append(bytes.Clone(ch), 0)},
		{"Kind", mod(ch, 0, 'S')},
		{"Version", mod(ch, 1, 2)},
		{"Role", mod(ch, 2, 'S')},
		{"ServerHello", sh},
		{"LowOrderBox", append(append([]byte{'H', 1, 'C'}, make([]byte, 32)...), ck.signPub[:]...)},
		{"LowOrderBoxOne", append(append([]byte{'H', 1, 'C', 1}, make([]byte, 31)...), ck.signPub[:]...)},
	} {
		t.Run("Client"+tc.name, func(t *testing.T) {
			if _, err := ParseClientHello(tc.b); !errors.Is(err, ErrBadHello) {
				t.Fatalf("got %v, want ErrBadHello", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"Short", sh[:162], ErrBadHello},
		{"Long", append(bytes.Clone(sh), 0), ErrBadHello},
		{"Kind", mod(sh, 0, 'E'), ErrBadHello},
		{"Version", mod(sh, 1, 0), ErrBadHello},
		{"Role", mod(sh, 2, 'C'), ErrBadHello},
		{"ClientHello", ch, ErrBadHello},
	} {
		t.Run("Server"+tc.name, func(t *testing.T) {
			if _, _, err := ParseServerHello(tc.b, ch); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Any change to the keys, the identity or the signature is caught, and
	// so is a server hello answering another client hello.
	for i := 3; i < serverHelloSize; i++ {
		b := mod(sh, i, sh[i]^0x01)
		if _, _, err := ParseServerHello(b, ch); !errors.Is(err, ErrBadIdentity) {
			t.Fatalf("byte %d flipped: got %v, want ErrBadIdentity", i, err)
		}
	}
	other := NewSessionKeys()
	if _, _, err := ParseServerHello(sh, other.ClientHello()); !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("hello for another client: got %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	client, server, _ := pair(t)
	for i, body := range []string{`{"op":"login","id":1,"password":"x"}`, "", "é<>&"} {
		env := client.Seal([]byte(body))
		if len(env) != len(body)+SealedOverhead {
			t.Fatalf("envelope %d is %d bytes, want %d", i, len(env), len(body)+SealedOverhead)
		}
		got, err := server.Open(env)
		if err != nil || string(got) != body {
			t.Fatalf("server opened %q, %v; want %q", got, err, body)
		}
		back := server.Seal([]byte("re:" + body))
		got, err = client.Open(back)
		if err != nil || string(got) != "re:"+body {
			t.Fatalf("client opened %q, %v", got, err)
		}
	}
	if client.PeerSignerID() != server.ownSigner || server.PeerSignerID() != client.ownSigner {
		t.Fatal("signer ids do not match across the pair")
	}
	env := client.Seal([]byte("x"))
	id, err := EnvelopeSignerID(env)
	if err != nil || id != server.PeerSignerID() {
		t.Fatalf("EnvelopeSignerID = %x, %v; want %x", id, err, server.PeerSignerID())
	}
}

// TestSealedKnownAnswer opens a sealed envelope by hand with nacl box and
// ed25519, following PROTOCOL.md 2.2 only.
func TestSealedKnownAnswer(t *testing.T) {
	client, server, _ := pair(t)
	ck, sk := client.own, server.own
	client.Seal([]byte("first")) // seq 1
	body := []byte(`{"op":"send","id":7}`)
	env := client.Seal(body) // seq 2

	sumSign := sha256.Sum256(ck.signPub[:])
	sumBox := sha256.Sum256(sk.boxPub[:])
	if env[0] != 'S' || env[1] != 0x01 {
		t.Fatalf("kind/version %x", env[:2])
	}
	if !bytes.Equal(env[2:10], sumSign[:8]) {
		t.Fatalf("signer_id %x, want %x", env[2:10], sumSign[:8])
	}
	if !bytes.Equal(env[10:18], sumBox[:8]) {
		t.Fatalf("recipient_id %x, want %x", env[10:18], sumBox[:8])
	}
	var nonce [24]byte
	copy(nonce[:], env[18:42])
	inner, ok := box.Open(nil, env[42:], &nonce, &ck.boxPub, &sk.boxPriv)
	if !ok {
		t.Fatal("box.Open with the recipient's private key failed")
	}
	if len(inner) != 8+len(body)+64 {
		t.Fatalf("inner is %d bytes", len(inner))
	}
	if seq := binary.BigEndian.Uint64(inner[:8]); seq != 2 {
		t.Fatalf("seq %d, want 2", seq)
	}
	if !bytes.Equal(inner[8:8+len(body)], body) {
		t.Fatalf("body %q", inner[8:8+len(body)])
	}
	signed := []byte{'S', 0x01}
	signed = append(signed, sumSign[:8]...)
	signed = append(signed, sumBox[:8]...)
	signed = append(signed, inner[:8]...)
	signed = append(signed, body...)
	if !ed25519.Verify(ck.signPub[:], signed, inner[8+len(body):]) {
		t.Fatal("signature does not verify over 'S' 0x01 | signer_id | recipient_id | seq | body")
	}
	// Two envelopes of one body differ (random nonce).
	if bytes.Equal(client.Seal(body)[18:], client.Seal(body)[18:]) {
		t.Fatal("two seals are identical")
	}
}

func TestOpenRefusesReplayAndReorder(t *testing.T) {
	client, server, _ := pair(t)
	e1, e2, e3 := client.Seal([]byte("1")), client.Seal([]byte("2")), client.Seal([]byte("3"))
	if _, err := server.Open(e2); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Open(e2); !errors.Is(err, errCrypto) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := server.Open(e1); !errors.Is(err, errCrypto) {
		t.Fatalf("reordered: %v", err)
	}
	if got, err := server.Open(e3); err != nil || string(got) != "3" {
		t.Fatalf("next in order: %q, %v", got, err)
	}
	// Gaps are allowed.
	client.Seal([]byte("4"))
	if got, err := server.Open(client.Seal([]byte("5"))); err != nil || string(got) != "5" {
		t.Fatalf("after a gap: %q, %v", got, err)
	}
}

func TestOpenCatchesEveryTamperedByte(t *testing.T) {
	client, server, _ := pair(t)
	env := client.Seal([]byte(`{"op":"fetch","id":8,"salon":"general"}`))
	for i := range env {
		for _, flip := range []byte{0x01, 0x80} {
			b := bytes.Clone(env)
			b[i] ^= flip
			if _, err := server.Open(b); !errors.Is(err, errCrypto) {
				t.Fatalf("byte %d ^ %#x: got %v, want errCrypto", i, flip, err)
			}
		}
	}
	for n := 0; n < len(env); n++ {
		_, err := server.Open(env[:n])
		if n < SealedHeaderSize && !errors.Is(err, ErrShortEnvelope) || n >= SealedHeaderSize && !errors.Is(err, errCrypto) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := server.Open(append(bytes.Clone(env), 0)); !errors.Is(err, errCrypto) {
		t.Fatalf("extended: %v", err)
	}
	// The failures changed no state: the original still opens.
	if _, err := server.Open(env); err != nil {
		t.Fatalf("original after failures: %v", err)
	}
}

func TestOpenRefusesOtherSessions(t *testing.T) {
	client, server, _ := pair(t)
	client2, server2, _ := pair(t)
	if _, err := server.Open(client2.Seal([]byte("x"))); !errors.Is(err, errCrypto) {
		t.Fatalf("envelope of another session: %v", err)
	}
	// An envelope a side sealed itself does not open on its own channel.
	if _, err := client.Open(client.Seal([]byte("x"))); !errors.Is(err, errCrypto) {
		t.Fatalf("reflected envelope: %v", err)
	}
	_ = server2
}

func TestEraseWipesKeys(t *testing.T) {
	client, server, _ := pair(t)
	env := client.Seal([]byte("x"))
	own := server.own
	server.Erase()
	if own.boxPriv != [32]byte{} || !bytes.Equal(own.signPriv, make([]byte, 64)) || server.shared != [32]byte{} {
		t.Fatal("private or shared key bytes survive Erase")
	}
	if !server.Erased() {
		t.Fatal("Erased() is false after Erase")
	}
	if env := server.Seal([]byte("x")); env != nil {
		t.Fatal("Seal after Erase returned an envelope")
	}
	if _, err := server.Open(env); !errors.Is(err, errCrypto) {
		t.Fatalf("Open after Erase: %v", err)
	}
	server.Erase() // twice is fine
}

func TestChannelConcurrent(t *testing.T) {
	client, server, _ := pair(t)
	const goroutines, each = 4, 25
	envs := make(chan []byte, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				envs <- server.Seal(fmt.Appendf(nil, "%d-%d", g, i))
			}
		}()
	}
	// Concurrent opens on the other side while the server seals.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			_, _ = server.Open(client.Seal([]byte("ping")))
		}
	}()
	wg.Wait()
	close(envs)
	// Sorted by seq, all open; out of order, the late ones are refused.
	var all [][]byte
	for e := range envs {
		all = append(all, e)
	}
	if len(all) != goroutines*each {
		t.Fatalf("%d envelopes", len(all))
	}
	seen := map[uint64]bool{}
	for _, e := range all {
		var nonce [24]byte
		copy(nonce[:], e[18:42])
		inner, ok := box.Open(nil, e[42:], &nonce, &server.own.boxPub, &client.own.boxPriv)
		if !ok {
			t.Fatal("box does not open")
		}
		seq := binary.BigEndian.Uint64(inner[:8])
		if seen[seq] {
			t.Fatalf("seq %d drawn twice", seq)
		}
		seen[seq] = true
	}
	for s := uint64(1); s <= goroutines*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d never drawn", s)
		}
	}
}

func TestEnvelopeKindAndPlainError(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		kind byte
		err  error
	}{
		{[]byte{'H', 1, 'C'}, KindHello, nil},
		{[]byte{'S', 1}, KindSealed, nil},
		{[]byte{'E', 1, '{'}, KindPlainError, nil},
		{nil, 0, errUnknownEnvelope},
		{[]byte{'S'}, 0, errUnknownEnvelope},
		{[]byte{'S', 2}, 0, errUnknownEnvelope},
		{[]byte{'X', 1}, 0, errUnknownEnvelope},
	} {
		k, err := EnvelopeKind(tc.in)
		if k != tc.kind || !errors.Is(err, tc.err) {
			t.Errorf("EnvelopeKind(%q) = %q, %v", tc.in, k, err)
		}
	}
	body := []byte(`{"op":"error","code":"frame","message":"missing portion 3"}`)
	pe := PlainError(body)
	if !bytes.Equal(pe, append([]byte{'E', 0x01}, body...)) {
		t.Fatalf("plain error %q", pe)
	}
	if got, err := ParsePlainError(pe); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("ParsePlainError: %q, %v", got, err)
	}
	for _, b := range [][]byte{nil, {'E', 1}, {'E', 2, '{'}, {'S', 1, '{'}} {
		if _, err := ParsePlainError(b); !errors.Is(err, errBadPlainError) {
			t.Errorf("ParsePlainError(%q): %v", b, err)
		}
	}
}
