package conformance

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func dirSnapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestAtRest (section 7): message text is not stored in clear; a wrong
// passphrase is refused at start and nothing is written; the text export
// keeps the manual's layout.
func TestAtRest(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	secret := "zqxj-conformance-secret-text-4711"
	a.send("general", secret)
	a.send("general", "bonjour")
	s.stop()
	dir := filepath.Dir(s.db)
	snap := dirSnapshot(t, dir)
	for name, b := range snap {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds a message text in clear", name)
		}
		if bytes.Contains(b, []byte(pw("alice"))) {
			t.Errorf("%s holds a password in clear", name)
		}
	}

	// Wrong passphrase: refused, nothing written.
	cmd := exec.Command(binPath, "--db", s.db, "serve", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "LIBRECORD_PASSPHRASE=not-the-passphrase")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("serve with a wrong passphrase kept running")
	}
	if err == nil {
		t.Fatalf("serve with a wrong passphrase exited 0: %s", out)
	}
	if !strings.Contains(strings.ToLower(string(out)), "passphrase") {
		t.Errorf("error does not mention the passphrase: %s", out)
	}
	// The database must be byte-identical. SQLite side files may appear
	// (an empty -wal and a -shm index); their content is not data.
	after := dirSnapshot(t, dir)
	for n, b := range snap {
		if !bytes.Equal(b, after[n]) {
			t.Errorf("%s was written by serve with a wrong passphrase", n)
		}
	}
	for n, b := range after {
		if _, ok := snap[n]; ok {
			continue
		}
		switch {
		case strings.HasSuffix(n, "-shm"):
		case strings.HasSuffix(n, "-wal") && len(b) == 0:
		default:
			t.Errorf("serve with a wrong passphrase created %s (%d bytes)", n, len(b))
		}
	}

	exp := admin(t, s.db, "", "export", "--salon", "general")
	if !strings.Contains(exp, "PSEUDO : alice\nMESSAGE : bonjour ;") {
		t.Fatalf("export layout: %q", exp)
	}
}
