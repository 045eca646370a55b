package commands

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"fmt"
	stdnet "net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/server"
	"librecord/net/testkit"
)

// The moderation and retention commands of issue 11, each run while a
// real server serves the same file, as a host would.

// liveServe starts `librecord serve` on e's database with extra serve flags.
func (e *adminEnv) liveServe(t *testing.T, flags ...string) (addr, fingerprint string, logs *testkit.Buffer) {
	t.Helper()
	args := append([]string{"librecord", "--db", e.db, "--passphrase-file", e.passFile,
		"serve", "--listen", "127.0.0.1:0"}, flags...)
	addr, fingerprint, logs, stop := startServe(t, args)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return addr, fingerprint, logs
}

// dial opens a protocol session to addr, checking the identity.
func dial(t *testing.T, addr, fingerprint string) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{Addr: addr, CheckIdentity: func(_ string, id ed25519.PublicKey) error {
		if got := crypto.Fingerprint(id); got != fingerprint {
			return fmt.Errorf("identity %s, want %s", got, fingerprint)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// loginAs dials and logs in; the login's error is returned.
func loginAs(t *testing.T, addr, fingerprint, password string) (*client.Session, error) {
	t.Helper()
	s := dial(t, addr, fingerprint)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := s.Login(ctx, password)
	return s, err
}

func mustLogin(t *testing.T, addr, fingerprint, password string) *client.Session {
	t.Helper()
	s, err := loginAs(t, addr, fingerprint, password)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return s
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func texts(m client.Messages) []string {
	out := []string{}
	for _, x := range m.Messages {
		out = append(out, x.Text)
	}
	return out
}

var cidSeq atomic.Int64

func mustSend(t *testing.T, s *client.Session, salon, text string) int64 {
	t.Helper()
	ack, err := s.Send(tctx(t), salon, text, fmt.Sprintf("cid-%d", cidSeq.Add(1)))
	if err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
	return ack.Msg
}

func TestUserDisableLive(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e := newInitEnv(t)
		e.mustRun("alice's password\n", after, "user", "add", "alice", "--salon", "general", "--password-stdin")
		e.mustRun("bob's password!\n", after, "user", "add", "bob", "--salon", "general", "--password-stdin")
		addr, fp, logs := e.liveServe(t, "--login-limit", "2", "--login-window", "1h", "--metrics", "127.0.0.1:0")

		alice := mustLogin(t, addr, fp, "alice's password")
		mustSend(t, alice, "general", "before the disable")

		out := e.mustRun("", after, "user", "disable", "Alice")
		if !strings.HasPrefix(out, "disabled alice:") {
			t.Fatalf("disable said %q", out)
		}
		if out := e.mustRun("", after, "user", "disable", "alice"); out != "alice was already disabled\n" {
			t.Fatalf("second disable said %q", out)
		}
		table := e.mustRun("", after, "user", "list")
		if want := "PSEUDO  STATE     SALONS\nalice   disabled  general\nbob     enabled   general\n"; table != want {
			t.Fatalf("user list:\n%s\nwant:\n%s", table, want)
		}
		var users []userJSON
		if err := json.Unmarshal([]byte(e.mustRun("", after, "user", "list", "--json")), &users); err != nil || !users[0].Disabled || users[1].Disabled {
			t.Fatalf("user list --json: %+v %v", users, err)
		}

		// Her live session ends at its next request.
		_, err := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"})
		if !client.IsCode(err, lnet.CodeAuth) {
			t.Fatalf("fetch of a disabled user's session: %v", err)
		}
		// Her logins get auth, and do not count as failures of the source:
		// with --login-limit 2, the third counted failure would be refused.
		for i := 0; i < 4; i++ {
			if _, err := loginAs(t, addr, fp, "alice's password"); !client.IsCode(err, lnet.CodeAuth) {
				t.Fatalf("login %d of a disabled user: %v", i, err)
			}
		}
		bob := mustLogin(t, addr, fp, "bob's password!")
		m, err := bob.Fetch(tctx(t), client.FetchRequest{Salon: "general"})
		if err != nil || !strings.Contains(strings.Join(texts(m), "|"), "before the disable") {
			t.Fatalf("her messages stay: %q %v", texts(m), err)
		}

		if out := e.mustRun("", after, "user", "enable", "alice"); !strings.HasPrefix(out, "enabled alice") {
			t.Fatalf("enable said %q", out)
		}
		mustLogin(t, addr, fp, "alice's password")

		// Control: wrong passwords do count, so the test above could fail.
		for i := 0; i < 2; i++ {
			if _, err := loginAs(t, addr, fp, "nobody's password"); !client.IsCode(err, lnet.CodeAuth) {
				t.Fatalf("wrong password %d: %v", i, err)
			}
		}
		if _, err := loginAs(t, addr, fp, "bob's password!"); !client.IsCode(err, lnet.CodeRateLimited) {
			t.Fatalf("after two failures: %v, want rate_limited", err)
		}
		if strings.Contains(logs.String(), "alice's password") {
			t.Fatal("a password in the log")
		}
		_, body := scrape(t, "http://"+metricsAddr.FindStringSubmatch(logs.String())[1]+"/metrics")
		for result, want := range map[string]float64{"disabled": 4, "failed": 2, "rate_limited": 1, "ok": 3} {
			if got := sample(body, `librecord_logins_total{result="`+result+`"}`); got != want {
				t.Errorf("logins %s: %v, want %v", result, got, want)
			}
		}
		if _, _, err := e.run("", after, "user", "disable", "nobody"); err == nil || Hint(err) == "" {
			t.Fatalf("unknown user: %v", err)
		}
	})
}

// rawFileBytes is the database file and its WAL as they are on disk.
func rawFileBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestMessageRemoveLive(t *testing.T) {
	for _, flagsAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("FlagsAfter=%v", flagsAfter), func(t *testing.T) {
			e := newInitEnv(t)
			e.mustRun("", flagsAfter, "salon", "add", "dev")
			e.mustRun("alice's password\n", flagsAfter, "user", "add", "alice", "--salon", "general", "--salon", "dev", "--password-stdin")
			addr, fp, _ := e.liveServe(t)
			alice := mustLogin(t, addr, fp, "alice's password")
			keep := mustSend(t, alice, "general", "keep this one")
			gone1 := mustSend(t, alice, "general", "regrettable words")
			gone2 := mustSend(t, alice, "general", strings.Repeat("a long regrettable rant ", 800))
			inDev := mustSend(t, alice, "dev", "in dev")
			// A client that already read them.
			seen, err := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"})
			if err != nil || len(seen.Messages) != 3 {
				t.Fatalf("fetch: %+v %v", seen, err)
			}

			raw, err := sql.Open("sqlite", "file:"+e.db+"?mode=ro")
			if err != nil {
				t.Fatal(err)
			}
			var blobs [][]byte
			for _, id := range []int64{gone1, gone2} {
				var b []byte
				if err := raw.QueryRow(`SELECT blob FROM messages WHERE id = ?`, id).Scan(&b); err != nil {
					t.Fatal(err)
				}
				blobs = append(blobs, b)
			}
			raw.Close()
			if !bytes.Contains(rawFileBytes(t, e.db), blobs[0][len(blobs[0])-32:]) {
				t.Fatal("the test cannot see a stored ciphertext in the files")
			}

			remove := func(salon string, ids ...int64) (string, error) {
				args := []string{"message", "remove", "--salon", salon}
				if flagsAfter {
					args = []string{"message", "remove"}
				}
				for _, id := range ids {
					args = append(args, strconv.FormatInt(id, 10))
				}
				if flagsAfter {
					args = append(args, "--salon", salon)
				}
				out, _, err := e.run("", flagsAfter, args...)
				return out, err
			}
			// All or none: a message of another salon, an unknown id, a bad id.
			for _, ids := range [][]int64{{gone1, inDev}, {gone1, 424242}} {
				if _, err := remove("general", ids...); err == nil || Hint(err) == "" {
					t.Fatalf("remove %v: %v", ids, err)
				}
			}
			if _, _, err := e.run("", flagsAfter, "message", "remove", "--salon", "general", strconv.FormatInt(gone1, 10), "x1"); err == nil {
				t.Fatal("bad id accepted")
			}
			if _, _, err := e.run("", flagsAfter, "message", "remove", strconv.FormatInt(gone1, 10)); err == nil {
				t.Fatal("no --salon accepted")
			}
			if m, _ := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"}); len(m.Messages) != 3 {
				t.Fatalf("a refused removal removed something: %q", texts(m))
			}

			out, err := remove("GENERAL", gone1, gone2)
			if err != nil || out != "removed 2 messages from general for good; chat clients that already showed them keep them on screen\n" {
				t.Fatalf("remove: %q %v", out, err)
			}
			m, err := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"})
			if err != nil || len(m.Messages) != 1 || m.Messages[0].ID != keep {
				t.Fatalf("fetch after removal: %q %v", texts(m), err)
			}
			m, err = alice.Fetch(tctx(t), client.FetchRequest{Salon: "general", HasAfter: true, After: keep})
			if err != nil || len(m.Messages) != 0 {
				t.Fatalf("fetch after the kept one: %q %v", texts(m), err)
			}
			export := e.mustRun("", flagsAfter, "export", "--salon", "general", "--format", "json")
			if strings.Contains(export, "regrettable") || !strings.Contains(export, "keep this one") {
				t.Fatalf("export after removal:\n%s", export)
			}
			all := rawFileBytes(t, e.db)
			for i, b := range blobs {
				for off := 0; off+32 <= len(b); off += 32 {
					if bytes.Contains(all, b[off:off+32]) {
						t.Fatalf("removed message %d still in the files (bytes %d..%d of its blob)", i, off, off+32)
					}
				}
			}
			// The server goes on storing.
			mustSend(t, alice, "general", "after the removal")
		})
	}
}

