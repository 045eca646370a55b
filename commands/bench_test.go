package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"librecord/crypto"
	"librecord/db"
	"librecord/net/bench"
)

// asAppEnv makes this test binary behave as the librecord binary: bench
// starts os.Executable() as its child server, which in a test is this
// binary.
const asAppEnv = "LIBRECORD_TEST_AS_APP"

func TestMain(m *testing.M) {
	if os.Getenv(asAppEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Run(ctx, NewApp(), os.Args)
		stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "librecord: error: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runBench runs `librecord bench` with args and decodes its --json report.
func runBench(t *testing.T, args ...string) (bench.Report, string) {
	t.Helper()
	app := NewApp()
	var out, progress bytes.Buffer
	app.Writer, app.ErrWriter = &out, &progress
	err := Run(context.Background(), app, append([]string{"librecord", "bench"}, args...))
	if err != nil {
		t.Fatalf("bench: %v\nprogress:\n%s", err, progress.String())
	}
	var r bench.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("bench --json printed %q: %v", out.String(), err)
	}
	return r, progress.String()
}

// TestBenchChild runs a small community shape against a child server:
// the messages are acked and delivered to every session, the server's CPU
// and memory are read, its throttling limits were switched off, and
// nothing it created is left behind.
func TestBenchChild(t *testing.T) {
	t.Setenv(asAppEnv, "1")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where bench makes its database
	profile := filepath.Join(t.TempDir(), "cpu.prof")
	r, progress := runBench(t, "--shape", "community", "--sessions", "4", "--senders", "2",
		"--rate", "10", "--duration", "1s", "--json", "--cpuprofile", profile)
	if len(r.Shapes) != 1 {
		t.Fatalf("shapes %+v", r.Shapes)
	}
	s := r.Shapes[0]
	if s.Shape != "community" || s.Sessions != 4 || s.Senders != 2 || !s.Polling {
		t.Errorf("shape %+v", s)
	}
	if s.Acked == 0 || s.Deliveries != s.Acked*4 || s.Errors.Missing != 0 {
		t.Errorf("acked %d, delivered %d (want 4 each), missing %d\n%s", s.Acked, s.Deliveries, s.Errors.Missing, progress)
	}
	if s.Errors.Login+s.Errors.Send+s.Errors.Fetch+s.Errors.RateLimited != 0 {
		t.Errorf("errors %+v\n%s", s.Errors, progress)
	}
	if s.Delivery.N != int(s.Deliveries) || s.Ack.N != int(s.Acked) || s.Delivery.P50 <= 0 || s.Delivery.Max < s.Delivery.P99 {
		t.Errorf("latencies: delivery %+v ack %+v", s.Delivery, s.Ack)
	}
	if s.ServerCPU == nil || s.ServerRSS == nil || *s.ServerRSS <= 0 || s.ServerPerSession == nil {
		t.Errorf("server side not measured: %+v", s)
	}
	if r.FloorUS <= 0 || (s.ServerCPUPerRequest != nil && s.FloorRatio == nil) {
		t.Errorf("floor %v, ratio %v", r.FloorUS, s.FloorRatio)
	}
	for _, f := range []string{"send-rate", "login-limit", "max-pending", "max-conns", "max-pending-per-source", "max-sessions-per-user"} {
		if !slices.Contains(r.Unthrottled, f) {
			t.Errorf("limit --%s not switched off: %v", f, r.Unthrottled)
		}
	}
	if !strings.Contains(progress, "bench community:") {
		t.Errorf("no progress on stderr: %q", progress)
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("no CPU profile written: %v", err)
	}
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}

// TestBenchAddr drives a running server: it logs in as the host's users,
// sends only to the salon it was given and creates nothing else there.
func TestBenchAddr(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "community.db")
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("host passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kdf := crypto.InsecureTestKDF()
	if err := db.Create(ctx, path, []byte("host passphrase"), db.CreateOptions{KDF: &kdf}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, path, []byte("host passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddSalon(ctx, "loadtest"); err != nil {
		t.Fatal(err)
	}
	passwords := []string{"password of the first user", "password of the second one"}
	for i, pw := range passwords {
		if _, err := d.AddUser(ctx, fmt.Sprintf("user%d", i), pw, []string{"general", "loadtest"}); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	pwFile := filepath.Join(dir, "passwords")
	if err := os.WriteFile(pwFile, []byte(strings.Join(passwords, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, fingerprint, _, stopServe := startServe(t, []string{"librecord", "--db", path, "--passphrase-file", passFile,
		"serve", "--listen", "127.0.0.1:0"})
	stop := sync.OnceValue(stopServe)
	defer stop()

	// Refused without the server's fingerprint, and with a wrong one.
	app := NewApp()
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	if err := Run(ctx, app, []string{"librecord", "bench", "--addr", addr, "--password-file", pwFile}); err == nil || !strings.Contains(err.Error(), "--trust") {
		t.Errorf("without --trust: %v", err)
	}

	r, progress := runBench(t, "--shape", "send", "--sessions", "3", "--senders", "3", "--duration", "1s",
		"--addr", addr, "--password-file", pwFile, "--trust", fingerprint, "--salon", "loadtest", "--json", "--login-rate", "0")
	s := r.Shapes[0]
	if r.Server != "addr" || s.Sessions != 3 || s.Acked == 0 || s.Errors.Send != 0 || s.Errors.Login != 0 {
		t.Errorf("report %+v shape %+v\n%s", r, s, progress)
	}
	if s.ServerCPU != nil {
		t.Errorf("server CPU measured without --server-pid")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	d, err = db.Open(ctx, path, []byte("host passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	users, err := d.Users(ctx)
	if err != nil || len(users) != 2 {
		t.Errorf("users after bench: %v %v", users, err)
	}
	salons, err := d.Salons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range salons {
		switch si.Name {
		case "loadtest":
			if si.Messages < s.Acked {
				t.Errorf("loadtest holds %d messages, %d acked", si.Messages, s.Acked)
			}
		case "general":
			// Only the sessions' "disconnected" notices, posted by the
			// server in their last salon: none here.
			if si.Messages != 0 {
				t.Errorf("general holds %d messages", si.Messages)
			}
		default:
			t.Errorf("salon %q appeared", si.Name)
		}
	}
}

func TestBenchFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--shape", "nope"},
		{"--sessions", "2", "--senders", "3"},
		{"--size", "10"},
		{"--duration", "0s"},
		{"--password-file", "x"},
		{"--salon", "bad name"},
		{"--ws", "--addr", "127.0.0.1:1", "--password-file", "x", "--trust", "SHA256:x"},
		{"extra"},
	} {
		app := NewApp()
		app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
		if err := Run(context.Background(), app, append([]string{"librecord", "bench"}, args...)); err == nil {
			t.Errorf("bench %v: no error", args)
		}
	}
}

// TestBenchWebSocket: --ws runs the shape over TCP, then over WebSocket
// against a server also serving --web, side by side, with the server's CPU
// per request over WebSocket compared with TCP's; every message is acked
// and delivered to every session over both.
func TestBenchWebSocket(t *testing.T) {
	t.Setenv(asAppEnv, "1")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	profile := filepath.Join(t.TempDir(), "cpu.prof")
	r, progress := runBench(t, "--shape", "community", "--sessions", "3", "--senders", "2",
		"--rate", "10", "--duration", "1s", "--json", "--ws", "--cpuprofile", profile)
	if len(r.Shapes) != 2 || r.Shapes[0].Transport != "tcp" || r.Shapes[1].Transport != "ws" {
		t.Fatalf("want community over tcp then ws: %+v", r.Shapes)
	}
	if slices.Contains(r.ServeArgs, "--web") {
		t.Errorf("the TCP run's server args name --web: %v", r.ServeArgs)
	}
	for _, s := range r.Shapes {
		if s.Shape != "community" || s.Sessions != 3 || s.Acked == 0 || s.Deliveries != s.Acked*3 || s.Errors.Missing != 0 {
			t.Errorf("%s: sessions %d, acked %d, delivered %d (want 3 each), missing %d\n%s",
				s.Transport, s.Sessions, s.Acked, s.Deliveries, s.Errors.Missing, progress)
		}
		if s.Errors.Login+s.Errors.Send+s.Errors.Fetch+s.Errors.Reconnects != 0 {
			t.Errorf("%s: errors %+v\n%s", s.Transport, s.Errors, progress)
		}
		if s.ServerCPU == nil {
			t.Errorf("%s: server CPU not measured", s.Transport)
		}
	}
	tcp, ws := r.Shapes[0], r.Shapes[1]
	if ws.ServerCPUPerRequest != nil && tcp.ServerCPUPerRequest != nil && *tcp.ServerCPUPerRequest > 0 {
		if ws.OverTCP == nil || *ws.OverTCP != *ws.ServerCPUPerRequest / *tcp.ServerCPUPerRequest {
			t.Errorf("ws over tcp %v, from %v and %v", ws.OverTCP, *ws.ServerCPUPerRequest, *tcp.ServerCPUPerRequest)
		}
	}
	if tcp.OverTCP != nil {
		t.Errorf("the tcp column has a ratio to itself: %v", *tcp.OverTCP)
	}
	for _, suffix := range []string{".tcp", ".ws"} {
		if fi, err := os.Stat(profile + suffix); err != nil || fi.Size() == 0 {
			t.Errorf("no CPU profile %s: %v", suffix, err)
		}
	}
	if !strings.Contains(progress, "bench community over ws:") {
		t.Errorf("no ws progress on stderr: %q", progress)
	}
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}
