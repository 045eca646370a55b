package client_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	stdnet "net"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/server"
	"librecord/net/server/servertest"
	"librecord/net/testkit"
	"librecord/repl"
)

// realServer runs the real server over a real SQLite file on loopback.
type realServer struct {
	addr string
	db   *db.DB
}

func startServer(t *testing.T, mutate ...func(*server.Config)) *realServer {
	t.Helper()
	ctx := context.Background()
	d := servertest.TempDB(t)
	if _, err := d.AddSalon(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := d.AddUser(ctx, u, u+"-password", []string{"general", "dev"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := server.DefaultConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	return &realServer{addr: servertest.Start(t, d, cfg), db: d}
}

func login(t *testing.T, s *realServer, user string) *client.Session {
	t.Helper()
	known, err := client.LoadKnownServers(filepath.Join(t.TempDir(), "known_servers"))
	if err != nil {
		t.Fatal(err)
	}
	tr := client.Trust{Known: known, Ask: func(string, string) (bool, error) { return true, nil }}
	sess, err := client.Dial(context.Background(), client.Config{Addr: s.addr, CheckIdentity: tr.Check})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	if _, err := sess.Login(context.Background(), user+"-password"); err != nil {
		t.Fatal(err)
	}
	return sess
}

func TestAgainstRealServer(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	known, err := client.LoadKnownServers(filepath.Join(t.TempDir(), "known_servers"))
	if err != nil {
		t.Fatal(err)
	}
	tr := client.Trust{Known: known, Ask: func(string, string) (bool, error) { return true, nil }}
	alice, err := client.Dial(ctx, client.Config{Addr: s.addr, CheckIdentity: tr.Check})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	t.Run("WrongPasswordThenRight", func(t *testing.T) {
		if _, err := alice.Login(ctx, "nope"); !client.IsCode(err, lnet.CodeAuth) {
			t.Fatalf("got %v", err)
		}
		info, err := alice.Login(ctx, "alice-password")
		if err != nil {
			t.Fatal(err)
		}
		if info.Pseudo != "alice" || info.Poll <= 0 || info.SessionTimeout <= 0 {
			t.Errorf("info %+v", info)
		}
	})
	t.Run("EmptySalonFollowsFromZero", func(t *testing.T) {
		res, err := alice.Fetch(ctx, client.FetchRequest{Salon: "dev", HasAfter: true, After: 0, Wait: 10 * time.Millisecond})
		if err != nil || len(res.Messages) != 0 {
			t.Fatalf("%v %v", res, err)
		}
	})
	bob := login(t, s, "bob")
	t.Run("ParkedFetchWokenBySend", func(t *testing.T) {
		got := make(chan client.Messages, 1)
		go func() {
			res, err := bob.Fetch(ctx, client.FetchRequest{Salon: "general", HasAfter: true, After: 0, Wait: 5 * time.Second})
			if err != nil {
				t.Error(err)
			}
			got <- res
		}()
		// While bob's fetch is parked, his other requests are answered.
		testkit.WaitFor(t, "bob in who while his fetch is parked", func() bool {
			who, err := bob.Who(ctx, "general")
			return err == nil && reflect.DeepEqual(who, []string{"alice", "bob"})
		})
		ack, err := alice.Send(ctx, "general", "bonjour <&>", repl.NewCID())
		if err != nil {
			t.Fatal(err)
		}
		res := <-got
		if len(res.Messages) == 0 || res.Messages[len(res.Messages)-1].ID != ack.Msg || res.Messages[len(res.Messages)-1].Text != "bonjour <&>" {
			t.Errorf("bob got %+v, ack %+v", res, ack)
		}
	})
	t.Run("SameCIDSameAck", func(t *testing.T) {
		cid := repl.NewCID()
		a1, err1 := alice.Send(ctx, "general", "once", cid)
		a2, err2 := alice.Send(ctx, "general", "once", cid)
		if err1 != nil || err2 != nil || a1 != a2 {
			t.Errorf("%+v %v / %+v %v", a1, err1, a2, err2)
		}
	})
	t.Run("ResumeKeepsSession", func(t *testing.T) {
		alice.Disconnect()
		if err := alice.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Send(ctx, "general", "after resume", repl.NewCID()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrUnknownSessionAfterBye", func(t *testing.T) {
		if err := bob.Bye(ctx); err != nil {
			t.Fatal(err)
		}
		if err := bob.Resume(ctx); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("resume after bye: %v", err)
		}
	})
}

// The scripted chat over the real client and server: lines in, another
// user's messages out.
func TestScriptAgainstRealServer(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	dial := func(ctx context.Context, ask repl.AskTrust) (repl.Session, error) {
		known, err := client.LoadKnownServers(filepath.Join(dir, "known_servers"))
		if err != nil {
			return nil, err
		}
		tr := client.Trust{Known: known, Pinned: crypto.Fingerprint(s.db.Identity().Public().(ed25519.PublicKey)), Ask: ask}
		sess, err := client.Dial(ctx, client.Config{Addr: s.addr, CheckIdentity: tr.Check})
		if err != nil {
			return nil, err
		}
		return sess, nil
	}
	cfg := repl.Config{Addr: s.addr, Salon: "general", Poll: 300 * time.Millisecond, RetryDelay: 50 * time.Millisecond,
		Password: func() (string, error) { return "alice-password", nil }, PasswordSource: "test"}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- repl.RunScript(context.Background(), cfg, dial, inR, outW, io.Discard)
		outW.Close()
	}()
	inW.Write([]byte("first\nsecond\n"))
	bob := login(t, s, "bob")
	// bob sees alice's lines in order.
	var seen []string
	var after int64
	testkit.WaitFor(t, "alice's lines seen by bob", func() bool {
		res, err := bob.Fetch(context.Background(), client.FetchRequest{Salon: "general", HasAfter: true, After: after, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			after = m.ID
			if m.Pseudo == "alice" {
				seen = append(seen, m.Text)
			}
		}
		return len(seen) >= 2
	})
	if !reflect.DeepEqual(seen, []string{"first", "second"}) {
		t.Errorf("bob saw %q", seen)
	}
	if _, err := bob.Send(context.Background(), "general", "hi\nalice", repl.NewCID()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := outR.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	line := string(buf[:n])
	if !strings.HasSuffix(line, " general bob: hi\\nalice\n") {
		t.Errorf("script wrote %q", line)
	}
	inW.Close()
	go io.Copy(io.Discard, outR)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A rate-limited scripted chat waits and retries: every line goes out, in
// order, once.
func TestScriptRateLimitedAgainstRealServer(t *testing.T) {
	s := startServer(t, func(c *server.Config) { c.Chat.SendRate, c.Chat.SendBurst = 20, 2 })
	dir := t.TempDir()
	fp := crypto.Fingerprint(s.db.Identity().Public().(ed25519.PublicKey))
	dial := func(ctx context.Context, ask repl.AskTrust) (repl.Session, error) {
		known, err := client.LoadKnownServers(filepath.Join(dir, "known_servers"))
		if err != nil {
			return nil, err
		}
		sess, err := client.Dial(ctx, client.Config{Addr: s.addr, CheckIdentity: client.Trust{Known: known, Pinned: fp}.Check})
		if err != nil {
			return nil, err
		}
		return sess, nil
	}
	cfg := repl.Config{Addr: s.addr, Salon: "general", Poll: 300 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		Password: func() (string, error) { return "alice-password", nil }, PasswordSource: "test"}
	var in strings.Builder
	var want []string
	for i := 0; i < 12; i++ {
		line := "line " + strconv.Itoa(i)
		in.WriteString(line + "\n")
		want = append(want, line)
	}
	if err := repl.RunScript(context.Background(), cfg, dial, strings.NewReader(in.String()), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	salon, err := s.db.Salon(context.Background(), "general")
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := s.db.Latest(context.Background(), salon.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		if !m.System {
			got = append(got, m.Text)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored %q", got)
	}
}

// trustAll is a known-servers file that trusts a first contact, counting
// how often the person was asked.
func trustAll(t *testing.T, asked *atomic.Int32) client.Trust {
	t.Helper()
	known, err := client.LoadKnownServers(filepath.Join(t.TempDir(), "known_servers"))
	if err != nil {
		t.Fatal(err)
	}
	return client.Trust{Known: known, Ask: func(string, string) (bool, error) {
		asked.Add(1)
		return true, nil
	}}
}

// A person may take longer to type the password than the server waits for
// a login (PROTOCOL.md 4): the login goes out on a new connection, after a
// new hello, without asking about the server again.
func TestLoginAfterServerClosedConnection(t *testing.T) {
	s := startServer(t, func(c *server.Config) { c.LoginTimeout = 200 * time.Millisecond })
	ctx := context.Background()
	var asked atomic.Int32
	tr := trustAll(t, &asked)
	sess, err := client.Dial(ctx, client.Config{Addr: s.addr, CheckIdentity: tr.Check})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	testkit.WaitFor(t, "the server to close the slow login", func() bool { return !sess.Connected() }) // the server gave up
	if _, err := sess.Login(ctx, "nope"); !client.IsCode(err, lnet.CodeAuth) {
		t.Fatalf("wrong password: got %v", err)
	}
	// Asked again, the person is slow again.
	testkit.WaitFor(t, "the server to close the slow login again", func() bool { return !sess.Connected() })
	info, err := sess.Login(ctx, "alice-password")
	if err != nil {
		t.Fatalf("login after the server closed the connection: %v", err)
	}
	if info.Pseudo != "alice" {
		t.Errorf("info %+v", info)
	}
	// Logged in: the server keeps the connection past its login timeout.
	time.Sleep(300 * time.Millisecond)
	if _, err := sess.Send(ctx, "general", "late but in", repl.NewCID()); err != nil {
		t.Fatal(err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("asked to trust the server %d times, want 1", n)
	}
}

// A connection older than FreshFor is replaced before the login, even
// while the server still holds it: it might close it mid-login.
func TestLoginReplacesStaleConnection(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	var asked atomic.Int32
	tr := trustAll(t, &asked)
	var checks atomic.Int32
	check := func(addr string, id ed25519.PublicKey) error {
		checks.Add(1)
		return tr.Check(addr, id)
	}
	sess, err := client.Dial(ctx, client.Config{Addr: s.addr, CheckIdentity: check, FreshFor: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.Login(ctx, "alice-password"); err != nil {
		t.Fatal(err)
	}
	if n := checks.Load(); n != 1 {
		t.Errorf("fresh connection: %d identity checks, want 1", n)
	}

	sess2, err := client.Dial(ctx, client.Config{Addr: s.addr, CheckIdentity: check, FreshFor: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.Close()
	time.Sleep(150 * time.Millisecond)
	if _, err := sess2.Login(ctx, "bob-password"); err != nil {
		t.Fatal(err)
	}
	if n := checks.Load(); n != 3 {
		t.Errorf("stale connection: %d identity checks in all, want 3 (a new hello)", n)
	}
}

// The new hello before a late login checks the server's identity against
// the key pinned at first contact: another key is refused.
func TestLoginAfterServerClosedRefusesChangedKey(t *testing.T) {
	a := startServer(t, func(c *server.Config) { c.LoginTimeout = 200 * time.Millisecond })
	b := startServer(t)
	p := newSwitchProxy(t, a.addr)
	ctx := context.Background()
	var asked atomic.Int32
	tr := trustAll(t, &asked)
	sess, err := client.Dial(ctx, client.Config{Addr: p.addr(), CheckIdentity: tr.Check})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	p.target.Store(b.addr) // another server, another identity key
	testkit.WaitFor(t, "the connection to the moved server to drop", func() bool { return !sess.Connected() })
	_, err = sess.Login(ctx, "alice-password")
	var mismatch *client.KeyMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("login with a changed server key: got %v, want a key mismatch", err)
	}
	if !strings.Contains(err.Error(), "known_servers") {
		t.Errorf("the warning does not say how to remove the old entry: %v", err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("asked to trust a server %d times, want 1", n)
	}
}

// switchProxy forwards every new connection to target.
type switchProxy struct {
	ln     stdnet.Listener
	target atomic.Value // string
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	p := &switchProxy{}
	p.target.Store(target)
	p.ln = acceptLoop(t, func(c stdnet.Conn) { pipe(c, p.target.Load().(string)) })
	return p
}

// acceptLoop listens on loopback and hands every connection to handle,
// each in its own goroutine, until the test ends.
func acceptLoop(t *testing.T, handle func(stdnet.Conn)) stdnet.Listener {
	t.Helper()
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln
}

// pipe forwards c to target both ways until either side closes.
func pipe(c stdnet.Conn, target string) {
	pipeWith(c, target, func(c, up stdnet.Conn) { io.Copy(c, up) })
}

// pipeWith forwards what c sends to target, and has down carry what
// target sends back to c; both close when down returns.
func pipeWith(c stdnet.Conn, target string, down func(c, up stdnet.Conn)) {
	defer c.Close()
	up, err := stdnet.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { io.Copy(up, c); up.Close() }()
	down(c, up)
}

func (p *switchProxy) addr() string { return p.ln.Addr().String() }

// fullSource stands in front of target as a server whose source is full:
// the first refuse connections get the plain unavailable after their
// hello (PROTOCOL.md 4), the others are forwarded.
type fullSource struct {
	ln     stdnet.Listener
	refuse atomic.Int32
	conns  atomic.Int32
}

func newFullSource(t *testing.T, target string, refuse int32) *fullSource {
	t.Helper()
	p := &fullSource{}
	p.refuse.Store(refuse)
	p.ln = acceptLoop(t, func(c stdnet.Conn) {
		p.conns.Add(1)
		if p.refuse.Add(-1) < 0 {
			pipe(c, target)
			return
		}
		defer c.Close()
		if _, _, err := lnet.NewFrameReader(bufio.NewReader(c), lnet.DefaultMaxPortions).Next(); err != nil {
			return
		}
		lnet.NewEnvelopeWriter(c).WriteEnvelope(crypto.PlainError(
			[]byte(`{"op":"error","code":"unavailable","message":"too many connections from your address"}`)))
	})
	return p
}

// The real client and scripted chat against a real server behind a full
// source: the refusals are waited out, then every line goes out.
func TestScriptRetriesFullSourceAgainstRealServer(t *testing.T) {
	s := startServer(t)
	full := newFullSource(t, s.addr, 3)
	dir := t.TempDir()
	fp := crypto.Fingerprint(s.db.Identity().Public().(ed25519.PublicKey))
	dial := func(ctx context.Context, ask repl.AskTrust) (repl.Session, error) {
		known, err := client.LoadKnownServers(filepath.Join(dir, "known_servers"))
		if err != nil {
			return nil, err
		}
		sess, err := client.Dial(ctx, client.Config{Addr: full.ln.Addr().String(), CheckIdentity: client.Trust{Known: known, Pinned: fp}.Check})
		if err != nil {
			return nil, err
		}
		return sess, nil
	}
	cfg := repl.Config{Addr: full.ln.Addr().String(), Salon: "general", Poll: 300 * time.Millisecond, RetryDelay: 10 * time.Millisecond,
		Password: func() (string, error) { return "alice-password", nil }, PasswordSource: "test"}
	var errOut strings.Builder
	if err := repl.RunScript(context.Background(), cfg, dial, strings.NewReader("through\n"), io.Discard, &errOut); err != nil {
		t.Fatalf("%v (stderr %s)", err, errOut.String())
	}
	if n := full.conns.Load(); n != 4 {
		t.Errorf("%d connections, want 3 refused and 1 served", n)
	}
	if got := strings.Count(errOut.String(), "turned the connection away for now (too many connections from your address (unavailable))"); got != 3 {
		t.Errorf("%d refusals said, want 3:\n%s", got, errOut.String())
	}
	res, err := login(t, s, "bob").Fetch(context.Background(), client.FetchRequest{Salon: "general", Limit: 10})
	if err != nil || len(res.Messages) == 0 || res.Messages[0].Pseudo != "alice" || res.Messages[0].Text != "through" {
		t.Fatalf("general holds %+v, %v", res, err)
	}
}
