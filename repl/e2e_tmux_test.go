package repl

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"librecord/net/testkit"
)

// The end-to-end test of `librecord chat`: the real binary, a real server
// over a real SQLite file, two people typing in real terminals (tmux).
//
// LIBRECORD_E2E_BIN may name an already built binary (else it is built);
// LIBRECORD_E2E_DUMP may name a directory to write both terminals to.

const (
	alicePW    = "alice-password-123"
	newAlicePW = "alice-new-password-789"
	bobPW      = "bob-password-4567"
)

type e2e struct {
	t      *testing.T
	bin    string
	dir    string
	db     string
	pass   string
	sock   string
	srvCmd *exec.Cmd
	srvOut *testkit.Buffer
	srvAdr string
	proxy  *proxy
	fp     string
}

func TestChatInTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is missing; .ci/run installs it")
		}
		t.Skip("tmux is not installed (apt-get install -y tmux)")
	}
	e := &e2e{t: t, dir: t.TempDir()}
	e.bin = os.Getenv("LIBRECORD_E2E_BIN")
	if e.bin == "" {
		e.bin = filepath.Join(e.dir, "librecord")
		// The flags of .ci/run's static build, so that CI reuses its cache.
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", e.bin, ".")
		build.Dir = ".."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build librecord: %v\n%s", err, out)
		}
	}
	e.db = filepath.Join(e.dir, "librecord.db")
	e.pass = e.writeFile("passphrase", "the host passphrase\n")
	e.sock = fmt.Sprintf("librecord-e2e-%d", os.Getpid())
	t.Cleanup(func() { exec.Command("tmux", "-L", e.sock, "kill-server").Run() })

	e.run("", "--insecure-test-kdf", "init")
	e.run(alicePW+"\n", "user", "add", "alice", "--salon", "general", "--password-stdin")
	e.run(bobPW+"\n", "user", "add", "bob", "--salon", "general", "--password-stdin")
	e.fp = strings.TrimSpace(e.run("", "fingerprint"))
	if !strings.HasPrefix(e.fp, "SHA256:") {
		t.Fatalf("fingerprint %q", e.fp)
	}
	e.startServer("127.0.0.1:0")
	e.proxy = newProxy(t, e.srvAdr)
	bobPWFile := e.writeFile("bob.pw", bobPW+"\n")

	// Scripted use: a pipe in, the lines out. Sixteen lines make history.
	var seed strings.Builder
	for i := 1; i <= 16; i++ {
		fmt.Fprintf(&seed, "seed %02d\n", i)
	}
	script := e.cmd(seed.String(), "chat", "--server", e.proxy.addr(), "--salon", "general",
		"--password-file", bobPWFile, "--trust", e.fp)
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("scripted chat: %v\n%s", err, out)
	}
	t.Run("ScriptedNeedsTrust", func(t *testing.T) {
		other := e.cmd("x\n", "chat", "--server", e.proxy.addr(), "--password-file", bobPWFile)
		other.Env = append(other.Env, "LIBRECORD_CONFIG_DIR="+filepath.Join(e.dir, "fresh-config"))
		out, err := other.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--trust "+e.fp) {
			t.Fatalf("want a clear error naming --trust, got %v:\n%s", err, out)
		}
	})

	// alice: asked to trust the server and for her password.
	timedOut := func() int { return strings.Count(e.srvOut.String(), "not logged in in time") }
	before := timedOut()
	e.startPane("alice", "chat", "--server", e.proxy.addr(), "--relogin-delay", "1s")
	e.waitPane("alice", "Trust this server and connect? (yes/no)")
	if !strings.Contains(e.pane("alice"), e.fp) {
		t.Fatalf("fingerprint not shown:\n%s", e.pane("alice"))
	}
	e.keys("alice", "yes", "Enter")
	e.waitPane("alice", "password for")
	// She types slowly: the server closes a connection not logged in
	// after its --login-timeout (e2eLoginTimeout here), and the client
	// logs in on a new one, at the first try and when asked again.
	testkit.WaitFor(t, "the server closing alice's first connection", func() bool { return timedOut() >= before+1 })
	e.keys("alice", "not-her-password", "Enter")
	e.waitPane("alice", "wrong password, try again")
	testkit.WaitFor(t, "the server closing alice's second connection", func() bool { return timedOut() >= before+2 })
	e.keys("alice", alicePW, "Enter")
	e.waitPane("alice", "your salons: general")
	e.waitPane("alice", "bob: seed 16")
	// The last 10 messages: seeds 08 to 16 and the scripted chat's
	// "bob disconnected".
	e.waitPane("alice", "* bob disconnected")
	if p := e.pane("alice"); strings.Contains(p, "seed 07") || !strings.Contains(p, "seed 08") {
		t.Fatalf("want the last 10 messages:\n%s", p)
	}

	// bob: password from a file, server pinned with --trust.
	e.startPane("bob", "chat", "--server", e.proxy.addr(), "--password-file", bobPWFile, "--trust", e.fp,
		"--relogin-delay", "1s")
	e.waitPane("bob", "opening general")
	e.waitPane("bob", "bob: seed 16")

	t.Run("Chat", func(t *testing.T) {
		e.keys("alice", "hello bob", "Enter")
		e.waitPane("bob", "alice: hello bob")
		e.waitPane("alice", "alice: hello bob")
		e.waitGone("alice", "(pending)")
	})

	t.Run("MentionHighlighted", func(t *testing.T) {
		// "hello bob" mentions bob: highlighted on bob's screen, not on
		// alice's, who wrote it.
		e.keys("bob", "ALICE, a word", "Enter")
		e.waitPane("alice", "bob: ALICE, a word")
		if l := e.paneLine("alice", "bob: ALICE, a word"); !reverseVideo.MatchString(l) {
			t.Errorf("mention not highlighted on alice's screen: %q", l)
		}
		if l := e.paneLine("bob", "alice: hello bob"); !reverseVideo.MatchString(l) {
			t.Errorf("mention not highlighted on bob's screen: %q", l)
		}
		if l := e.paneLine("alice", "alice: hello bob"); reverseVideo.MatchString(l) {
			t.Errorf("alice's own message highlighted on her screen: %q", l)
		}
		if l := e.paneLine("bob", "bob: ALICE, a word"); reverseVideo.MatchString(l) {
			t.Errorf("a message mentioning alice highlighted on bob's screen: %q", l)
		}
	})

	t.Run("BidiOverrideNeutralised", func(t *testing.T) {
		// The server takes bidi overrides and isolates in text (they are
		// not control characters); the client must not let them reorder
		// what the terminal shows.
		out, err := e.cmd("rtl \u202eevil\u2066 text\n", "chat", "--server", e.proxy.addr(), "--salon", "general",
			"--password-file", bobPWFile, "--trust", e.fp).CombinedOutput()
		if err != nil {
			t.Fatalf("scripted chat: %v\n%s", err, out)
		}
		e.waitPane("alice", "bob: rtl ")
		line := ""
		for _, l := range strings.Split(e.pane("alice"), "\n") {
			if strings.Contains(l, "bob: rtl ") {
				line = l
			}
		}
		if strings.ContainsAny(line, "\u202e\u2066") || !strings.Contains(line, "evil") || !strings.Contains(line, " text") {
			t.Fatalf("line shown as %q", line)
		}
	})

	t.Run("HalfTypedLineSurvives", func(t *testing.T) {
		e.keys("bob", "half typed")
		e.waitLastLine("bob", "general> half typed")
		e.keys("alice", "interrupting you", "Enter")
		e.waitPane("bob", "alice: interrupting you")
		e.waitLastLine("bob", "general> half typed")
		e.keys("bob", " line", "Enter")
		e.waitPane("alice", "bob: half typed line")
	})

	t.Run("CtrlCClearsLine", func(t *testing.T) {
		e.keys("bob", "never sent")
		e.keys("bob", "C-c")
		e.waitLastLine("bob", "general>")
		e.keys("bob", "after ctrl-c", "Enter")
		e.waitPane("alice", "bob: after ctrl-c")
		if strings.Contains(e.pane("alice"), "never sent") {
			t.Fatal("a cleared line was sent")
		}
	})

	t.Run("History", func(t *testing.T) {
		e.keys("bob", "/history 4", "Enter")
		e.waitPane("bob", "4 earlier message(s) in general:")
		e.waitPane("bob", "bob: seed 04")
		if strings.Contains(e.pane("bob"), "seed 03") {
			t.Fatalf("/history 4 went too far:\n%s", e.pane("bob"))
		}
		e.keys("bob", "/history", "Enter")
		e.waitPane("bob", "3 earlier message(s) in general:")
		e.waitPane("bob", "that is the beginning of general")
		if !strings.Contains(e.pane("bob"), "bob: seed 01") {
			t.Fatalf("history did not reach the first message:\n%s", e.pane("bob"))
		}
	})

	t.Run("CommandsAndCompletion", func(t *testing.T) {
		e.keys("bob", "/wh", "Tab", "Enter")
		e.waitPane("bob", "connected in general: alice, bob")
		e.keys("bob", "/oops", "Enter")
		e.waitPane("bob", "unknown command /oops; commands: /join /salons /who /history /passwd /help /quit")
		e.keys("bob", "//slash", "Enter")
		e.waitPane("alice", "bob: /slash")
		e.keys("bob", `two\`, "Enter", "lines", "Enter")
		e.waitPane("alice", "bob: two")
		e.waitPane("alice", "           lines")
	})

	t.Run("PasteSeveralLines", func(t *testing.T) {
		paste := "pasted 1\npasted 2\npasted 3\npasted 4\npasted 5\n"
		if out, err := exec.Command("tmux", "-L", e.sock, "set-buffer", paste).CombinedOutput(); err != nil {
			t.Fatalf("set-buffer: %v %s", err, out)
		}
		if out, err := exec.Command("tmux", "-L", e.sock, "paste-buffer", "-t", "bob").CombinedOutput(); err != nil {
			t.Fatalf("paste-buffer: %v %s", err, out)
		}
		e.waitPane("alice", "bob: pasted 5")
		e.assertOnceInOrder("alice", "bob: pasted 1", "bob: pasted 2", "bob: pasted 3", "bob: pasted 4", "bob: pasted 5")
	})

	// bob changes his password: asked without echo, the new one shown
	// once, his password file rewritten when he says yes; the logins again
	// of the next subtests use it.
	var bobNewPW string
	t.Run("Passwd", func(t *testing.T) {
		e.keys("bob", "/passwd", "Enter")
		e.waitLastLine("bob", "current password:")
		e.keys("bob", bobPW, "Enter")
		e.waitPane("bob", "Store it now")
		lines := strings.Split(e.pane("bob"), "\n")
		for i, l := range lines {
			if strings.Contains(l, "Your new password is:") {
				for _, next := range lines[i+1:] {
					if next = strings.TrimSpace(next); next != "" {
						bobNewPW = next
						break
					}
				}
			}
		}
		if len(bobNewPW) < 12 || bobNewPW == bobPW {
			t.Fatalf("new password %q:\n%s", bobNewPW, e.pane("bob"))
		}
		e.waitPane("bob", "Rewrite "+bobPWFile+" with the new password? (yes/no)")
		e.keys("bob", "yes", "Enter")
		e.waitPane("bob", bobPWFile+" now holds the new password")
		e.waitLastLine("bob", "general>")
		if p := e.pane("bob"); strings.Count(p, bobNewPW) != 1 || strings.Contains(p, bobPW) {
			t.Fatalf("want the new password shown once and the old one never:\n%s", p)
		}
		data, err := os.ReadFile(bobPWFile)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != bobNewPW+"\n" {
			t.Fatalf("password file holds %q", data)
		}
		if fi, err := os.Stat(bobPWFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("password file: %v %v", fi.Mode(), err)
		}
		// The old password is refused, the new one (from the file) works.
		old := e.writeFile("bob-old.pw", bobPW+"\n")
		out, err := e.cmd("x\n", "chat", "--server", e.proxy.addr(), "--password-file", old, "--trust", e.fp).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "was refused") {
			t.Fatalf("the old password: %v\n%s", err, out)
		}
		out, err = e.cmd("with the new password\n", "chat", "--server", e.proxy.addr(), "--password-file", bobPWFile,
			"--trust", e.fp).CombinedOutput()
		if err != nil {
			t.Fatalf("the new password: %v\n%s", err, out)
		}
		e.waitPane("alice", "bob: with the new password")
		// bob's chat goes on.
		e.keys("bob", "still here", "Enter")
		e.waitPane("alice", "bob: still here")
		if l := e.srvOut.String(); strings.Contains(l, bobNewPW) || strings.Contains(l, bobPW) {
			t.Fatalf("a password in the server's log:\n%s", l)
		}
	})

	t.Run("ResumeWithCountdown", func(t *testing.T) {
		e.proxy.setDown(true)
		e.waitPane("bob", "connection lost; reconnecting")
		first := e.countdown("bob")
		e.keys("bob", "typed during the cut 1", "Enter")
		e.keys("bob", "typed during the cut 2", "Enter")
		e.waitPane("bob", "typed during the cut 2 (pending)")
		e.waitFor("bob", "the countdown to go down", func(p string) bool {
			n, ok := lastCountdown(p)
			return ok && n < first
		})
		e.proxy.setDown(false)
		e.waitPane("bob", "reconnected")
		e.waitPane("alice", "bob: typed during the cut 2")
		e.assertOnceInOrder("alice", "bob: typed during the cut 1", "bob: typed during the cut 2")
		if strings.Contains(e.pane("bob"), "logged in again") {
			t.Fatal("bob logged in again instead of resuming")
		}
	})

	t.Run("ServerRestartReloginFromFile", func(t *testing.T) {
		lost := e.count("bob", "-!- connection lost; reconnecting")
		prompts := e.count("alice", "password for")
		e.stopServer()
		e.waitMore("bob", "-!- connection lost; reconnecting", lost)
		e.keys("bob", "typed while the server is down 1", "Enter")
		e.keys("bob", "typed while the server is down 2", "Enter")
		e.waitPane("bob", "typed while the server is down 2 (pending)")
		e.startServer(e.srvAdr)
		e.waitPane("bob", "logged in again as bob")
		// alice has no password file: she is asked after pressing Enter.
		e.waitPane("alice", "press Enter to log in again")
		e.keys("alice", "Enter")
		e.waitMore("alice", "password for", prompts)
		e.keys("alice", alicePW, "Enter")
		e.waitPane("alice", "logged in again as alice")
		e.waitPane("alice", "bob: typed while the server is down 2")
		e.assertOnceInOrder("alice", "bob: typed while the server is down 1", "bob: typed while the server is down 2")
	})

	t.Run("JoinThenRevoke", func(t *testing.T) {
		e.run("", "salon", "add", "dev")
		e.run("", "salon", "grant", "dev", "bob")
		e.keys("bob", "/join dev", "Enter")
		e.waitPane("bob", "opening dev")
		// The prompt names the new salon at once, before anything is typed.
		e.waitLastLine("bob", "dev>")
		e.run("", "salon", "revoke", "dev", "bob")
		e.waitPane("bob", "the host removed your access to salon dev; back to general")
		e.keys("bob", "/join dev", "Enter")
		e.waitPane("bob", "cannot open dev: no such salon, or you may not open it")
		e.waitLastLine("bob", "general>")
		e.keys("bob", "still in general", "Enter")
		e.waitPane("alice", "bob: still in general")
	})

	t.Run("PasswordResetAsksPassword", func(t *testing.T) {
		prompts := e.count("alice", "password for")
		e.run(newAlicePW+"\n", "user", "reset-password", "alice", "--password-stdin")
		e.waitPane("alice", "your password was changed or your account removed by the host: log in again")
		e.waitPane("alice", "press Enter to log in again")
		// alice types her new password at the chat prompt, as the
		// newcomer did: it must go nowhere.
		e.keys("alice", newAlicePW, "Enter")
		e.waitPane("alice", "that line was neither sent nor kept")
		e.waitMore("alice", "password for", prompts)
		e.keys("alice", newAlicePW, "Enter")
		e.waitPane("alice", "logged in again as alice")
		e.keys("alice", "back after the reset", "Enter")
		e.waitPane("bob", "alice: back after the reset")
		if strings.Contains(e.pane("alice"), newAlicePW) || strings.Contains(e.pane("bob"), newAlicePW) {
			t.Fatalf("the new password is on a screen:\n%s\n---\n%s", e.pane("alice"), e.pane("bob"))
		}
	})

	// The host restores a backup while both chats stay open: ids restart
	// from the backup's, below what the clients have seen.
	t.Run("RestoreBackupWhileOpen", func(t *testing.T) {
		bak := filepath.Join(e.dir, "backup.db")
		e.run("", "backup", bak)
		e.keys("bob", "after the backup, lost with the restore", "Enter")
		e.waitPane("alice", "bob: after the backup, lost with the restore")
		e.waitGone("bob", "(pending)")
		enters := e.count("alice", "press Enter to log in again")
		prompts := e.count("alice", "password for")
		e.stopServer()
		os.Remove(e.db + "-wal")
		os.Remove(e.db + "-shm")
		data, err := os.ReadFile(bak)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.db, data, 0o600); err != nil {
			t.Fatal(err)
		}
		e.startServer(e.srvAdr)
		e.waitPane("bob", "the server's history of general went back")
		e.keys("bob", "bob after the restore", "Enter")
		e.waitMore("alice", "press Enter to log in again", enters)
		e.keys("alice", "Enter")
		e.waitMore("alice", "password for", prompts)
		e.keys("alice", newAlicePW, "Enter")
		e.waitPane("alice", "the server's history of general went back")
		e.waitPane("alice", "bob: bob after the restore")
		e.waitGone("bob", "(pending)")
		e.keys("alice", "alice after the restore", "Enter")
		e.waitPane("bob", "alice: alice after the restore")
		e.waitGone("alice", "(pending)")
	})

	if dump := os.Getenv("LIBRECORD_E2E_DUMP"); dump != "" {
		for _, name := range []string{"alice", "bob"} {
			os.WriteFile(filepath.Join(dump, name+".txt"), []byte(e.pane(name)), 0o644)
		}
	}

	t.Run("QuitSaysBye", func(t *testing.T) {
		gone := e.count("alice", "* bob disconnected")
		e.keys("bob", "/quit", "Enter")
		e.waitMore("alice", "* bob disconnected", gone)
		e.keys("alice", "C-d")
		for _, name := range []string{"bob", "alice"} {
			e.waitFor(name, "a clean exit", func(p string) bool { return strings.Contains(p, "[exited] 0") })
		}
	})

	t.Run("InputHistoryWithoutPasswords", func(t *testing.T) {
		hist, err := os.ReadFile(filepath.Join(e.dir, "config-alice", "history"))
		if err != nil {
			t.Fatal(err)
		}
		h := string(hist)
		if !strings.Contains(h, "hello bob\n") || strings.Contains(h, alicePW) || strings.Contains(h, "not-her-password") ||
			strings.Contains(h, newAlicePW) {
			t.Errorf("history file:\n%s", h)
		}
		bobHist, err := os.ReadFile(filepath.Join(e.dir, "config-bob", "history"))
		if err != nil {
			t.Fatal(err)
		}
		if b := string(bobHist); !strings.Contains(b, "/passwd\n") || strings.Contains(b, bobPW) ||
			(bobNewPW != "" && strings.Contains(b, bobNewPW)) {
			t.Errorf("bob's history file:\n%s", b)
		}
		for _, line := range strings.Split(h, "\n") {
			if line == "yes" {
				t.Errorf("the answer to the trust question is in the history:\n%s", h)
			}
		}
	})

	// What is on disk: every line exactly once, in order.
	export := e.run("", "export", "--salon", "general")
	var got []string
	for _, want := range []string{"typed during the cut 1", "typed during the cut 2",
		"typed while the server is down 1", "typed while the server is down 2"} {
		if n := strings.Count(export, "MESSAGE : "+want+" ;"); n != 1 {
			t.Errorf("%q stored %d times", want, n)
		}
		got = append(got, want)
	}
	last := -1
	for _, w := range got {
		i := strings.Index(export, "MESSAGE : "+w)
		if i < last {
			t.Errorf("%q stored out of order", w)
		}
		last = i
	}
	if strings.Contains(export, "never sent") {
		t.Error("a line cleared with Ctrl-C was stored")
	}
	if strings.Contains(export, newAlicePW) {
		t.Error("a password was stored as a message")
	}
}

func (e *e2e) writeFile(name, content string) string {
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *e2e) env() []string {
	return append(os.Environ(), "LIBRECORD_CONFIG_DIR="+filepath.Join(e.dir, "config"), "LIBRECORD_PASSWORD=", "LIBRECORD_SERVER=")
}

func (e *e2e) cmd(stdin string, args ...string) *exec.Cmd {
	c := exec.Command(e.bin, append([]string{"--db", e.db, "--passphrase-file", e.pass}, args...)...)
	c.Env = e.env()
	c.Stdin = strings.NewReader(stdin)
	return c
}

// run runs the binary and returns its stdout, failing the test on error.
func (e *e2e) run(stdin string, args ...string) string {
	e.t.Helper()
	c := e.cmd(stdin, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		e.t.Fatalf("librecord %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// e2eLoginTimeout is the server's --login-timeout: short, so that a slow
// typist outlasts it cheaply.
const e2eLoginTimeout = 2 * time.Second

var servingRE = regexp.MustCompile(`serving .* on (\S+)`)

// startServer starts `librecord serve` on addr and waits until it listens.
func (e *e2e) startServer(addr string) {
	e.t.Helper()
	c := e.cmd("", "serve", "--listen", addr, "--session-timeout", "20s", "--poll", "1s",
		"--login-timeout", e2eLoginTimeout.String())
	e.srvOut = &testkit.Buffer{}
	c.Stdout, c.Stderr = e.srvOut, e.srvOut
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.srvCmd = c
	e.t.Cleanup(func() { e.stopServer() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(e.srvOut.String()); m != nil {
			e.srvAdr = m[1]
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("server did not start:\n%s", e.srvOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *e2e) stopServer() {
	if e.srvCmd == nil {
		return
	}
	e.srvCmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { e.srvCmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		e.srvCmd.Process.Kill()
		<-done
	}
	e.srvCmd = nil
}

// startPane runs the binary in a new tmux session of its own.
func (e *e2e) startPane(name string, args ...string) {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("env TERM=xterm LIBRECORD_CONFIG_DIR=" + filepath.Join(e.dir, "config-"+name))
	b.WriteString(" LIBRECORD_PASSWORD= LIBRECORD_SERVER= " + e.bin)
	for _, a := range args {
		b.WriteString(" " + strconv.Quote(a))
	}
	// Keep the pane after the program ends, so a crash can be read.
	b.WriteString("; echo '[exited]' $?; sleep 600")
	c := exec.Command("tmux", "-L", e.sock, "new-session", "-d", "-s", name, "-x", "110", "-y", "40", b.String())
	if out, err := c.CombinedOutput(); err != nil {
		e.t.Fatalf("tmux: %v %s", err, out)
	}
	exec.Command("tmux", "-L", e.sock, "set-option", "-t", name, "history-limit", "5000").Run()
}

func (e *e2e) keys(name string, keys ...string) {
	e.t.Helper()
	for _, k := range keys {
		args := []string{"-L", e.sock, "send-keys", "-t", name}
		switch k {
		case "Enter", "Tab", "C-c", "C-d":
			args = append(args, k)
		default:
			args = append(args, "-l", k)
		}
		if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
			e.t.Fatalf("send-keys: %v %s", err, out)
		}
	}
}

// pane returns the pane's text, scrollback included.
func (e *e2e) pane(name string) string {
	out, _ := exec.Command("tmux", "-L", e.sock, "capture-pane", "-p", "-J", "-t", name, "-S", "-5000").Output()
	return string(out)
}

// reverseVideo matches an SGR sequence that turns reverse video on, as
// capture-pane -e writes the attributes of a highlighted line.
var reverseVideo = regexp.MustCompile(`\x1b\[([0-9;]*;)?7(;[0-9;]*)?m`)

// paneLine returns the last line of the pane holding text, with its
// escape sequences (capture-pane -e).
func (e *e2e) paneLine(name, text string) string {
	out, _ := exec.Command("tmux", "-L", e.sock, "capture-pane", "-p", "-e", "-J", "-t", name, "-S", "-5000").Output()
	line := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, text) {
			line = l
		}
	}
	return line
}

// visible returns the pane's visible rows.
func (e *e2e) visible(name string) []string {
	out, _ := exec.Command("tmux", "-L", e.sock, "capture-pane", "-p", "-t", name).Output()
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

func (e *e2e) waitFor(name, what string, ok func(pane string) bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := e.pane(name)
		if ok(p) {
			return
		}
		if (strings.Contains(p, "[exited]") && what != "a clean exit") || time.Now().After(deadline) {
			e.t.Fatalf("waiting for %s in %s's terminal:\n%s\n--- server:\n%s", what, name, p, e.srvOut.String())
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func (e *e2e) waitPane(name, text string) {
	e.t.Helper()
	e.waitFor(name, strconv.Quote(text), func(p string) bool { return strings.Contains(p, text) })
}

// count says how many times text is in the pane.
func (e *e2e) count(name, text string) int { return strings.Count(e.pane(name), text) }

// waitMore waits until text is in the pane more than before times.
func (e *e2e) waitMore(name, text string, before int) {
	e.t.Helper()
	e.waitFor(name, fmt.Sprintf("%q more than %d times", text, before), func(p string) bool {
		return strings.Count(p, text) > before
	})
}

func (e *e2e) waitGone(name, text string) {
	e.t.Helper()
	e.waitFor(name, "no "+strconv.Quote(text), func(p string) bool { return !strings.Contains(p, text) })
}

// waitLastLine waits until the last non-empty visible row is line.
func (e *e2e) waitLastLine(name, line string) {
	e.t.Helper()
	e.waitFor(name, "last line "+strconv.Quote(line), func(string) bool {
		rows := e.visible(name)
		for i := len(rows) - 1; i >= 0; i-- {
			if strings.TrimSpace(rows[i]) != "" {
				return strings.TrimRight(rows[i], " ") == line
			}
		}
		return false
	})
}

var countdownRE = regexp.MustCompile(`reconnecting, (\d+)s left`)

func lastCountdown(p string) (int, bool) {
	m := countdownRE.FindAllStringSubmatch(p, -1)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[len(m)-1][1])
	return n, err == nil
}

func (e *e2e) countdown(name string) int {
	e.t.Helper()
	n, ok := lastCountdown(e.pane(name))
	if !ok {
		e.t.Fatalf("no countdown in:\n%s", e.pane(name))
	}
	return n
}

func (e *e2e) assertOnceInOrder(name string, lines ...string) {
	e.t.Helper()
	p := e.pane(name)
	last := -1
	for _, l := range lines {
		if n := strings.Count(p, l+"\n"); n != 1 {
			e.t.Errorf("%q appears %d times in %s's terminal:\n%s", l, n, name, p)
		}
		i := strings.Index(p, l)
		if i < last {
			e.t.Errorf("%q out of order in %s's terminal", l, name)
		}
		last = i
	}
}

// proxy forwards TCP to the server; setDown(true) cuts every connection
// and refuses new ones (they are accepted and closed at once), like a
// network that went away.
type proxy struct {
	t      *testing.T
	ln     stdnet.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[stdnet.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[stdnet.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[stdnet.Conn]bool{}
	}
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *proxy) serve(c stdnet.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	up, err := (&stdnet.Dialer{}).DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { io.Copy(up, bufio.NewReader(c)); up.Close(); c.Close() }()
	io.Copy(c, up)
	c.Close()
	up.Close()
}
