package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net"
	"librecord/net/chat"
	"librecord/net/server"
	"librecord/net/server/servertest"
	"librecord/net/testkit"
)

// Users of every fixture: pseudo -> password. alice and bob may open
// general and dev, carol only general.
var passwords = map[string]string{
	"alice": "alice-password-one",
	"bob":   "bob-password-two!",
	"carol": "carol-password-three",
}

// fixture is a real server on loopback over a real SQLite file.
type fixture struct {
	t      testing.TB
	path   string
	db     *db.DB
	store  *faultyStore
	srv    *server.Server
	cfg    server.Config
	addr   string
	served chan error
	logs   *testkit.Buffer
}

// testConfig is the default config with timings short enough for tests
// but long enough that a slow -race run never trips them by accident.
func testConfig() server.Config {
	cfg := server.DefaultConfig()
	cfg.LoginTimeout = 10 * time.Second
	cfg.WriteTimeout = 5 * time.Second
	cfg.Chat.SessionTimeout = 20 * time.Second
	// Every test client but those of the per-source tests comes from
	// 127.0.0.1, many at once.
	cfg.MaxPendingPerSource = 0
	return cfg
}

func newFixture(t testing.TB, mutate func(*server.Config)) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "librecord.db")
	d := servertest.NewDB(t, path)
	ctx := context.Background()
	if _, err := d.AddSalon(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	for pseudo, pw := range passwords {
		salons := []string{"general", "dev"}
		if pseudo == "carol" {
			salons = salons[:1]
		}
		if _, err := d.AddUser(ctx, pseudo, pw, salons); err != nil {
			t.Fatalf("add %s: %v", pseudo, err)
		}
	}
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	f := &fixture{t: t, path: path, cfg: cfg}
	f.start(d)
	t.Cleanup(f.stop)
	return f
}

// start runs a server over d on a fresh loopback port.
func (f *fixture) start(d *db.DB) {
	f.t.Helper()
	f.db = d
	f.store = &faultyStore{Store: d}
	f.logs = &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(f.store, d.Identity(), f.cfg, log)
	if err != nil {
		f.t.Fatalf("server.New: %v", err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv, f.addr, f.served = srv, ln.Addr().String(), make(chan error, 1)
	go func() { f.served <- srv.Serve(ln) }()
}

// stop shuts the server down and closes the database; safe to call twice.
func (f *fixture) stop() {
	if f.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		f.t.Errorf("shutdown: %v", err)
	}
	if err := <-f.served; !errors.Is(err, server.ErrServerClosed) {
		f.t.Errorf("Serve returned %v", err)
	}
	if err := f.db.Close(); err != nil {
		f.t.Errorf("close database: %v", err)
	}
	f.srv = nil
	for _, secret := range passwords {
		if strings.Contains(f.logs.String(), secret) {
			f.t.Errorf("a password appears in the server log")
		}
	}
}

// restart stops the server and starts a new one on the same file.
func (f *fixture) restart() {
	f.t.Helper()
	f.stop()
	f.start(servertest.NewDB(f.t, f.path))
}

// faultyStore is the real database with switchable storage failures.
type faultyStore struct {
	chat.Store
	mu         sync.Mutex
	failWrites error
	failReads  error
	commits    int           // InsertMessages calls that reached the database
	stored     int           // messages they carried
	gate       chan struct{} // when set, InsertMessages waits for it to close
	entered    chan struct{} // receives once per InsertMessages call held by gate
	authGate   chan struct{} // when set, Authenticate waits for it or its ctx
	authIn     chan struct{} // receives once per Authenticate call held by authGate
	validGate  chan struct{} // when set, the next Valid call waits for it to close
	validIn    chan struct{} // receives when that call waits
}

// holdNextValid makes the next credential check that reaches the
// database (the hub's cache missed) wait until the returned function is
// called; entered reports when it waits.
func (s *faultyStore) holdNextValid() (entered <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.validGate, s.validIn = make(chan struct{}), make(chan struct{}, 1)
	gate := s.validGate
	return s.validIn, func() { close(gate) }
}

func (s *faultyStore) Valid(ctx context.Context, c db.Credential) (bool, error) {
	s.mu.Lock()
	gate, entered := s.validGate, s.validIn
	s.validGate = nil
	s.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	return s.Store.Valid(ctx, c)
}

// Changes is the change counter, or the read failure set.
func (s *faultyStore) Changes(ctx context.Context) (int64, error) {
	if _, r := s.failures(); r != nil {
		return 0, r
	}
	return s.Store.Changes(ctx)
}

// holdLogins makes the next Authenticate calls wait, as for a password
// hash slot, until the returned function is called or their context ends;
// entered reports each call that waits.
func (s *faultyStore) holdLogins() (entered <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authGate, s.authIn = make(chan struct{}), make(chan struct{}, 100)
	gate := s.authGate
	return s.authIn, func() { close(gate) }
}

func (s *faultyStore) Authenticate(ctx context.Context, password string) (db.Credential, error) {
	s.mu.Lock()
	gate, entered := s.authGate, s.authIn
	s.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return db.Credential{}, ctx.Err()
		}
	}
	return s.Store.Authenticate(ctx, password)
}