func TestSalonRenameLive(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e := newInitEnv(t)
		e.mustRun("alice's password\n", after, "user", "add", "alice", "--salon", "general", "--password-stdin")
		e.mustRun("bob's password!\n", after, "user", "add", "bob", "--salon", "general", "--password-stdin")
		e.mustRun("", after, "salon", "add", "dev")
		addr, fp, _ := e.liveServe(t)
		alice := mustLogin(t, addr, fp, "alice's password")
		bob := mustLogin(t, addr, fp, "bob's password!")
		last := mustSend(t, alice, "general", "history follows")

		// bob waits on general (a long-poll, parked unless it reaches the
		// server after the rename: forbidden either way) while it is renamed.
		parked := make(chan error, 1)
		go func() {
			_, err := bob.Fetch(context.Background(), client.FetchRequest{Salon: "general", HasAfter: true, After: last, Wait: 20 * time.Second})
			parked <- err
		}()

		if _, _, err := e.run("", after, "salon", "rename", "general", "DEV"); err == nil || Hint(err) == "" {
			t.Fatalf("rename onto an existing salon: %v", err)
		}
		if _, _, err := e.run("", after, "salon", "rename", "general"); err == nil {
			t.Fatal("rename with one name accepted")
		}
		out := e.mustRun("", after, "salon", "rename", "General", "lobby")
		if !strings.HasPrefix(out, "renamed salon general to lobby;") {
			t.Fatalf("rename said %q", out)
		}
		mustSend(t, alice, "lobby", "in the lobby")
		select {
		case err := <-parked:
			if !client.IsCode(err, lnet.CodeForbidden) {
				t.Fatalf("parked fetch on the old name: %v, want forbidden", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("parked fetch on the old name not answered")
		}
		if _, err := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"}); !client.IsCode(err, lnet.CodeForbidden) {
			t.Fatalf("fetch of the old name: %v", err)
		}
		salons, err := alice.Salons(tctx(t))
		if err != nil || len(salons) != 1 || salons[0].Name != "lobby" {
			t.Fatalf("salons: %+v %v", salons, err)
		}
		m, err := bob.Fetch(tctx(t), client.FetchRequest{Salon: "LOBBY"})
		if err != nil || m.Salon != "lobby" || strings.Join(texts(m), "|") != "history follows|in the lobby" {
			t.Fatalf("history under the new name: %+v %v", m, err)
		}
		table := e.mustRun("", after, "salon", "list")
		if want := "SALON  MESSAGES  RETAIN  MEMBERS\ndev    0         off     (nobody)\nlobby  2         off     alice, bob\n"; table != want {
			t.Fatalf("salon list:\n%s\nwant:\n%s", table, want)
		}
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSalonRetainCommand(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e := newInitEnv(t)
		out := e.mustRun("", after, "salon", "retain", "GENERAL", "90d")
		if !strings.HasPrefix(out, "general keeps its messages 90d") {
			t.Fatalf("retain said %q", out)
		}
		var salons []salonJSON
		if err := json.Unmarshal([]byte(e.mustRun("", after, "salon", "list", "--json")), &salons); err != nil || salons[0].Retention != "90d" {
			t.Fatalf("salon list --json: %+v %v", salons, err)
		}
		if table := e.mustRun("", after, "salon", "list"); !strings.Contains(table, "general  0         90d     (nobody)") {
			t.Fatalf("salon list:\n%s", table)
		}
		for _, bad := range []string{"90", "0d", "1.5d", "90m", "forever", "1w"} {
			_, _, err := e.run("", after, "salon", "retain", "general", bad)
			if err == nil || Hint(err) == "" {
				t.Fatalf("retain %q: %v", bad, err)
			}
		}
		if _, _, err := e.run("", after, "salon", "retain", "nope", "1d"); err == nil || Hint(err) == "" {
			t.Fatalf("unknown salon: %v", err)
		}
		if out := e.mustRun("", after, "salon", "retain", "general", "off"); out != "general keeps its messages forever\n" {
			t.Fatalf("off said %q", out)
		}
		if out := e.mustRun("", after, "prune"); out != "deleted 0 messages older than their salon's retention\n" {
			t.Fatalf("prune said %q", out)
		}
		if _, _, err := e.run("", after, "prune", "now"); err == nil {
			t.Fatal("prune with an argument accepted")
		}
	})
}

