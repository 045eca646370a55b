package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"librecord/crypto"
	"librecord/db"
)

// ChildConfig says how to start a server for a run.
type ChildConfig struct {
	// Exe is the librecord binary (os.Executable()); Env its environment
	// (nil: this process's).
	Exe string
	Env []string
	// Users is how many users to create, each with its own password and
	// access to db.DefaultSalon.
	Users int
	// Extra are further flags for serve (e.g. --cpuprofile FILE).
	Extra []string
	// WebSocket also serves --web on a loopback port and makes the
	// Target dial WebSockets there instead of TCP (its Addr is then the
	// ws://HOST:PORT/ws endpoint).
	WebSocket bool
	// StartTimeout bounds the wait for the server to listen.
	StartTimeout time.Duration
}

// Child is a `librecord serve` started for a run on a temporary database.
type Child struct {
	Target
	// Args are serve's flags, Unthrottled the limits among them that were
	// switched off.
	Args        []string
	Unthrottled []string

	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // of Wait, once done is closed
	stderr *tailBuffer
}

// unthrottleFlag matches a flag line of `serve --help` whose usage says
// that 0 turns the limit off, e.g.
//
//	--send-rate value  sends per second per session (0: no limit) (default: 20)
var unthrottleFlag = regexp.MustCompile(`^\s*--([a-z0-9][a-z0-9-]*)\b.*\(0: (?:no limit|off)\)`)

// Unthrottle lists the flags of serve, as its --help describes them, that
// switch a limit off with 0: every limit that would throttle a benchmark
// (send rate, failed logins, connections, pending and per-source or
// per-user caps), whatever this binary's serve has. New limits follow the
// convention of saying "(0: no limit)" in their usage and are picked up
// without a change here.
func Unthrottle(ctx context.Context, exe string, env []string) ([]string, error) {
	cmd := exec.CommandContext(ctx, exe, "serve", "--help")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s serve --help: %w", exe, err)
	}
	var flags []string
	for line := range strings.Lines(string(out)) {
		if m := unthrottleFlag.FindStringSubmatch(line); m != nil {
			flags = append(flags, m[1])
		}
	}
	return flags, nil
}

