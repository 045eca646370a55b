package commands

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net/server"
	"librecord/net/server/servertest"
)

// chatServer runs a real server in-process with user alice on general.
func chatServer(t *testing.T) (addr, fingerprint string, d *db.DB) {
	t.Helper()
	d = servertest.TempDB(t)
	if _, err := d.AddUser(context.Background(), "alice", "alice-password-123", []string{"general"}); err != nil {
		t.Fatal(err)
	}
	addr = servertest.Start(t, d, server.DefaultConfig())
	return addr, crypto.Fingerprint(d.Identity().Public().(ed25519.PublicKey)), d
}

func runChat(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	app := NewApp()
	var out, errOut bytes.Buffer
	app.Reader, app.Writer, app.ErrWriter = strings.NewReader(stdin), &out, &errOut
	err := Run(context.Background(), app, append([]string{"librecord"}, args...))
	return out.String() + errOut.String(), err
}

func TestChatScriptedBothFlagOrders(t *testing.T) {
	addr, fp, d := chatServer(t)
	t.Setenv("LIBRECORD_CONFIG_DIR", t.TempDir())
	t.Setenv("LIBRECORD_PASSWORD", "")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("alice-password-123\n"), 0o600)
	for name, args := range map[string][]string{
		"FlagsAfterCommand": {"chat", "--server", addr, "--trust", fp, "--password-file", pwFile, "--salon", "general"},
		"GlobalFlagAfter":   {"chat", "--salon", "general", "--db", "unused.db", "--password-file", pwFile, "--server", addr, "--trust", fp},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := runChat(t, "from "+name+"\n", args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
	var texts []string
	msgs, _, err := d.Latest(context.Background(), mustSalon(t, d, "general"), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		texts = append(texts, m.Text)
	}
	got := strings.Join(texts, "|")
	if !strings.Contains(got, "from FlagsAfterCommand") || !strings.Contains(got, "from GlobalFlagAfter") {
		t.Errorf("stored %q", got)
	}
}

func TestChatScriptedErrors(t *testing.T) {
	addr, fp, _ := chatServer(t)
	t.Setenv("LIBRECORD_PASSWORD", "")
	for name, tc := range map[string]struct {
		env  string
		args []string
		want string
	}{
		"ErrNoPassword":    {"", []string{"chat", "--server", addr, "--trust", fp}, "no password"},
		"ErrUnknownServer": {"alice-password-123", []string{"chat", "--server", addr}, "--trust " + fp},
		"ErrWrongPassword": {"nope-nope-nope", []string{"chat", "--server", addr, "--trust", fp}, "password from LIBRECORD_PASSWORD was refused"},
		"ErrBadTrust":      {"alice-password-123", []string{"chat", "--server", addr, "--trust", "SHA256:nope"}, "--trust"},
		"ErrArgument":      {"alice-password-123", []string{"chat", "extra"}, "unexpected argument \"extra\""},
		"ErrLoginTimeout":  {"alice-password-123", []string{"chat", "--server", addr, "--trust", fp, "--login-timeout", "-1s"}, "--login-timeout must not be negative"},
		"ErrReloginJitter": {"alice-password-123", []string{"chat", "--server", addr, "--trust", fp, "--relogin-jitter", "-1s"}, "--relogin-jitter must not be negative"},
	} {
		t.Run(name, func(t *testing.T) {
			// A known-servers file of its own: a subtest run before with
			// --trust would otherwise have recorded the server.
			t.Setenv("LIBRECORD_CONFIG_DIR", t.TempDir())
			t.Setenv("LIBRECORD_PASSWORD", tc.env)
			out, err := runChat(t, "x\n", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q\n%s", err, tc.want, out)
			}
		})
	}
}

func mustSalon(t *testing.T, d *db.DB, name string) int64 {
	t.Helper()
	s, err := d.Salon(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// The new flags reach the REPL (jitter, no bell) and the client (login
// timeout).
func TestChatTimeoutFlags(t *testing.T) {
	addr, fp, _ := chatServer(t)
	t.Setenv("LIBRECORD_CONFIG_DIR", t.TempDir())
	t.Setenv("LIBRECORD_PASSWORD", "alice-password-123")
	out, err := runChat(t, "with flags\n", "chat", "--server", addr, "--trust", fp,
		"--login-timeout", "45s", "--relogin-jitter", "0", "--no-bell")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rc, err := ChatConfig{Server: addr, ReloginJitter: 2 * time.Second, LoginTimeout: 45 * time.Second, NoBell: true}.replConfig()
	if err != nil || rc.ReloginJitter != 2*time.Second || !rc.NoBell {
		t.Errorf("repl config %+v, %v", rc, err)
	}
}
