package crypto

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func newTestKey(t *testing.T) *Key {
	t.Helper()
	k := NewKey()
	return k
}

func TestKeySealOpen(t *testing.T) {
	k := newTestKey(t)
	other := newTestKey(t)
	ad := []byte("row 1 salon 2")
	blob := k.Seal([]byte("bonjour"), ad)
	if bytes.Contains(blob, []byte("bonjour")) {
		t.Fatal("plaintext visible in blob")
	}
	t.Run("OK", func(t *testing.T) {
		pt, err := k.Open(blob, ad)
		if err != nil || string(pt) != "bonjour" {
			t.Fatalf("Open = %q, %v", pt, err)
		}
	})
	t.Run("OK/Empty", func(t *testing.T) {
		pt, err := k.Open(k.Seal(nil, nil), nil)
		if err != nil || len(pt) != 0 {
			t.Fatalf("Open = %q, %v", pt, err)
		}
	})
	t.Run("OK/FreshNonce", func(t *testing.T) {
		if bytes.Equal(blob, k.Seal([]byte("bonjour"), ad)) {
			t.Fatal("two seals of the same text are equal")
		}
	})
	fails := map[string]struct {
		key  *Key
		blob []byte
		ad   []byte
	}{
		"WrongKey":     {other, blob, ad},
		"OtherRow":     {k, blob, []byte("row 2 salon 2")},
		"NoAD":         {k, blob, nil},
		"Truncated":    {k, blob[:len(blob)-1], ad},
		"Short":        {k, blob[:10], ad},
		"Empty":        {k, nil, ad},
		"Version":      {k, append([]byte{2}, blob[1:]...), ad},
		"FlippedBody":  {k, flipAt(blob, len(blob)-20), ad},
		"FlippedTag":   {k, flipAt(blob, len(blob)-1), ad},
		"FlippedNonce": {k, flipAt(blob, 3), ad},
	}
	for name, f := range fails {
		t.Run("ErrDecrypt/"+name, func(t *testing.T) {
			if _, err := f.key.Open(f.blob, f.ad); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
		})
	}
}

