// Package conformance is a black-box client of PROTOCOL.md, written from that
// document alone, run against the real `librecord serve` binary over TCP,
// or over WebSocket (section 1.1) when LIBRECORD_CONFORMANCE_TRANSPORT=ws
// (TestOverWebSocket runs a representative subset that way).
package conformance

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"librecord/net/testkit"
)

const passphrase = "conformance-host-passphrase"

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "librecord-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "librecord")
	root, err := moduleRoot()
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

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		p := strings.TrimSpace(string(out))
		if p != "" && p != os.DevNull {
			return filepath.Dir(p), nil
		}
	}
	return filepath.Abs("../..")
}

// user is a pseudo with its password and salons.
type user struct {
	pseudo   string
	password string
	salons   []string
}

// serverConfig describes one fresh server: its users, extra salons and
// `serve` flags.
type serverConfig struct {
	users  []user
	salons []string // created with `salon add` before users are added
	flags  []string // extra flags for serve
	// defaultLoginLimit keeps serve's default login limit (otherwise
	// --login-limit 0 is added so tests may fail logins freely).
	defaultLoginLimit bool
}

type server struct {
	t           *testing.T
	db          string
	addr        string
	webURL      string // http://host:port of --web, over WebSocket
	fingerprint string
	cmd         *exec.Cmd
	done        chan struct{}
	users       map[string]user
	maxPortions int
	stderr      *testkit.Buffer
	flags       []string
}

func pw(pseudo string) string { return pseudo + "-pass-word-0123" }

// defaultUsers: alice (general, dev), bob (general), carol (dev).
func defaultUsers() []user {
	return []user{
		{"alice", pw("alice"), []string{"general", "dev"}},
		{"bob", pw("bob"), []string{"general"}},
		{"carol", pw("carol"), []string{"dev"}},
	}
}

// admin runs a librecord admin command against db.
func admin(t *testing.T, db string, stdin string, args ...string) string {
	t.Helper()
	full := append([]string{"--db", db}, args...)
	cmd := exec.Command(binPath, full...)
	cmd.Env = append(os.Environ(), "LIBRECORD_PASSPHRASE="+passphrase)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("librecord %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

var (
	reServing = regexp.MustCompile(`serving .* on (\S+)\s*$`)
	reFP      = regexp.MustCompile(`(SHA256:[A-Za-z0-9+/]+)`)
	reWeb     = regexp.MustCompile(`web page on (http://[^/\s]+)/`)
)

// newServer creates a database, users and salons, and starts serve.
func newServer(t *testing.T, cfg serverConfig) *server {
	t.Helper()
	if cfg.users == nil {
		cfg.users = defaultUsers()
		if cfg.salons == nil {
			cfg.salons = []string{"dev"}
		}
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "test.db")
	admin(t, db, "", "--insecure-test-kdf", "init")
	for _, s := range cfg.salons {
		admin(t, db, "", "salon", "add", s)
	}
	s := &server{t: t, db: db, users: map[string]user{}, maxPortions: 1024}
	for _, u := range cfg.users {
		args := []string{"user", "add", u.pseudo, "--password-stdin"}
		for _, sn := range u.salons {
			args = append(args, "--salon", sn)
		}
		admin(t, db, u.password+"\n", args...)
		s.users[u.pseudo] = u
	}
	flags := cfg.flags
	hasLoginLimit := false
	for i, f := range flags {
		if f == "--login-limit" {
			hasLoginLimit = true
		}
		if f == "--max-portions" && i+1 < len(flags) {
			fmt.Sscan(flags[i+1], &s.maxPortions)
		}
	}
	if !hasLoginLimit && !cfg.defaultLoginLimit {
		flags = append(flags, "--login-limit", "0")
	}
	s.flags = flags
	s.start()
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	args := append([]string{"--db", s.db, "serve", "--listen", "127.0.0.1:0"}, s.flags...)
	if overWebSocket() {
		args = append(args, "--web", "127.0.0.1:0")
	}
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "LIBRECORD_PASSPHRASE="+passphrase)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stderr = &testkit.Buffer{}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	s.addr, s.fingerprint, s.webURL = "", "", ""
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.After(20 * time.Second)
	for s.addr == "" || s.fingerprint == "" || overWebSocket() && s.webURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited before printing its address and fingerprint; stderr:\n%s", s.stderr.String())
			}
			if m := reServing.FindStringSubmatch(l); m != nil {
				s.addr = m[1]
			}
			if m := reWeb.FindStringSubmatch(l); m != nil {
				s.webURL = m[1]
			}
			if strings.Contains(l, "fingerprint") {
				if m := reFP.FindStringSubmatch(l); m != nil {
					s.fingerprint = m[1]
				}
			}
		case <-deadline:
			t.Fatalf("serve did not print its address and fingerprint in time; stderr:\n%s", s.stderr.String())
		}
	}
	t.Cleanup(s.stop)
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// kill stops the server with SIGKILL (a crash) and waits for it.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

func (s *server) admin(stdin string, args ...string) string {
	s.t.Helper()
	return admin(s.t, s.db, stdin, args...)
}

func commandWithEnv(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LIBRECORD_PASSPHRASE="+passphrase)
	return cmd
}
