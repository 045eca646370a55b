package hostile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const hostPassphrase = "hostile-test-host-passphrase"

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "librecord-hostile-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "librecord")
	root, err := filepath.Abs("../../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", binPath, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func password(pseudo string) string { return pseudo + "-hostile-pass-0123" }

// admin runs a librecord admin command on db.
func admin(t testing.TB, db, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"--db", db}, args...)...)
	cmd.Env = append(os.Environ(), "LIBRECORD_PASSPHRASE="+hostPassphrase)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("librecord %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newDB creates a database with users (each in general); cheapKDF uses
// the test-only cheap Argon2id, otherwise the production cost.
func newDB(t testing.TB, cheapKDF bool, users ...string) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "hostile.db")
	init := []string{"init"}
	if cheapKDF {
		init = []string{"--insecure-test-kdf", "init"}
	}
	admin(t, db, "", init...)
	for _, u := range users {
		admin(t, db, password(u)+"\n", "user", "add", u, "--salon", "general", "--password-stdin")
	}
	return db
}

// serveProc is a running `librecord serve`.
type serveProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	stderr *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts serve on db with flags on a fresh loopback port.
func serve(t testing.TB, db string, flags ...string) *serveProc {
	t.Helper()
	args := append([]string{"--db", db, "serve", "--listen", "127.0.0.1:0"}, flags...)
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "LIBRECORD_PASSPHRASE="+hostPassphrase)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{t: t, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "librecord: serving "); ok {
				addr <- rest[strings.LastIndex(rest, " ")+1:]
			}
		}
	}()
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatalf("serve exited: %s", p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve printed no address: %s", p.stderr.String())
	}
	return p
}

// stop interrupts serve and waits for it to stop gracefully.
func (p *serveProc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("serve did not stop on SIGINT")
	}
}

// memKiB reads a memory figure (VmRSS, VmHWM) of the server process
// from /proc, in KiB.
func (p *serveProc) memKiB(field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
}