// StartChild creates a temporary database with cfg.Users users (the
// near-free test KDF: their logins are not what is measured), starts
// `librecord serve` on it on a loopback port with every limit Unthrottle
// finds switched off, and waits until it listens. Stop removes it all.
func StartChild(ctx context.Context, cfg ChildConfig) (_ *Child, err error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	// The passphrase comes from a file: not from the environment.
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "LIBRECORD_PASSPHRASE=") })
	unthrottled, err := Unthrottle(ctx, cfg.Exe, env)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "librecord-bench-*")
	if err != nil {
		return nil, err
	}
	c := &Child{dir: dir, Unthrottled: unthrottled, done: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	path := filepath.Join(dir, "bench.db")
	pass := make([]byte, 24)
	rand.Read(pass)
	passphrase := []byte(hex.EncodeToString(pass))
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, passphrase, 0o600); err != nil {
		return nil, err
	}
	if c.Passwords, err = createUsers(ctx, path, passphrase, cfg.Users); err != nil {
		return nil, err
	}

	c.Args = []string{"--listen", "127.0.0.1:0"}
	if cfg.WebSocket {
		c.Args = append(c.Args, "--web", "127.0.0.1:0")
	}
	for _, f := range unthrottled {
		c.Args = append(c.Args, "--"+f, "0")
	}
	c.Args = append(c.Args, cfg.Extra...)
	args := append([]string{"--db", path, "--passphrase-file", passFile, "serve"}, c.Args...)
	c.cmd = exec.Command(cfg.Exe, args...)
	c.cmd.Env = env
	c.cmd.Stderr = c.stderr
	c.cmd.SysProcAttr = childAttr()
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", cfg.Exe, err)
	}
	c.PID = c.cmd.Process.Pid
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()

	// serve prints "librecord: serving PATH on ADDR" then "librecord:
	// identity fingerprint SHA256:...", then with --web "librecord: web
	// page on http://ADDR/".
	type started struct{ addr, fingerprint, web string }
	ready := make(chan started, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var st started
		for sc.Scan() {
			line := sc.Text()
			if i := strings.LastIndex(line, " on "); strings.HasPrefix(line, "librecord: serving ") && i > 0 {
				st.addr = line[i+len(" on "):]
			}
			if fp, ok := strings.CutPrefix(line, "librecord: identity fingerprint "); ok {
				st.fingerprint = fp
			}
			if u, ok := strings.CutPrefix(line, "librecord: web page on http://"); ok {
				st.web = "ws://" + strings.TrimSuffix(u, "/") + "/ws"
			}
			if st.fingerprint != "" && (!cfg.WebSocket || st.web != "") {
				ready <- st
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case st := <-ready:
		if st.addr == "" {
			return nil, errors.New("serve did not say where it listens")
		}
		c.Addr = st.addr
		c.CheckIdentity = CheckFingerprint(st.fingerprint)
		c.Transport = "tcp"
		if cfg.WebSocket {
			// Addr names the endpoint the clients use: not a TCP address,
			// so a client that ignored Dial would fail, not measure TCP.
			c.Transport, c.Addr = "ws", st.web
			c.Dial = DialWebSocket(st.web)
		}
	case <-c.done:
		return nil, fmt.Errorf("serve exited at start (%v): %s", c.err, c.stderr.tail(10))
	case <-timer.C:
		return nil, fmt.Errorf("serve did not start within %s: %s", cfg.StartTimeout, c.stderr.tail(10))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c, nil
}

// CheckFingerprint accepts only the server identity whose fingerprint
// (as serve prints it) is fp.
func CheckFingerprint(fp string) func(string, ed25519.PublicKey) error {
	return func(addr string, id ed25519.PublicKey) error {
		if seen := crypto.Fingerprint(id); seen != fp {
			return fmt.Errorf("server %s shows identity fingerprint %s, not %s: refusing to connect", addr, seen, fp)
		}
		return nil
	}
}

// createUsers creates the database and its users bench0000... with
// generated passwords, all in the default salon.
func createUsers(ctx context.Context, path string, passphrase []byte, n int) ([]string, error) {
	kdf := crypto.InsecureTestKDF()
	if err := db.Create(ctx, path, passphrase, db.CreateOptions{KDF: &kdf}); err != nil {
		return nil, err
	}
	d, err := db.Open(ctx, path, passphrase)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	passwords := make([]string, n)
	for i := range n {
		pw := crypto.GeneratePassword()
		if _, err := d.AddUser(ctx, fmt.Sprintf("bench%04d", i), pw, []string{db.DefaultSalon}); err != nil {
			return nil, fmt.Errorf("create bench user %d: %w", i, err)
		}
		passwords[i] = pw
	}
	return passwords, nil
}

// Stop ends the server (SIGTERM: a graceful shutdown, which also writes
// a CPU profile asked for; SIGKILL if it takes over 20 s) and removes the
// temporary directory with the database. It returns the server's error
// if it failed.
func (c *Child) Stop() error {
	var err error
	if c.cmd != nil && c.cmd.Process != nil {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(20 * time.Second):
				c.cmd.Process.Kill()
				<-c.done
				err = errors.New("serve did not stop within 20 s of SIGTERM: killed")
			}
		}
		if err == nil && c.err != nil {
			err = fmt.Errorf("serve: %v: %s", c.err, c.stderr.tail(10))
		}
	}
	if rerr := os.RemoveAll(c.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// Log returns the end of the server's log (stderr).
func (c *Child) Log(lines int) string { return c.stderr.tail(lines) }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) tail(lines int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := bytes.Split(bytes.TrimRight(t.b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}
