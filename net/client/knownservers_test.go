package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"librecord/crypto"
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

// keyFor is a distinct identity key for each n.
func keyFor(n int) ed25519.PublicKey {
	seed := make([]byte, 32)
	copy(seed, fmt.Sprintf("librecord test key %d", n))
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

// pinMany pins addresses host-<from>..host-<from+n-1> in the file at path,
// each through its own store, as separate clients would.
func pinMany(path string, from, n int) error {
	for i := from; i < from+n; i++ {
		ks, err := LoadKnownServers(path)
		if err != nil {
			return err
		}
		if err := ks.Add(fmt.Sprintf("host-%d.example", i), keyFor(i)); err != nil {
			return err
		}
	}
	return nil
}

// checkAllPinned fails unless every host-<i> for i < n is pinned to its key.
func checkAllPinned(t *testing.T, path string, n int) {
	t.Helper()
	ks, err := LoadKnownServers(path)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for i := range n {
		if st, err := ks.Check(fmt.Sprintf("host-%d.example", i), keyFor(i)); st != TrustMatch {
			missing++
			if missing < 5 {
				t.Errorf("host-%d: %v, %v", i, st, err)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d pins lost", missing, n)
	}
}

func TestKnownServersConcurrentPins(t *testing.T) {
	t.Run("Goroutines", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "known_servers")
		const workers, each = 16, 8
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- pinMany(path, w*each, each)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		checkAllPinned(t, path, workers*each)
	})
	t.Run("Processes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "known_servers")
		const procs, each = 6, 8
		var cmds []*exec.Cmd
		for p := range procs {
			cmd := exec.Command(os.Args[0], "-test.run=^TestKnownServersPinHelper$")
			cmd.Env = append(os.Environ(), "LIBRECORD_PIN_HELPER="+path, "LIBRECORD_PIN_FROM="+strconv.Itoa(p*each),
				"LIBRECORD_PIN_COUNT="+strconv.Itoa(each))
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("helper output: %s", out.String())
				}
			})
		}
		for _, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("pinning process: %v", err)
			}
		}
		checkAllPinned(t, path, procs*each)
	})
}

// TestKnownServersPinHelper is the body of the pinning processes of
// TestKnownServersConcurrentPins; it does nothing in a normal run.
func TestKnownServersPinHelper(t *testing.T) {
	path := os.Getenv("LIBRECORD_PIN_HELPER")
	if path == "" {
		t.Skip("helper process only")
	}
	from, _ := strconv.Atoi(os.Getenv("LIBRECORD_PIN_FROM"))
	n, _ := strconv.Atoi(os.Getenv("LIBRECORD_PIN_COUNT"))
	if err := pinMany(path, from, n); err != nil {
		t.Fatal(err)
	}
}

func TestKnownServersThroughSymlink(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing bool // the target exists before the first Add
		relative bool // the link's target is a relative path
	}{{"Existing", true, false}, {"Dangling", false, false}, {"Relative", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cfg := filepath.Join(root, "cfg")
			dotfiles := filepath.Join(root, "dotfiles")
			os.MkdirAll(cfg, 0o700)
			os.MkdirAll(dotfiles, 0o700)
			target := filepath.Join(dotfiles, "known_servers")
			if tc.existing {
				if err := os.WriteFile(target, []byte("# kept\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(cfg, "known_servers")
			to := target
			if tc.relative {
				to = filepath.Join("..", "dotfiles", "known_servers")
			}
			if err := os.Symlink(to, link); err != nil {
				t.Fatal(err)
			}
			ks, err := LoadKnownServers(link)
			if err != nil {
				t.Fatal(err)
			}
			if err := ks.Add("a.example", keyFor(1)); err != nil {
				t.Fatal(err)
			}
			if err := ks.Add("b.example", keyFor(2)); err != nil {
				t.Fatal(err)
			}
			if err := ks.Remove("a.example"); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(link)
			if err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("the link was replaced: %v, %v", fi.Mode(), err)
			}
			data, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "b.example:7447 ") || strings.Contains(string(data), "a.example") ||
				tc.existing != strings.HasPrefix(string(data), "# kept\n") {
				t.Fatalf("target holds:\n%s", data)
			}
			// The lock file and the temporary files live beside the
			// target; nothing is left in the link's directory.
			if entries, _ := os.ReadDir(cfg); len(entries) != 1 {
				t.Errorf("link directory holds %d files, want only the link", len(entries))
			}
			names := []string{}
			entries, _ := os.ReadDir(dotfiles)
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if strings.Join(names, " ") != "known_servers known_servers.lock" {
				t.Errorf("target directory holds %v", names)
			}
			checked, err := LoadKnownServers(link)
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := checked.Check("b.example", keyFor(2)); st != TrustMatch {
				t.Errorf("b.example through the link: %v", st)
			}
		})
	}
}

func TestKnownServersTOFU(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "librecord", "known_servers")
	ks, err := LoadKnownServers(path)
	if err != nil {
		t.Fatalf("missing file: %v", err)
	}
	pub := seedKey()
	other := crypto.NewIdentity()
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
	if mm.Stored != crypto.Fingerprint(pub) || mm.Got != crypto.Fingerprint(otherPub) || mm.Line != 2 || mm.Path != path {
		t.Fatalf("mismatch error %+v", mm)
	}
	for _, want := range []string{path, "chat.example.org:7447", "line 2", crypto.Fingerprint(pub), crypto.Fingerprint(otherPub), "delete the line"} {
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
	if fp, ok := ks.Lookup("chat.example.org"); !ok || fp != crypto.Fingerprint(otherPub) {
		t.Fatalf("Lookup = %s, %v", fp, ok)
	}
	// No temporary file is left behind; the lock file stays.
	var names []string
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "known_servers known_servers.lock" {
		t.Fatalf("directory holds %v, want only known_servers and its lock", names)
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
	other := crypto.NewIdentity()
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

// FuzzLoadKnownServers parses arbitrary known-servers files: no panic, and
// every address kept is already normalised.
func FuzzLoadKnownServers(f *testing.F) {
	f.Add([]byte("# c\nclub.example SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\n"))
	f.Add([]byte("[::1]:7447 SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks := &KnownServers{path: "known_servers"}
		if err := ks.parse(data); err != nil {
			return
		}
		for _, e := range ks.entries {
			if a, err := normaliseAddr(e.addr); err != nil || a != e.addr {
				t.Fatalf("address %q not normalised (%q, %v)", e.addr, a, err)
			}
			if fp, err := crypto.ParseFingerprint(e.fingerprint); err != nil || fp != e.fingerprint {
				t.Fatalf("fingerprint %q kept as is", e.fingerprint)
			}
		}
	})
}
