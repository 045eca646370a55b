package crypto

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
		if _, err := ParseFingerprint(bad); !errors.Is(err, ErrBadFingerprint) {
			t.Errorf("ParseFingerprint(%q): %v, want ErrBadFingerprint", bad, err)
		}
	}
	if !FingerprintMatches(fp, seedKey()) || FingerprintMatches(fp, make([]byte, 32)) || FingerprintMatches("junk", seedKey()) {
		t.Error("FingerprintMatches is wrong")
	}
}

func TestKnownServersTOFU(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "librecord", "known_servers")
	ks, err := LoadKnownServers(path)
	if err != nil {
		t.Fatalf("missing file: %v", err)
	}
	pub := seedKey()
	other, _ := NewIdentity()
	otherPub := other.Public().(ed25519.PublicKey)

	if st, err := ks.Check("Chat.Example.org", pub); st != TrustUnknown || err != nil {
		t.Fatalf("first contact: %v, %v", st, err)
	}
	if err := ks.Add("Chat.Example.org", pub); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", info.Mode(), err)
	}
	// A fresh load sees the entry under every spelling of the address.
	ks, err = LoadKnownServers(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"chat.example.org:7447", "CHAT.example.org", "chat.example.org"} {
		if st, err := ks.Check(addr, pub); st != TrustMatch || err != nil {
			t.Fatalf("%s: %v, %v; want match", addr, st, err)
		}
	}
	if st, _ := ks.Check("chat.example.org:7448", pub); st != TrustUnknown {
		t.Fatalf("another port: %v, want unknown", st)
	}
	st, err := ks.Check("chat.example.org", otherPub)
	var mm *KeyMismatchError
	if st != TrustMismatch || !errors.As(err, &mm) {
		t.Fatalf("other key: %v, %v; want mismatch", st, err)
	}
	if mm.Stored != Fingerprint(pub) || mm.Got != Fingerprint(otherPub) || mm.Line != 2 || mm.Path != path {
		t.Fatalf("mismatch error %+v", mm)
	}
	for _, want := range []string{path, "chat.example.org:7447", "line 2", Fingerprint(pub), Fingerprint(otherPub), "delete the line"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("warning %q lacks %q", err, want)
		}
	}
	// Add never silently replaces a pinned key.
	if err := ks.Add("chat.example.org", otherPub); !errors.As(err, &mm) {
		t.Fatalf("Add over a pinned key: %v", err)
	}
	if err := ks.Add("chat.example.org", pub); err != nil {
		t.Fatalf("Add of the same key: %v", err)
	}
	if err := ks.Remove("CHAT.example.org:7447"); err != nil {
		t.Fatal(err)
	}
	if st, _ := ks.Check("chat.example.org", otherPub); st != TrustUnknown {
		t.Fatalf("after Remove: %v", st)
	}
	if err := ks.Add("chat.example.org", otherPub); err != nil {
		t.Fatal(err)
	}
	if fp, ok := ks.Lookup("chat.example.org"); !ok || fp != Fingerprint(otherPub) {
		t.Fatalf("Lookup = %s, %v", fp, ok)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only known_servers", len(entries))
	}
}

func TestKnownServersHandWritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "known_servers")
	content := "# my servers\r\n\n" +
		"club.example:7447 SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw\n" +
		"[::1]:9000\tSHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\n" +
		"club.example SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKnownServers(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"club.example", "[::1]:9000"} {
		if st, err := ks.Check(addr, seedKey()); st != TrustMatch {
			t.Fatalf("%s: %v, %v", addr, st, err)
		}
	}
	// Add keeps the comments; Remove drops every line of the address.
	other, _ := NewIdentity()
	if err := ks.Add("::2", other.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if err := ks.Remove("club.example"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# my servers\n") || strings.Contains(string(data), "club.example") || !strings.Contains(string(data), "[::2]:7447 SHA256:") {
		t.Fatalf("file after Add and Remove:\n%s", data)
	}
}

func TestKnownServersRefusesBadFiles(t *testing.T) {
	const fp = "SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw"
	for _, tc := range []struct{ name, content, want string }{
		{"OneField", "club.example\n", "line 1"},
		{"FourFields", "club.example " + fp + " A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg extra\n", "line 1"},
		{"BadFingerprint", "# c\nclub.example SHA256:nope\n", "line 2"},
		{"KeyMismatch", "club.example " + fp + " AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", "does not match"},
		{"ShortKey", "club.example " + fp + " AAAA\n", "32 bytes"},
		{"BadAddress", "club.example:x " + fp + "\n", "bad port"},
		{"Conflict", "a.example " + fp + "\nA.example:7447 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n", "already listed on line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_servers")
			os.WriteFile(path, []byte(tc.content), 0o600)
			_, err := LoadKnownServers(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming %s and %q", err, path, tc.want)
			}
		})
	}
}

func TestNormaliseServerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"Example.ORG": "example.org:7447", "example.org:1": "example.org:1", "10.0.0.1": "10.0.0.1:7447",
		"::1": "[::1]:7447", "[::1]": "[::1]:7447", "[::1]:80": "[::1]:80",
	} {
		if got, err := NormaliseServerAddr(in); err != nil || got != want {
			t.Errorf("NormaliseServerAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ":7447", "example.org:", "a b", "[::1", "host:port"} {
		if got, err := NormaliseServerAddr(bad); err == nil {
			t.Errorf("NormaliseServerAddr(%q) = %q, want an error", bad, got)
		}
	}
}
