//go:build linux || darwin

package commands

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"librecord/db"
)

// fsizeLimit is the largest file the child process may write: room for
// SQLite's 32 KiB -shm file, not for appending to a larger -wal file.
const fsizeLimit = 40000

// TestUserAddNoSpace: `librecord user add` whose write cannot reach the
// disk (a file size limit, set unprivileged on a child process: the write
// fails as on a full disk) fails with a clear error and a hint, and adds
// nothing; without the limit the same command then succeeds.
func TestUserAddNoSpace(t *testing.T) {
	if args := os.Getenv("LIBRECORD_TEST_FSIZE_ARGS"); args != "" {
		runLimited(args)
		return
	}
	ctx := context.Background()
	e := newInitEnv(t)
	// An open handle keeps the -wal file (nothing checkpoints it away) and
	// makes it longer than the child may write.
	d := e.open()
	fill(t, d, db.DefaultSalon, 40, 1000)
	if fi, err := os.Stat(e.db + "-wal"); err != nil || fi.Size() <= fsizeLimit {
		t.Fatalf("-wal file %v, %v: want more than %d bytes", fi, err, fsizeLimit)
	}
	before, err := d.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}

	args := []string{"librecord", "--db", e.db, "--passphrase-file", e.passFile, "user", "add", "bob"}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUserAddNoSpace$")
	cmd.Env = append(os.Environ(), "LIBRECORD_TEST_FSIZE_ARGS="+strings.Join(args, "\n"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("user add under the size limit: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "librecord: error: storage unavailable") ||
		!strings.Contains(string(out), "librecord: hint: nothing was changed;") ||
		!strings.Contains(string(out), "the disk is full") {
		t.Fatalf("user add under the size limit printed:\n%s\nwant the storage error and a hint naming a full disk", out)
	}

	t.Logf("child printed:\n%s", out)
	after, err := d.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d users after the failed add, want %d", len(after), len(before))
	}
	if _, err := d.User(ctx, "bob"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("User(bob) after the failed add: %v, want ErrNotFound", err)
	}
	c, err := sql.Open("sqlite", "file:"+e.db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var check string
	if err := c.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}

	e.mustRun("", false, "user", "add", "bob")
	if _, err := d.User(ctx, "bob"); err != nil {
		t.Fatalf("User(bob) once space is back: %v", err)
	}
}

// runLimited is the child: it runs librecord with args under fsizeLimit
// and prints what main would, then exits as main would.
func runLimited(args string) {
	lim := syscall.Rlimit{Cur: fsizeLimit, Max: fsizeLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	err := Run(context.Background(), NewApp(), strings.Split(args, "\n"))
	if err != nil {
		fmt.Printf("librecord: error: %v\n", err)
		if hint := Hint(err); hint != "" {
			fmt.Printf("librecord: hint: %s\n", hint)
		}
		os.Exit(1)
	}
	os.Exit(0)
}
