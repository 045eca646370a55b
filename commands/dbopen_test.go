package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

const testPassphrase = "correct horse"

// adminEnv runs librecord commands in-process on a database in a temp dir.
type adminEnv struct {
	t        testing.TB
	dir      string
	db       string
	passFile string
}

func newAdminEnv(t testing.TB) *adminEnv {
	t.Helper()
	t.Setenv(passphraseEnv, "") // only what a test gives counts
	dir := t.TempDir()
	e := &adminEnv{t: t, dir: dir, db: filepath.Join(dir, "librecord.db"), passFile: filepath.Join(dir, "pass.txt")}
	if err := os.WriteFile(e.passFile, []byte(testPassphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// newInitEnv is newAdminEnv with a database created by `librecord init`.
func newInitEnv(t testing.TB) *adminEnv {
	e := newAdminEnv(t)
	if _, _, err := e.run("", false, "init"); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs librecord with the global flags (--db, --passphrase-file,
// --insecure-test-kdf) before the command, or after it when globalsAfter.
func (e *adminEnv) run(stdin string, globalsAfter bool, args ...string) (string, string, error) {
	globals := []string{"--db", e.db, "--passphrase-file", e.passFile, "--insecure-test-kdf"}
	return e.runRaw(stdin, globals, globalsAfter, args...)
}

func (e *adminEnv) runRaw(stdin string, globals []string, globalsAfter bool, args ...string) (string, string, error) {
	e.t.Helper()
	app := NewApp()
	var out, errOut bytes.Buffer
	app.Reader = strings.NewReader(stdin)
	app.Writer = &out
	app.ErrWriter = &errOut
	full := []string{"librecord"}
	if globalsAfter {
		full = append(append(full, args...), globals...)
	} else {
		full = append(append(full, globals...), args...)
	}
	err := Run(context.Background(), app, full)
	return out.String(), errOut.String(), err
}

// mustRun runs and fails the test on error.
func (e *adminEnv) mustRun(stdin string, globalsAfter bool, args ...string) string {
	e.t.Helper()
	out, errOut, err := e.run(stdin, globalsAfter, args...)
	if err != nil {
		e.t.Fatalf("librecord %s: %v (hint: %s)\nstderr: %s", strings.Join(args, " "), err, Hint(err), errOut)
	}
	return out
}

// open opens the env's database directly.
func (e *adminEnv) open() *db.DB {
	e.t.Helper()
	d, err := db.Open(context.Background(), e.db, []byte(testPassphrase))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

// aliceInGeneral adds alice to general with `user add` (flags after the
// pseudo when after) and returns an open handle, the salon and her login.
func (e *adminEnv) aliceInGeneral(after bool) (*db.DB, db.Salon, db.Credential) {
	e.t.Helper()
	ctx := context.Background()
	e.mustRun("alice's password\n", after, "user", "add", "alice", "--salon", "general", "--password-stdin")
	d := e.open()
	gen, err := d.Salon(ctx, "general")
	if err != nil {
		e.t.Fatal(err)
	}
	alice, err := d.Authenticate(ctx, "alice's password")
	if err != nil {
		e.t.Fatal(err)
	}
	return d, gen, alice
}

// orders runs f for both places of the flags.
func orders(t *testing.T, f func(t *testing.T, after bool)) {
	t.Run("FlagsBefore", func(t *testing.T) { f(t, false) })
	t.Run("FlagsAfter", func(t *testing.T) { f(t, true) })
}

func TestNoDatabase(t *testing.T) {
	for _, args := range [][]string{
		{"user", "list"}, {"user", "add", "alice"}, {"salon", "add", "dev"}, {"export", "--salon", "general"},
		{"fingerprint"}, {"backup", "b.db"}, {"passphrase"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			e := newAdminEnv(t)
			_, _, err := e.run("", true, args...)
			if !errors.Is(err, db.ErrNoDatabase) || !strings.Contains(err.Error(), "no database at "+e.db) {
				t.Fatalf("err = %v", err)
			}
			if !strings.Contains(Hint(err), "librecord init") {
				t.Fatalf("hint = %q", Hint(err))
			}
			if _, err := os.Stat(e.db); !os.IsNotExist(err) {
				t.Fatal("a database was created")
			}
		})
	}
}

func TestInit(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e := newAdminEnv(t)
		out := e.mustRun("", after, "init")
		fp := strings.TrimSpace(e.mustRun("", after, "fingerprint"))
		if !strings.HasPrefix(fp, "SHA256:") || !strings.Contains(out, "server fingerprint: "+fp) {
			t.Fatalf("init said %q, fingerprint %q", out, fp)
		}
		d := e.open()
		if !d.WeakKDF() {
			t.Fatal("--insecure-test-kdf not applied")
		}
		before, _ := os.ReadFile(e.db)
		_, _, err := e.run("", after, "init")
		if !errors.Is(err, db.ErrExists) {
			t.Fatalf("second init: %v", err)
		}
		if after, _ := os.ReadFile(e.db); !bytes.Equal(before, after) {
			t.Fatal("second init changed the database")
		}
		if _, _, err := e.run("", after, "init", "extra"); err == nil {
			t.Fatal("init accepted an argument")
		}
	})
}

func TestPassphraseSources(t *testing.T) {
	e := newInitEnv(t)
	noPass := []string{"--db", e.db}
	t.Run("NoneAndNoTerminal", func(t *testing.T) {
		_, _, err := e.runRaw("", noPass, false, "user", "list")
		if err == nil || !strings.Contains(err.Error(), "--passphrase-file") || !strings.Contains(err.Error(), passphraseEnv) || !strings.Contains(err.Error(), "terminal") {
			t.Fatalf("err = %v, want the three ways named", err)
		}
	})
	t.Run("Env", func(t *testing.T) {
		t.Setenv(passphraseEnv, testPassphrase)
		if _, _, err := e.runRaw("", noPass, false, "user", "list"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("FileWinsOverEnv", func(t *testing.T) {
		t.Setenv(passphraseEnv, "wrong")
		if _, _, err := e.run("", false, "user", "list"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrWrongPassphrase", func(t *testing.T) {
		t.Setenv(passphraseEnv, "wrong horse")
		before, _ := os.ReadFile(e.db)
		_, _, err := e.runRaw("", noPass, false, "salon", "add", "dev")
		if !errors.Is(err, db.ErrWrongPassphrase) || Hint(err) == "" {
			t.Fatalf("err = %v hint %q", err, Hint(err))
		}
		if after, _ := os.ReadFile(e.db); !bytes.Equal(before, after) {
			t.Fatal("database changed")
		}
	})
	t.Run("EmptyFile", func(t *testing.T) {
		empty := filepath.Join(e.dir, "empty")
		os.WriteFile(empty, []byte("\n"), 0o600)
		_, _, err := e.runRaw("", []string{"--db", e.db, "--passphrase-file", empty}, false, "user", "list")
		if err == nil || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestNotLibrecord(t *testing.T) {
	e := newAdminEnv(t)
	os.WriteFile(e.db, []byte("some other file\n"), 0o644)
	for _, args := range [][]string{{"user", "list"}, {"init"}, {"fingerprint"}, {"backup", "b.db"}} {
		_, _, err := e.run("", false, args...)
		if !errors.Is(err, db.ErrNotLibrecord) && !errors.Is(err, db.ErrExists) {
			t.Fatalf("%v: err = %v", args, err)
		}
	}
	if b, _ := os.ReadFile(e.db); string(b) != "some other file\n" {
		t.Fatal("file changed")
	}
}

// TestOpenOrCreateDB is what serve does at start: create on the first
// run (with --insecure-test-kdf honoured), open afterwards.
func TestOpenOrCreateDB(t *testing.T) {
	e := newAdminEnv(t)
	var fps []string
	app := NewApp()
	app.Commands = append(app.Commands, &cli.Command{Name: "probe", Action: func(c *cli.Context) error {
		d, err := openOrCreateDB(c)
		if err != nil {
			return err
		}
		defer d.Close()
		if !d.WeakKDF() {
			return errors.New("--insecure-test-kdf not applied")
		}
		fp, err := db.Fingerprint(c.Context, d.Path())
		fps = append(fps, fp)
		return err
	}})
	for i := 0; i < 2; i++ {
		var errOut bytes.Buffer
		app.ErrWriter = &errOut
		app.Reader = strings.NewReader("")
		err := Run(context.Background(), app, []string{"librecord", "probe", "--db", e.db, "--passphrase-file", e.passFile, "--insecure-test-kdf"})
		if err != nil {
			t.Fatal(err)
		}
		if created := strings.Contains(errOut.String(), "created"); created != (i == 0) {
			t.Fatalf("run %d: stderr %q", i, errOut.String())
		}
	}
	if fps[0] != fps[1] {
		t.Fatal("identity changed between runs")
	}
}

// TestLibrecordProcess is librecord itself when TestInitTogether starts
// this test binary as a separate process (urfave/cli apps share globals,
// so they cannot run side by side in one process).
func TestLibrecordProcess(t *testing.T) {
	args := os.Getenv("LIBRECORD_TEST_ARGS")
	if args == "" {
		t.Skip("run by TestInitTogether")
	}
	app := NewApp()
	app.Writer = io.Discard
	err := Run(context.Background(), app, append([]string{"librecord"}, strings.Split(args, "\n")...))
	if err != nil {
		fmt.Printf("error: %v\n", err)
		return
	}
	fmt.Println("ok")
}

// TestInitTogether: three librecord processes run init on one fresh path
// at the same moment: one creates the database, the others say it
// exists, and nothing half-made is left.
func TestInitTogether(t *testing.T) {
	if os.Getenv("LIBRECORD_TEST_ARGS") != "" {
		t.Skip("inside a librecord process")
	}
	e := newAdminEnv(t)
	const n = 3
	args := strings.Join([]string{"--db", e.db, "--passphrase-file", e.passFile, "--insecure-test-kdf", "init"}, "\n")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < n; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLibrecordProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LIBRECORD_TEST_ARGS="+args)
		out := new(bytes.Buffer)
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	created := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
		first, _, _ := strings.Cut(outs[i].String(), "\n")
		switch {
		case first == "ok":
			created++
		case !strings.Contains(first, db.ErrExists.Error()):
			t.Errorf("init: %s", first)
		}
	}
	if created != 1 {
		t.Fatalf("%d inits created the database", created)
	}
	e.mustRun("", false, "user", "list")
	entries, _ := os.ReadDir(e.dir)
	for _, en := range entries {
		if strings.Contains(en.Name(), "creating") {
			t.Fatalf("left behind: %s", en.Name())
		}
	}
}