// TestPruneOnce: `librecord prune` as of a later day deletes what is past
// the retention, keeps the rest, and leaves an empty WAL.
func TestPruneOnce(t *testing.T) {
	e := newInitEnv(t)
	e.mustRun("", false, "salon", "add", "dev")
	d, gen, alice := e.aliceInGeneral(false)
	dev, _ := d.Salon(context.Background(), "dev")
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		for _, s := range []int64{gen.ID, dev.ID} {
			if _, err := d.InsertMessages(ctx, []db.NewMessage{{SalonID: s, UserID: alice.UserID, Cid: fmt.Sprint(s, "-", i), Pseudo: "alice", Text: "hi", Portions: 1}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.mustRun("", false, "salon", "retain", "general", "2d")
	var out bytes.Buffer
	if err := Prune(ctx, d, &out, time.Now().Add(49*time.Hour)); err != nil || out.String() != "deleted 5 messages older than their salon's retention\n" {
		t.Fatalf("prune: %q %v", out.String(), err)
	}
	if fi, err := os.Stat(e.db + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("WAL not truncated: %d bytes", fi.Size())
	}
	if m, _, _ := d.Latest(ctx, dev.ID, 10); len(m) != 5 {
		t.Fatalf("dev kept %d", len(m))
	}
}

// TestRetentionLive: a running serve prunes by itself, every
// --prune-every, what its clock says is past a salon's retention, while
// sends go on; newer messages stay.
func TestRetentionLive(t *testing.T) {
	e := newInitEnv(t)
	e.mustRun("alice's password\n", false, "user", "add", "alice", "--salon", "general", "--password-stdin")
	d, err := db.Open(context.Background(), e.db, []byte(testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64 // the pruner's now, unix ms; 0: the real time
	var mu sync.Mutex
	passes, deleted := 0, int64(0)
	cfg := serveConfig{LogFormat: "text", ShutdownTimeout: 10 * time.Second, Server: server.DefaultConfig(), PruneEvery: 10 * time.Millisecond}
	cfg.prune.now = func() time.Time {
		if ms := clock.Load(); ms != 0 {
			return time.UnixMilli(ms)
		}
		return time.Now()
	}
	cfg.prune.passed = func(n int64, err error) {
		if err != nil {
			t.Errorf("prune pass: %v", err)
		}
		mu.Lock()
		passes++
		deleted += n
		mu.Unlock()
	}
	passesNow := func() (int, int64) { mu.Lock(); defer mu.Unlock(); return passes, deleted }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &testkit.Buffer{}
	var stdout bytes.Buffer
	go func() { done <- runServe(ctx, d, ln, nil, cfg, &stdout, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	fp := crypto.Fingerprint(d.Identity().Public().(ed25519.PublicKey))
	alice := mustLogin(t, ln.Addr().String(), fp, "alice's password")
	for i := 0; i < 5; i++ {
		mustSend(t, alice, "general", fmt.Sprintf("old %d", i))
	}
	m, _ := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general", Limit: 1})
	boundary := m.Messages[0].At // the newest old message's time, to the ms
	at, err := time.Parse(time.RFC3339Nano, boundary)
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().UnixMilli() <= at.UnixMilli() {
		time.Sleep(time.Millisecond)
	}
	fresh := mustSend(t, alice, "general", "fresh")

	e.mustRun("", true, "salon", "retain", "general", "1h")
	// An hour after the last old message was stored: the old ones expire,
	// fresh (a millisecond later at least) does not.
	clock.Store(at.Add(time.Hour).Add(time.Millisecond).UnixMilli())
	waitUntil(t, "the old messages pruned", func() bool { _, n := passesNow(); return n == 5 })
	p, _ := passesNow()
	waitUntil(t, "two more passes", func() bool { q, _ := passesNow(); return q >= p+2 })
	m, err = alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"})
	if err != nil || len(m.Messages) != 1 || m.Messages[0].ID != fresh {
		t.Fatalf("after pruning: %q %v", texts(m), err)
	}
	if _, n := passesNow(); n != 5 {
		t.Fatalf("%d deleted, want 5", n)
	}
	mustSend(t, alice, "general", "still serving")
	if !strings.Contains(logs.String(), "pruned expired messages") {
		t.Fatalf("no log of the prune:\n%s", logs.String())
	}
}

func TestServeRefusesNegativePruneEvery(t *testing.T) {
	e := newInitEnv(t)
	_, _, err := e.run("", false, "serve", "--listen", "127.0.0.1:0", "--prune-every", "-1s")
	if err == nil || !strings.Contains(err.Error(), "--prune-every") {
		t.Fatalf("err = %v", err)
	}
}

// TestServeNotifiesSystemd: with NOTIFY_SOCKET set (systemd Type=notify),
// serve says READY=1 once it listens and STOPPING=1 when it stops.
func TestServeNotifiesSystemd(t *testing.T) {
	e := newInitEnv(t)
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := stdnet.ListenUnixgram("unixgram", &stdnet.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	read := func() string {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 4096)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	addr, fp, _, stop := startServe(t, []string{"librecord", "--db", e.db, "--passphrase-file", e.passFile, "serve", "--listen", "127.0.0.1:0"})
	if got := read(); !strings.HasPrefix(got, "READY=1\n") || !strings.Contains(got, addr) {
		t.Fatalf("first notification %q", got)
	}
	helloAndLogin(t, addr, fp, "") // it does listen
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "STOPPING=1" {
		t.Fatalf("second notification %q", got)
	}
}

// TestPruneBesideServe: `librecord prune` from cron while serve runs on
// the same file (as of a later day here): the expired messages go, the
// WAL is truncated despite the server, and the server goes on serving.
func TestPruneBesideServe(t *testing.T) {
	e := newInitEnv(t)
	e.mustRun("alice's password\n", false, "user", "add", "alice", "--salon", "general", "--password-stdin")
	addr, fp, _ := e.liveServe(t, "--prune-every", "0")
	alice := mustLogin(t, addr, fp, "alice's password")
	for i := 0; i < 3; i++ {
		mustSend(t, alice, "general", fmt.Sprintf("soon expired %d", i))
	}
	e.mustRun("", true, "salon", "retain", "general", "1h")
	if out := e.mustRun("", true, "prune"); out != "deleted 0 messages older than their salon's retention\n" {
		t.Fatalf("prune now said %q", out)
	}
	var out bytes.Buffer
	if err := Prune(context.Background(), e.open(), &out, time.Now().Add(2*time.Hour)); err != nil || out.String() != "deleted 3 messages older than their salon's retention\n" {
		t.Fatalf("prune later: %q %v", out.String(), err)
	}
	if fi, err := os.Stat(e.db + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("WAL not truncated beside serve: %d bytes", fi.Size())
	}
	m, err := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"})
	if err != nil || len(m.Messages) != 0 {
		t.Fatalf("after prune: %q %v", texts(m), err)
	}
	mustSend(t, alice, "general", "still serving")
}
