package db

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const writerEnv = "LIBRECORD_TEST_WRITER_DB"

// TestWriterProcess is the other process of TestAdminWhileServing: when
// started by it, it stores one message per transaction (the most lock
// traffic a server makes) until its stdin closes, then reports.
func TestWriterProcess(t *testing.T) {
	path := os.Getenv(writerEnv)
	if path == "" {
		t.Skip("run by TestAdminWhileServing")
	}
	ctx := context.Background()
	d, err := Open(ctx, path, testPass)
	if err != nil {
		fmt.Printf("fatal %v\n", err)
		return
	}
	defer d.Close()
	s, _ := d.Salon(ctx, "general")
	u, err := d.User(ctx, "writer")
	if err != nil {
		fmt.Printf("fatal %v\n", err)
		return
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var n, failed int
	var firstErr error
	for {
		select {
		case <-stop:
			fmt.Printf("done %d %d %v\n", n, failed, firstErr)
			return
		default:
		}
		_, err := d.InsertMessages(ctx, []NewMessage{{SalonID: s.ID, UserID: u.ID, Cid: fmt.Sprint(n), Pseudo: u.Pseudo, Text: "busy server", Portions: 1}})
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
		n++
		if n == 1 {
			fmt.Println("ready")
		}
	}
}

// TestAdminWhileServing: another process writes continuously, as serve
// does; meanwhile admin writes and backups all succeed, the writer never
// fails, and each backup passes integrity_check and opens.
func TestAdminWhileServing(t *testing.T) {
	if os.Getenv(writerEnv) != "" {
		t.Skip("inside the writer process")
	}
	ctx := context.Background()
	path := testCreate(t)
	d, err := Open(ctx, path, testPass)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mustUser(t, d, "writer", "general")

	cmd := exec.Command(os.Args[0], "-test.run=^TestWriterProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), writerEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("writer process ended early")
			}
			return l
		case <-time.After(2 * time.Minute):
			t.Fatal("writer process silent")
		}
		return ""
	}
	if l := next(); l != "ready" {
		t.Fatalf("writer: %s", l)
	}

	// Admin writes, while the writer writes.
	adminStart := time.Now()
	var backups []string
	for i := 0; i < 4; i++ {
		p := fmt.Sprint("user", i)
		if _, err := d.AddUser(ctx, p, "password of "+p, []string{"general"}); err != nil {
			t.Fatalf("AddUser: %v", err)
		}
		if _, err := d.AddSalon(ctx, fmt.Sprint("salon", i)); err != nil {
			t.Fatalf("AddSalon: %v", err)
		}
		if _, err := d.Grant(ctx, fmt.Sprint("salon", i), []string{p, "writer"}); err != nil {
			t.Fatalf("Grant: %v", err)
		}
		if _, err := d.Revoke(ctx, fmt.Sprint("salon", i), []string{"writer"}); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if err := d.ResetPassword(ctx, p, "new password of "+p); err != nil {
			t.Fatalf("ResetPassword: %v", err)
		}
		if i%2 == 1 {
			b := filepath.Join(t.TempDir(), fmt.Sprintf("backup-%d.db", i))
			if err := Backup(ctx, path, b); err != nil {
				t.Fatalf("Backup: %v", err)
			}
			backups = append(backups, b)
		}
	}
	if err := d.RemoveUser(ctx, "user0"); err != nil {
		t.Fatalf("RemoveUser: %v", err)
	}

	t.Logf("admin phase: %v", time.Since(adminStart))
	stdin.Close()
	var n, failed int
	var first string
	if _, err := fmt.Sscanf(next(), "done %d %d %s", &n, &failed, &first); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("writer report: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("writer process: %v", err)
	}
	t.Logf("writer stored %d messages meanwhile, %d failures", n, failed)
	if failed != 0 {
		t.Fatalf("writer failed %d times while admin commands ran (first: %s)", failed, first)
	}
	for _, b := range backups {
		checkBackup(t, b)
	}
	s, _ := d.Salon(ctx, "general")
	if s.Last < int64(n) {
		t.Fatalf("last id %d, writer stored %d", s.Last, n)
	}
}

func checkBackup(t *testing.T, path string) {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var res string
	err = c.QueryRow(`PRAGMA integrity_check`).Scan(&res)
	c.Close()
	if err != nil || res != "ok" {
		t.Fatalf("integrity_check of %s: %q %v", path, res, err)
	}
	d, err := Open(context.Background(), path, testPass)
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer d.Close()
	users, err := d.Users(context.Background())
	if err != nil || len(users) < 2 {
		t.Fatalf("backup users: %v %v", users, err)
	}
	if !strings.HasPrefix(users[0].Pseudo, "user") && users[0].Pseudo != "writer" {
		t.Fatalf("backup users: %v", users)
	}
}
