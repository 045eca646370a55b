package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net"
	"librecord/net/testkit"
)

// startServe runs librecord with args (which start serve on 127.0.0.1:0)
// and returns the printed address and fingerprint, the log, and a stop
// function that sends the equivalent of SIGINT and returns Run's error.
func startServe(t *testing.T, args []string) (addr, fingerprint string, logs *testkit.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	app := NewApp()
	if findCommand(app.Commands, "serve") == nil {
		app.Commands = append(app.Commands, serveCommand())
	}
	logs = &testkit.Buffer{}
	app.Writer, app.ErrWriter = pw, logs
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, app, args)
		pw.CloseWithError(errors.New("serve returned"))
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		line := lines.Text()
		if rest, ok := strings.CutPrefix(line, "librecord: serving "); ok {
			addr = rest[strings.LastIndex(rest, " ")+1:]
		}
		if rest, ok := strings.CutPrefix(line, "librecord: identity fingerprint "); ok {
			fingerprint = rest
			break
		}
	}
	if addr == "" || fingerprint == "" {
		cancel()
		t.Fatalf("serve printed no address and fingerprint (log: %s)", logs.String())
	}
	go io.Copy(io.Discard, pr)
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not stop after the signal")
			return nil
		}
	}
	return addr, fingerprint, logs, stop
}

// helloAndLogin checks the server's identity against fingerprint, then
// logs in with password and returns the answer body.
func helloAndLogin(t *testing.T, addr, fingerprint, password string) map[string]any {
	t.Helper()
	nc, err := stdnet.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	keys := crypto.NewSessionKeys()
	hello := keys.ClientHello()
	if err := net.WriteFrame(nc, hello); err != nil {
		t.Fatal(err)
	}
	fr := net.NewFrameReader(bufio.NewReader(nc), 0)
	payload, _, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	peer, identity, err := crypto.ParseServerHello(payload, hello)
	if err != nil {
		t.Fatal(err)
	}
	if got := crypto.Fingerprint(identity); got != fingerprint {
		t.Fatalf("server identity %s, printed %s", got, fingerprint)
	}
	if password == "" {
		return nil
	}
	ch := crypto.NewChannel(keys, peer)
	body, _ := json.Marshal(map[string]any{"op": "login", "id": 1, "password": password})
	if err := net.WriteFrame(nc, ch.Seal(body)); err != nil {
		t.Fatal(err)
	}
	if payload, _, err = fr.Next(); err != nil {
		t.Fatal(err)
	}
	plain, err := ch.Open(payload)
	if err != nil {
		t.Fatal(err)
	}
	var answer map[string]any
	if err := json.Unmarshal(plain, &answer); err != nil {
		t.Fatal(err)
	}
	return answer
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "community.db")
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("host passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kdf := crypto.InsecureTestKDF()
	ctx := context.Background()
	if err := db.Create(ctx, path, []byte("host passphrase"), db.CreateOptions{KDF: &kdf}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, path, []byte("host passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	const password = "a long enough password"
	if _, err := d.AddUser(ctx, "alice", password, []string{"general"}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	for name, args := range map[string][]string{
		"FlagsFirst": {"librecord", "--db", path, "--passphrase-file", passFile,
			"serve", "--listen", "127.0.0.1:0", "--session-timeout", "5s", "--max-portions", "2000"},
		"FlagsAfter": {"librecord", "serve", "--listen", "127.0.0.1:0", "--log-format", "json",
			"--db", path, "--passphrase-file", passFile, "--send-rate", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			addr, fingerprint, logs, stop := startServe(t, args)
			answer := helloAndLogin(t, addr, fingerprint, password)
			if answer["op"] != "connected" || answer["pseudo"] != "alice" {
				t.Fatalf("login: %v", answer)
			}
			if name == "FlagsFirst" && answer["session_timeout_ms"] != float64(5000) {
				t.Fatalf("--session-timeout not applied: %v", answer)
			}
			if err := stop(); err != nil {
				t.Fatalf("serve after SIGINT: %v", err)
			}
			log := logs.String()
			if !strings.Contains(log, "alice") || strings.Contains(log, password) || strings.Contains(log, "host passphrase") {
				t.Fatalf("log should name the login and hold no secret:\n%s", log)
			}
			if !strings.Contains(log, "insecure-test-kdf") {
				t.Fatalf("a test-KDF database should be warned about:\n%s", log)
			}
			if name == "FlagsAfter" && !strings.HasPrefix(log, "{") {
				t.Fatalf("--log-format json not applied:\n%s", log)
			}
		})
	}
}

func TestServeCreatesDatabaseOnFirstRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new.db")
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("host passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, fingerprint, logs, stop := startServe(t, []string{"librecord", "serve", "--insecure-test-kdf",
		"--db", path, "--passphrase-file", passFile, "--listen", "127.0.0.1:0"})
	helloAndLogin(t, addr, fingerprint, "")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "user add PSEUDO --salon general") {
		t.Fatalf("a new server should say how to add its first user:\n%s", logs.String())
	}
	if got, err := db.Fingerprint(context.Background(), path); err != nil || got != fingerprint {
		t.Fatalf("database fingerprint %q (%v), printed %q", got, err, fingerprint)
	}
}

func TestServeRefusesBadLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "never.db")
	for _, args := range [][]string{
		{"--max-portions", "100"},
		{"--max-message", "0"},
		{"--log-format", "xml"},
	} {
		app := NewApp()
		if findCommand(app.Commands, "serve") == nil {
			app.Commands = append(app.Commands, serveCommand())
		}
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := Run(context.Background(), app, append([]string{"librecord", "--db", path, "serve", "--listen", "127.0.0.1:0"}, args...))
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("serve %v: %v", args, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start touched the database: %v", err)
	}
}

func TestFDShortage(t *testing.T) {
	limit, ok := openFileLimit()
	if !ok {
		t.Skip("no open-file limit on this system")
	}
	if msg, short := fdShortage(int(limit)); !short || !strings.Contains(msg, "LimitNOFILE") {
		t.Errorf("max-conns at the limit should warn, got %q %v", msg, short)
	}
	if limit > fdReserve+10 {
		if msg, short := fdShortage(int(limit - fdReserve - 10)); short {
			t.Errorf("max-conns well under the limit should not warn: %q", msg)
		}
	}
	if _, short := fdShortage(0); short {
		t.Error("no connection limit: nothing to compare")
	}
}