// holdWrites makes the next InsertMessages calls wait until the returned
// function is called; entered reports each call that waits.
func (s *faultyStore) holdWrites() (entered <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 100)
	gate := s.gate
	return s.entered, func() { close(gate) }
}

func (s *faultyStore) setFailures(writes, reads error) {
	s.mu.Lock()
	s.failWrites, s.failReads = writes, reads
	s.mu.Unlock()
}

func (s *faultyStore) failures() (error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failWrites, s.failReads
}

func (s *faultyStore) InsertMessages(ctx context.Context, msgs []db.NewMessage) ([]db.Stored, error) {
	if w, _ := s.failures(); w != nil {
		return nil, w
	}
	s.mu.Lock()
	gate, entered := s.gate, s.entered
	s.commits++
	s.stored += len(msgs)
	s.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	return s.Store.InsertMessages(ctx, msgs)
}

func (s *faultyStore) AfterWithin(ctx context.Context, salonID, id int64, limit int, b db.Budget) ([]db.Message, bool, error) {
	if _, r := s.failures(); r != nil {
		return nil, false, r
	}
	return s.Store.AfterWithin(ctx, salonID, id, limit, b)
}

// ---- a raw client, written from PROTOCOL.md with the crypto and frame APIs

// answer is one envelope from the server.
type answer struct {
	kind byte           // 'S' sealed, 'E' plain error, 'H' hello
	body map[string]any // decoded JSON (numbers as json.Number)
	raw  []byte
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

func (a answer) num(k string) int64 {
	n, ok := a.body[k].(json.Number)
	if !ok {
		return -1
	}
	v, _ := n.Int64()
	return v
}

func (a answer) has(k string) bool { _, ok := a.body[k]; return ok }

func (a answer) String() string { return fmt.Sprintf("%c %s", a.kind, a.raw) }

// tb is what the client needs of a test; goT provides it to goroutines,
// which must not call t.Fatal.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// goT turns a goroutine's fatal failure into an error on errs and ends
// the goroutine.
type goT struct {
	testing.TB
	errs chan<- error
}

func (g goT) Fatal(args ...any) { g.errs <- errors.New(fmt.Sprint(args...)); runtime.Goexit() }

func (g goT) Fatalf(format string, args ...any) {
	g.errs <- fmt.Errorf(format, args...)
	runtime.Goexit()
}

type client struct {
	t      tb
	nc     stdnet.Conn
	fr     *net.FrameReader
	ch     *crypto.Channel
	nextID int64
	sent   int              // portions of the last frame written
	stash  map[int64]answer // answers read while waiting for another
}

func dial(t tb, addr string) *client {
	return dialMax(t, addr, 0)
}

// dialMax reads frames of at most maxPortions portions (0: the default).
func dialMax(t tb, addr string, maxPortions int) *client {
	t.Helper()
	nc, err := stdnet.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, fr: net.NewFrameReader(bufio.NewReader(nc), maxPortions), stash: map[int64]answer{}}
}

// redial dials a new connection that carries c's session keys and counters.
func (c *client) redial(addr string) *client {
	n := dial(c.t, addr)
	n.ch, n.nextID = c.ch, c.nextID
	return n
}

func (c *client) writeRaw(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) writeFrame(payload []byte) {
	c.t.Helper()
	c.sent = net.EncodedPortions(len(payload))
	c.writeRaw(string(net.AppendFrame(nil, payload)))
}

func (c *client) hello() {
	c.t.Helper()
	keys := crypto.NewSessionKeys()
	ch := keys.ClientHello()
	c.writeFrame(ch)
	a := c.read()
	if a.kind != 'H' {
		c.t.Fatalf("want server hello, got %v", a)
	}
	peer, _, err := crypto.ParseServerHello(a.raw, ch)
	if err != nil {
		c.t.Fatalf("server hello: %v", err)
	}
	c.ch = crypto.NewChannel(keys, peer)
}