func flipAt(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

func TestWrapUnwrap(t *testing.T) {
	kek, data := newTestKey(t), newTestKey(t)
	w := kek.Wrap(data, "")
	got, err := kek.Unwrap(w, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.b != data.b {
		t.Fatal("unwrapped key differs")
	}
	if _, err := newTestKey(t).Unwrap(w, ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong kek: %v", err)
	}
	// A blob sealed for another purpose is not a wrapped key.
	if _, err := kek.Unwrap(kek.Seal(make([]byte, 32), []byte("x")), ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("foreign blob: %v", err)
	}
	// A wrapped key of the wrong length is refused.
	if _, err := kek.Unwrap(kek.Seal(make([]byte, 16), []byte(wrapAD)), ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("short key: %v", err)
	}
}

func TestWrapPurpose(t *testing.T) {
	kek, data := newTestKey(t), newTestKey(t)
	w := kek.Wrap(data, "password-id")
	got, err := kek.Unwrap(w, "password-id")
	if err != nil || got.b != data.b {
		t.Fatalf("unwrap: %v", err)
	}
	// Another purpose, the passphrase's data key (""), another key: refused.
	if _, err := kek.Unwrap(w, "rotation"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other purpose: %v", err)
	}
	if _, err := kek.Unwrap(w, ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("as a passphrase-wrapped key: %v", err)
	}
	if _, err := kek.Unwrap(kek.Wrap(data, ""), "password-id"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a passphrase-wrapped key as password-id: %v", err)
	}
	if _, err := newTestKey(t).Unwrap(w, "password-id"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key: %v", err)
	}
}

// TestTagKey: a tag subkey stored on its own gives the tags its parent
// gave (databases made before the password key keep their identifiers).
func TestTagKey(t *testing.T) {
	k := newTestKey(t)
	sub := k.TagKey("password-id")
	// The tags of databases made before the password key were
	// HMAC-SHA256 under HKDF-Expand(k, "librecord/v1/tag/password-id").
	prk, err := hkdf.Expand(sha256.New, k.b[:], "librecord/v1/tag/password-id", 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, prk)
	m.Write([]byte("x"))
	if !bytes.Equal(sub.MAC([]byte("x")), m.Sum(nil)) {
		t.Fatal("TagKey(label).MAC differs from the tags of old databases")
	}
	if sub.b == k.b || sub.b == k.TagKey("other").b {
		t.Fatal("subkey ignores the label")
	}
}

func TestDeriveKey(t *testing.T) {
	p := InsecureTestKDF()
	salt := []byte("0123456789abcdef")
	a := DeriveKey([]byte("correct horse"), salt, p)
	if b := DeriveKey([]byte("correct horse"), salt, p); a.b != b.b {
		t.Fatal("not deterministic")
	}
	if b := DeriveKey([]byte("correct horsf"), salt, p); a.b == b.b {
		t.Fatal("passphrase ignored")
	}
	if b := DeriveKey([]byte("correct horse"), []byte("0123456789abcdeF"), p); a.b == b.b {
		t.Fatal("salt ignored")
	}
	q := p
	q.Time++
	if b := DeriveKey([]byte("correct horse"), salt, q); a.b == b.b {
		t.Fatal("params ignored")
	}
	// The storage key and the password identifier of the same input differ
	// (versioned labels).
	if bytes.Equal(a.b[:], HashPassword("correct horse", salt, p)) {
		t.Fatal("storage key equals password id")
	}
	// Pinned: a change of label or construction would orphan every database.
	const want = "2e2921d81191617518279766638414bdf8e1baae9ba9c22ba09bc9dee0cb219b"
	if got := hex.EncodeToString(a.b[:]); got != want {
		t.Fatalf("DeriveKey vector = %s, want %s", got, want)
	}
	a.Erase()
	if a.b != [32]byte{} {
		t.Fatal("Erase left bytes")
	}
}

func TestKDFValidate(t *testing.T) {
	ok := []KDFParams{DefaultPassphraseKDF(), DefaultPasswordKDF(), InsecureTestKDF(), {Time: 32, MemoryKiB: 1 << 20, Threads: 64}}
	for _, p := range ok {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := map[string]KDFParams{
		"ZeroTime":    {Time: 0, MemoryKiB: 64, Threads: 1},
		"HugeTime":    {Time: 33, MemoryKiB: 64, Threads: 1},
		"ZeroThreads": {Time: 1, MemoryKiB: 64, Threads: 0},
		"HugeThreads": {Time: 1, MemoryKiB: 1024, Threads: 65},
		"TinyMemory":  {Time: 1, MemoryKiB: 15, Threads: 2},
		"HugeMemory":  {Time: 1, MemoryKiB: 1<<20 + 1, Threads: 1},
		"ZeroMemory":  {Time: 1, MemoryKiB: 0, Threads: 1},
	}
	for name, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("%s %+v accepted", name, p)
		}
	}
}

func TestTag(t *testing.T) {
	tag := func(k *Key, label string, msg []byte) []byte { return k.TagKey(label).MAC(msg) }
	k := newTestKey(t)
	a := tag(k, "password-id", []byte("x"))
	if len(a) != 32 || !bytes.Equal(a, tag(k, "password-id", []byte("x"))) {
		t.Fatal("not a deterministic 32-byte tag")
	}
	if bytes.Equal(a, tag(k, "other", []byte("x"))) || bytes.Equal(a, tag(k, "password-id", []byte("y"))) || bytes.Equal(a, tag(newTestKey(t), "password-id", []byte("x"))) {
		t.Fatal("tag ignores label, message or key")
	}
}

func TestHashPassword(t *testing.T) {
	p := InsecureTestKDF()
	salt := []byte("install-wide-salt")
	h := HashPassword("alice's password", salt, p)
	if len(h) != 32 || !bytes.Equal(h, HashPassword("alice's password", salt, p)) {
		t.Fatal("not a deterministic 32-byte id")
	}
	if bytes.Equal(h, HashPassword("alice's passwore", salt, p)) || bytes.Equal(h, HashPassword("alice's password", []byte("other-install-salt"), p)) {
		t.Fatal("password or salt ignored")
	}
}

func TestGeneratePassword(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){6}$`)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		pw := GeneratePassword()
		if !shape.MatchString(pw) {
			t.Fatalf("%q has not the expected shape", pw)
		}
		if seen[pw] {
			t.Fatal("repeated password")
		}
		seen[pw] = true
		if err := CheckPassword(pw); err != nil {
			t.Fatalf("generated password refused: %v", err)
		}
	}
	// 28 symbols out of 32 (5 bits each): 140 bits.
	if len(passwordAlphabet) != 32 {
		t.Fatalf("alphabet of %d symbols", len(passwordAlphabet))
	}
	for pw := range seen {
		if n := len(strings.ReplaceAll(pw, "-", "")); n*5 < 128 {
			t.Fatalf("%d symbols: under 128 bits", n)
		}
		break
	}
}

func TestCheckPassword(t *testing.T) {
	good := []string{"twelve chars", "é-é-é-é-é-é-", strings.Repeat("x", MaxPasswordLength)}
	for _, pw := range good {
		if err := CheckPassword(pw); err != nil {
			t.Errorf("%q: %v", pw, err)
		}
	}
	bad := map[string]string{
		"Short":   "eleven char",
		"Empty":   "",
		"Long":    strings.Repeat("x", MaxPasswordLength+1),
		"Newline": "twelve chars\n",
		"Tab":     "twelve\tchars",
		"Delete":  "twelve chars\x7f",
		"BadUTF8": "twelve chars\xff",
	}
	for name, pw := range bad {
		if err := CheckPassword(pw); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
