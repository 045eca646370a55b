package commands

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"librecord/db"
)

const rotatedPass = "battery staple"

// process is librecord running in another process (this test binary
// re-run as TestLibrecordProcess), with its stderr read line by line.
type process struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

// startProcess starts librecord with the env's global flags and args, and
// waits until a line of its stderr holds ready.
func (e *adminEnv) startProcess(ready string, args ...string) *process {
	e.t.Helper()
	full := append([]string{"--db", e.db, "--passphrase-file", e.passFile}, args...)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLibrecordProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LIBRECORD_TEST_ARGS="+strings.Join(full, "\n"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			select {
			case p.lines <- s.Text():
			default:
			}
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	e.t.Cleanup(func() { cmd.Process.Kill() })
	var seen []string
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				e.t.Fatalf("librecord %v ended before %q:\n%s", args, ready, strings.Join(seen, "\n"))
			}
			seen = append(seen, line)
			if strings.Contains(line, ready) {
				return p
			}
		case <-timeout:
			e.t.Fatalf("librecord %v: no %q within a minute:\n%s", args, ready, strings.Join(seen, "\n"))
		}
	}
}

// stop sends sig and waits for the process to end.
func (p *process) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range p.lines {
		}
	}()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("process did not end")
	}
}

// messagesEnv is an env with alice in general and n messages from her,
// stored directly; it returns their texts in order.
func messagesEnv(t *testing.T, n int) (*adminEnv, []string) {
	t.Helper()
	e := newInitEnv(t)
	d, gen, alice := e.aliceInGeneral(false)
	var texts []string
	var msgs []db.NewMessage
	for i := 0; i < n; i++ {
		text := fmt.Sprintf("message %d", i)
		texts = append(texts, text)
		msgs = append(msgs, db.NewMessage{SalonID: gen.ID, UserID: alice.UserID, Cid: fmt.Sprint(i), Pseudo: "alice", Text: text, Portions: 1})
	}
	if _, err := d.InsertMessages(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	d.Close()
	return e, texts
}

// exportTexts runs `librecord export` and returns the texts, in order.
func (e *adminEnv) exportTexts() []string {
	e.t.Helper()
	out := e.mustRun("", false, "export", "--salon", "general")
	var texts []string
	for _, line := range strings.Split(out, "\n") {
		if text, ok := strings.CutPrefix(line, "MESSAGE : "); ok {
			texts = append(texts, strings.TrimSuffix(text, " ;"))
		}
	}
	return texts
}

// wrappedKey reads the wrapped data key straight from the file.
func wrappedKey(t *testing.T, path string) []byte {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var v []byte
	if err := c.QueryRow(`SELECT value FROM meta WHERE key = 'wrapped_data_key'`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// onDisk is the database file and its WAL, as raw bytes.
func onDisk(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// usePass makes the env's passphrase file hold pass.
func (e *adminEnv) usePass(pass string) {
	e.t.Helper()
	if err := os.WriteFile(e.passFile, []byte(pass+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *adminEnv) newPassFile() string {
	e.t.Helper()
	f := filepath.Join(e.dir, "new.txt")
	if err := os.WriteFile(f, []byte(rotatedPass+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return f
}

// TestPassphraseRotateKey: `passphrase --rotate-key` (flags before or
// after) re-encrypts everything, keeps logins and identity, and leaves
// the old wrapped key nowhere on disk.
func TestPassphraseRotateKey(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e, texts := messagesEnv(t, 25)
		fp := e.mustRun("", false, "fingerprint")
		old := wrappedKey(t, e.db)
		out := e.mustRun("", after, "passphrase", "--rotate-key", "--batch", "10", "--new-passphrase-file", e.newPassFile())
		if !strings.Contains(out, fmt.Sprintf("%d messages re-encrypted", len(texts))) {
			t.Fatalf("output: %s", out)
		}
		if bytes.Contains(onDisk(t, e.db), old) {
			t.Fatal("the old wrapped key is still on disk")
		}
		if _, _, err := e.run("", false, "user", "list"); !errors.Is(err, db.ErrWrongPassphrase) {
			t.Fatalf("old passphrase: %v", err)
		}
		e.usePass(rotatedPass)
		if got := e.exportTexts(); strings.Join(got, "|") != strings.Join(texts, "|") {
			t.Fatalf("export after rotation: %q", got)
		}
		if got := e.mustRun("", false, "fingerprint"); got != fp {
			t.Fatal("identity changed")
		}
		d := e.open2(rotatedPass)
		if _, err := d.Authenticate(context.Background(), "alice's password"); err != nil {
			t.Fatalf("alice's password after rotation: %v", err)
		}
	})
}

// open2 opens the env's database with pass.
func (e *adminEnv) open2(pass string) *db.DB {
	e.t.Helper()
	d, err := db.Open(context.Background(), e.db, []byte(pass))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

// TestRotateKeyRefusedWhileServing: with serve running (another process)
// the rotation is refused, with a message that says to stop serve, and
// nothing changes; once serve is stopped it runs.
func TestRotateKeyRefusedWhileServing(t *testing.T) {
	e, texts := messagesEnv(t, 5)
	old := wrappedKey(t, e.db)
	serve := e.startProcess("msg=serving", "serve", "--listen", "127.0.0.1:0")
	_, _, err := e.run("", false, "passphrase", "--rotate-key", "--new-passphrase-file", e.newPassFile())
	if !errors.Is(err, db.ErrInUse) || !strings.Contains(Hint(err), "stop `librecord serve`") {
		t.Fatalf("rotate while serving: %v (hint %q)", err, Hint(err))
	}
	if !bytes.Equal(wrappedKey(t, e.db), old) {
		t.Fatal("a refused rotation changed the key")
	}
	serve.stop(t, syscall.SIGTERM)
	e.mustRun("", false, "passphrase", "--rotate-key", "--new-passphrase-file", e.newPassFile())
	e.usePass(rotatedPass)
	if got := e.exportTexts(); len(got) != len(texts) {
		t.Fatalf("export: %q", got)
	}
}

// TestRotateKeyKilled: a rotation killed (SIGKILL) in the middle leaves a
// database that works with the old passphrase (every command warns), that
// serve cannot open while a rotation runs, and that the same command
// finishes.
func TestRotateKeyKilled(t *testing.T) {
	e, texts := messagesEnv(t, 120)
	newFile := e.newPassFile()
	p := e.startProcess("paused after 3 batches", "passphrase", "--rotate-key", "--batch", "10", "--test-pause-after", "3", "--new-passphrase-file", newFile)
	// While it runs, nothing else opens the database.
	_, _, err := e.run("", false, "user", "list")
	if !errors.Is(err, db.ErrRotating) || !strings.Contains(Hint(err), "wait") {
		t.Fatalf("open during a rotation: %v (hint %q)", err, Hint(err))
	}
	p.stop(t, syscall.SIGKILL)

	_, errOut, err := e.run("", false, "user", "list")
	if err != nil || !strings.Contains(errOut, "interrupted") || !strings.Contains(errOut, "passphrase --rotate-key") {
		t.Fatalf("user list after the kill: %v, stderr %q", err, errOut)
	}
	if got := e.exportTexts(); len(got) != len(texts) {
		t.Fatalf("export of a half-rotated database: %d messages", len(got))
	}
	_, _, err = e.run("", false, "passphrase", "--new-passphrase-file", newFile)
	if !errors.Is(err, db.ErrRotationUnfinished) || !strings.Contains(Hint(err), "--rotate-key") {
		t.Fatalf("plain passphrase on an unfinished rotation: %v", err)
	}

	_, errOut, err = e.run("", true, "passphrase", "--rotate-key", "--batch", "10", "--new-passphrase-file", newFile)
	if err != nil || !strings.Contains(errOut, "resuming") {
		t.Fatalf("second run: %v\n%s", err, errOut)
	}
	e.usePass(rotatedPass)
	_, errOut, _ = e.run("", false, "user", "list")
	if strings.Contains(errOut, "interrupted") {
		t.Fatal("still unfinished after the second run")
	}
	if got := e.exportTexts(); strings.Join(got, "|") != strings.Join(texts, "|") {
		t.Fatalf("export after the second run: %q", got)
	}
}

// TestRotateKeyOnMainFixture: the commands on a database made by main's
// binary before schema 2 (db/testdata/README.md): export reads it as it
// was, passphrase --rotate-key rotates it, and the users' old passwords
// still log them in.
func TestRotateKeyOnMainFixture(t *testing.T) {
	e := newAdminEnv(t)
	b, err := os.ReadFile(filepath.Join("..", "db", "testdata", "main-4e23b48.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.usePass("fixture passphrase two")
	want := []string{"bonjour from alice", "second line, with accents: élève ☕", "salut alice"}
	if got := e.exportTexts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("export of the fixture: %q", got)
	}
	out := e.mustRun("", true, "passphrase", "--rotate-key", "--batch", "2", "--new-passphrase-file", e.newPassFile())
	if !strings.Contains(out, "7 messages re-encrypted") {
		t.Fatalf("output: %s", out)
	}
	e.usePass(rotatedPass)
	if got := e.exportTexts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("export after rotation: %q", got)
	}
	d := e.open2(rotatedPass)
	for pw, pseudo := range map[string]string{"alice old password": "alice", "bob's old password": "bob"} {
		if c, err := d.Authenticate(context.Background(), pw); err != nil || c.Pseudo != pseudo {
			t.Fatalf("login of %s: %+v %v", pseudo, c, err)
		}
	}
}