// read returns the next envelope, failing the test after 10 s.
func (c *client) read() answer {
	c.t.Helper()
	a, err := c.tryRead(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return a
}

func (c *client) tryRead(wait time.Duration) (answer, error) {
	c.nc.SetReadDeadline(time.Now().Add(wait))
	payload, _, err := c.fr.Next()
	if err != nil {
		return answer{}, err
	}
	a := answer{kind: payload[0]}
	switch payload[0] {
	case 'H':
		a.raw = append([]byte(nil), payload...)
		return a, nil
	case 'E':
		a.raw, err = crypto.ParsePlainError(payload)
		a.raw = append([]byte(nil), a.raw...)
	case 'S':
		if c.ch == nil {
			return a, errors.New("sealed envelope before any hello")
		}
		a.raw, err = c.ch.Open(payload)
	default:
		return a, fmt.Errorf("unknown envelope kind %q", payload[0])
	}
	if err != nil {
		return a, err
	}
	dec := json.NewDecoder(bytes.NewReader(a.raw))
	dec.UseNumber()
	if err := dec.Decode(&a.body); err != nil {
		return a, fmt.Errorf("answer body %q: %v", a.raw, err)
	}
	return a, nil
}

// expectClosed waits for the server to close the connection, skipping
// envelopes still in flight.
func (c *client) expectClosed() {
	c.t.Helper()
	for range 100 {
		_, err := c.tryRead(10 * time.Second)
		if err == nil {
			continue
		}
		var ne stdnet.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("connection still open")
		}
		return
	}
	c.t.Fatal("connection still open after 100 envelopes")
}

// sealRaw seals any body, valid JSON or not.
func (c *client) sealRaw(body string) []byte { return c.ch.Seal([]byte(body)) }

// request sends op with fields and the next id; it returns the id.
func (c *client) request(op string, fields map[string]any) int64 {
	c.t.Helper()
	c.nextID++
	m := map[string]any{"op": op, "id": c.nextID}
	for k, v := range fields {
		m[k] = v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		c.t.Fatal(err)
	}
	c.writeFrame(c.sealRaw(strings.TrimSpace(b.String())))
	return c.nextID
}

// await returns the answer to request id, keeping others for later.
func (c *client) await(id int64) answer {
	c.t.Helper()
	if a, ok := c.stash[id]; ok {
		delete(c.stash, id)
		return a
	}
	for {
		a := c.read()
		re := a.num("re")
		if re == id {
			return a
		}
		if re <= 0 {
			c.t.Fatalf("answer without re while awaiting %d: %v", id, a)
		}
		c.stash[re] = a
	}
}

// resume sends a resume and returns the next envelope, which may be a
// plain error without re.
func (c *client) resume() answer {
	c.t.Helper()
	c.request("resume", nil)
	return c.read()
}

func (c *client) call(op string, fields map[string]any) answer {
	c.t.Helper()
	return c.await(c.request(op, fields))
}

// login says hello and logs in as pseudo.
func login(t tb, addr, pseudo string) *client {
	t.Helper()
	c := dial(t, addr)
	c.hello()
	a := c.call("login", map[string]any{"password": passwords[pseudo]})
	if a.str("op") != "connected" || a.str("status") != "CONNECTÉ" || a.str("pseudo") != pseudo {
		t.Fatalf("login %s: %v", pseudo, a)
	}
	return c
}

var cidCounter struct {
	sync.Mutex
	n int
}

func newCid() string {
	cidCounter.Lock()
	defer cidCounter.Unlock()
	cidCounter.n++
	return fmt.Sprintf("cid-%d-%d", time.Now().UnixNano(), cidCounter.n)
}

// send sends text to salon and returns the acked message id.
func (c *client) send(salon, text string) int64 {
	c.t.Helper()
	a := c.call("send", map[string]any{"salon": salon, "text": text, "cid": newCid()})
	if a.str("op") != "ack" || a.num("msg") <= 0 {
		c.t.Fatalf("send: %v", a)
	}
	return a.num("msg")
}

// message is one message of a messages answer.
type message struct {
	ID     int64
	At     string
	Pseudo string
	System bool
	Text   string
}

func messages(t tb, a answer) []message {
	t.Helper()
	if a.str("op") != "messages" {
		t.Fatalf("want messages, got %v", a)
	}
	var body struct{ Messages []message }
	if err := json.Unmarshal(a.raw, &body); err != nil {
		t.Fatal(err)
	}
	return body.Messages
}

// wantError checks an error answer's code and whether it carries re.
func wantError(t tb, a answer, kind byte, code string, re int64) {
	t.Helper()
	if a.kind != kind || a.str("op") != "error" || a.str("code") != code || a.str("message") == "" {
		t.Fatalf("want %c error %s, got %v", kind, code, a)
	}
	if re == 0 && a.has("re") {
		t.Fatalf("error %s should carry no re: %v", code, a)
	}
	if re != 0 && a.num("re") != re {
		t.Fatalf("error %s should carry re %d: %v", code, re, a)
	}
}
