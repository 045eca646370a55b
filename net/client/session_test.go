package client

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	stdnet "net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"librecord/crypto"
	lnet "librecord/net"
)

// fakeServer speaks the server side of the protocol well enough to test
// the client: hellos, sealed bodies, resume, and a handler per request.
type fakeServer struct {
	t        *testing.T
	ln       stdnet.Listener
	identity ed25519.PrivateKey

	mu       sync.Mutex
	sessions map[[8]byte]*crypto.Channel
	conns    []stdnet.Conn
	requests []map[string]any
	// handle answers a request; reply may be called later, from another
	// goroutine (a parked fetch).
	handle func(req map[string]any, reply func(map[string]any))
	// raw, when set, replaces the sealed answer of the next request with
	// these bytes as a frame payload.
	raw []byte
	// refuseHellos: answer this many hellos with the plain error
	// helloRefusal (default: unavailable, a full source) and close.
	refuseHellos int
	helloRefusal []byte
	hellos       int // hellos received
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	id := crypto.NewIdentity()
	s := &fakeServer{t: t, ln: ln, identity: id, sessions: map[[8]byte]*crypto.Channel{}}
	s.handle = s.defaultHandle
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.dropAll()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *fakeServer) forgetSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = map[[8]byte]*crypto.Channel{}
}

func (s *fakeServer) seen() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.requests...)
}

func (s *fakeServer) defaultHandle(req map[string]any, reply func(map[string]any)) {
	id := req["id"]
	switch req["op"] {
	case "login":
		if req["password"] != "right" {
			reply(map[string]any{"op": "error", "re": id, "code": "auth", "message": "wrong password"})
			return
		}
		reply(map[string]any{"op": "connected", "re": id, "status": "CONNECTÉ", "pseudo": "alice",
			"salons": []string{"general", "dev"}, "session_timeout_ms": 30000, "poll_ms": 3000})
	case "send":
		reply(map[string]any{"op": "ack", "re": id, "msg": 42, "portions": 1})
	case "fetch":
		reply(map[string]any{"op": "messages", "re": id, "salon": req["salon"], "more": false,
			"messages": []map[string]any{{"id": 41, "at": "2026-11-25T10:00:00.123Z", "pseudo": "bob", "text": "salut"}}})
	case "salons":
		reply(map[string]any{"op": "salons", "re": id, "salons": []map[string]any{{"name": "general", "last": 41}}})
	case "who":
		reply(map[string]any{"op": "who", "re": id, "salon": req["salon"], "pseudos": []string{"alice", "bob"}})
	case "bye":
		reply(map[string]any{"op": "bye", "re": id})
	default:
		reply(map[string]any{"op": "error", "re": id, "code": "bad_request", "message": "unknown op"})
	}
}

func (s *fakeServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *fakeServer) serve(c stdnet.Conn) {
	defer c.Close()
	fr := lnet.NewFrameReader(bufio.NewReader(c), lnet.DefaultMaxPortions)
	ew := lnet.NewEnvelopeWriter(c)
	payload, _, err := fr.Next()
	if err != nil {
		return
	}
	var ch *crypto.Channel
	first := append([]byte(nil), payload...)
	switch first[0] {
	case crypto.KindHello:
		peer, err := crypto.ParseClientHello(first)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.hellos++
		refuse := s.refuseHellos > 0
		if refuse {
			s.refuseHellos--
		}
		refusal := s.helloRefusal
		s.mu.Unlock()
		if refuse {
			if refusal == nil {
				refusal = []byte(`{"op":"error","code":"unavailable","message":"too many connections from your address"}`)
			}
			ew.WriteEnvelope(crypto.PlainError(refusal))
			return
		}
		keys := crypto.NewSessionKeys()
		ew.WriteEnvelope(keys.ServerHello(s.identity, first))
		ch = crypto.NewChannel(keys, peer)
		s.mu.Lock()
		s.sessions[ch.PeerSignerID()] = ch
		s.mu.Unlock()
	case crypto.KindSealed:
		signer, _ := crypto.EnvelopeSignerID(first)
		s.mu.Lock()
		ch = s.sessions[signer]
		s.mu.Unlock()
		if ch == nil {
			ew.WriteEnvelope(crypto.PlainError([]byte(`{"op":"error","code":"unknown_session","message":"no such session"}`)))
			return
		}
		body, err := ch.Open(first)
		if err != nil {
			ew.WriteEnvelope(crypto.PlainError([]byte(`{"op":"error","code":"crypto","message":"rejected"}`)))
			return
		}
		var req map[string]any
		json.Unmarshal(body, &req)
		s.record(req)
		ew.WriteSealed(ch, mustJSON(map[string]any{"op": "resumed", "re": req["id"], "status": "CONNECTÉ"}))
	default:
		return
	}
	for {
		payload, _, err := fr.Next()
		if err != nil {
			return
		}
		body, err := ch.Open(payload)
		if err != nil {
			return
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			return
		}
		s.record(req)
		s.mu.Lock()
		raw := s.raw
		s.raw = nil
		s.mu.Unlock()
		if raw != nil {
			ew.WriteEnvelope(raw)
			continue
		}
		s.handle(req, func(resp map[string]any) { ew.WriteSealed(ch, mustJSON(resp)) })
	}
}

func (s *fakeServer) record(req map[string]any) {
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func trustAll(t *testing.T) func(string, ed25519.PublicKey) error {
	known, err := LoadKnownServers(filepath.Join(t.TempDir(), "known_servers"))
	if err != nil {
		t.Fatal(err)
	}
	return Trust{Known: known, Ask: func(string, string) (bool, error) { return true, nil }}.Check
}

func dialFake(t *testing.T, s *fakeServer, cfg Config) *Session {
	t.Helper()
	cfg.Addr = s.addr()
	if cfg.CheckIdentity == nil {
		cfg.CheckIdentity = trustAll(t)
	}
	sess, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	return sess
}

func TestLogin(t *testing.T) {
	s := newFakeServer(t)
	sess := dialFake(t, s, Config{})
	ctx := context.Background()
	t.Run("ErrAuthKeepsSession", func(t *testing.T) {
		_, err := sess.Login(ctx, "wrong")
		if !IsCode(err, lnet.CodeAuth) {
			t.Fatalf("got %v, want auth error", err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		info, err := sess.Login(ctx, "right")
		if err != nil {
			t.Fatal(err)
		}
		if info.Pseudo != "alice" || len(info.Salons) != 2 || info.Poll != 3*time.Second || info.SessionTimeout != 30*time.Second {
			t.Errorf("info %+v", info)
		}
	})
	t.Run("RequestIDsIncrease", func(t *testing.T) {
		var last float64
		for _, r := range s.seen() {
			id := r["id"].(float64)
			if id <= last {
				t.Errorf("id %v after %v", id, last)
			}
			last = id
		}
	})
}

func TestLoginStatusMustBeExact(t *testing.T) {
	s := newFakeServer(t)
	s.handle = func(req map[string]any, reply func(map[string]any)) {
		reply(map[string]any{"op": "connected", "re": req["id"], "status": "CONNECTE", "pseudo": "alice", "salons": []string{}})
	}
	sess := dialFake(t, s, Config{})
	_, err := sess.Login(context.Background(), "right")
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a protocol error for a status without É", err)
	}
}

func TestRequestsEncodeWithoutHTMLEscaping(t *testing.T) {
	s := newFakeServer(t)
	sess := dialFake(t, s, Config{})
	if _, err := sess.Send(context.Background(), "general", "a <b> & c", "cid-1"); err != nil {
		t.Fatal(err)
	}
	got := (&lnet.Request{Op: "send", ID: 1, Text: "<&>"}).Encode()
	if !strings.Contains(string(got), `"text":"<&>"`) {
		t.Errorf("encoded %s", got)
	}
	reqs := s.seen()
	if reqs[len(reqs)-1]["text"] != "a <b> & c" || reqs[len(reqs)-1]["cid"] != "cid-1" {
		t.Errorf("server saw %v", reqs[len(reqs)-1])
	}
}

// A parked fetch is answered after later requests: answers are matched by
// re, not by order.
func TestAnswersOutOfOrder(t *testing.T) {
	s := newFakeServer(t)
	release := make(chan struct{})
	s.handle = func(req map[string]any, reply func(map[string]any)) {
		if req["op"] == "fetch" {
			go func() {
				<-release
				s.defaultHandle(req, reply)
			}()
			return
		}
		s.defaultHandle(req, reply)
	}
	sess := dialFake(t, s, Config{})
	ctx := context.Background()
	fetched := make(chan error, 1)
	go func() {
		_, err := sess.Fetch(ctx, FetchRequest{Salon: "general", After: 40, HasAfter: true, Wait: 2 * time.Second})
		fetched <- err
	}()
	who, err := sess.Who(ctx, "general")
	if err != nil || strings.Join(who, ",") != "alice,bob" {
		t.Fatalf("who %v %v", who, err)
	}
	select {
	case err := <-fetched:
		t.Fatalf("fetch answered before release: %v", err)
	default:
	}
	close(release)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	var fetchReq map[string]any
	for _, r := range s.seen() {
		if r["op"] == "fetch" {
			fetchReq = r
		}
	}
	if fetchReq["wait_ms"] != float64(2000) || fetchReq["after"] != float64(40) {
		t.Errorf("fetch request %v", fetchReq)
	}
}

// A fetch unanswered past its wait plus the reply margin means a dead
// connection (PROTOCOL.md 5).
func TestSilentFetchIsLostConnection(t *testing.T) {
	s := newFakeServer(t)
	s.handle = func(req map[string]any, reply func(map[string]any)) {
		if req["op"] != "fetch" {
			s.defaultHandle(req, reply)
		}
	}
	sess := dialFake(t, s, Config{ReplyMargin: 50 * time.Millisecond})
	_, err := sess.Fetch(context.Background(), FetchRequest{Salon: "general", After: 1, HasAfter: true, Wait: 20 * time.Millisecond})
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("got %v, want ErrConnLost", err)
	}
	if sess.Connected() {
		t.Error("still connected after a silent fetch")
	}
	if _, err := sess.Who(context.Background(), "general"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("request after loss: %v", err)
	}
}

// A login answered later than the reply margin but within the login
// timeout succeeds: the server may be hashing a burst of passwords (after
// a restart). Other requests keep the reply margin.
func TestSlowLoginWithinLoginTimeout(t *testing.T) {
	s := newFakeServer(t)
	s.handle = func(req map[string]any, reply func(map[string]any)) {
		switch req["op"] {
		case "login":
			time.AfterFunc(300*time.Millisecond, func() { s.defaultHandle(req, reply) })
		case "who":
			// never answered
		default:
			s.defaultHandle(req, reply)
		}
	}
	sess := dialFake(t, s, Config{ReplyMargin: 50 * time.Millisecond, LoginTimeout: 5 * time.Second})
	start := time.Now()
	info, err := sess.Login(context.Background(), "right")
	if err != nil {
		t.Fatalf("slow login: %v", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || info.Pseudo != "alice" {
		t.Errorf("login took %v, info %+v", took, info)
	}
	if _, err := sess.Who(context.Background(), "general"); !errors.Is(err, ErrConnLost) {
		t.Errorf("silent who: %v, want ErrConnLost after the reply margin", err)
	}
}

// A login unanswered past the login timeout means a dead connection.
func TestSilentLoginIsLostConnection(t *testing.T) {
	s := newFakeServer(t)
	s.handle = func(req map[string]any, reply func(map[string]any)) {
		if req["op"] != "login" {
			s.defaultHandle(req, reply)
		}
	}
	sess := dialFake(t, s, Config{ReplyMargin: 20 * time.Millisecond, LoginTimeout: 150 * time.Millisecond})
	start := time.Now()
	_, err := sess.Login(context.Background(), "right")
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("got %v, want ErrConnLost", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("gave up after %v, before the login timeout", took)
	}
	if sess.Connected() {
		t.Error("still connected after a silent login")
	}
}

// The login timeout defaults to 30 s and is never shorter than the reply
// margin.
func TestLoginTimeoutDefaults(t *testing.T) {
	for _, tc := range []struct{ in, want Config }{
		{Config{}, Config{ReplyMargin: 5 * time.Second, LoginTimeout: DefaultLoginTimeout}},
		{Config{ReplyMargin: time.Minute}, Config{ReplyMargin: time.Minute, LoginTimeout: time.Minute}},
		{Config{LoginTimeout: time.Second}, Config{ReplyMargin: 5 * time.Second, LoginTimeout: 5 * time.Second}},
		{Config{ReplyMargin: time.Second, LoginTimeout: 2 * time.Second}, Config{ReplyMargin: time.Second, LoginTimeout: 2 * time.Second}},
	} {
		got := tc.in
		got.defaults()
		if got.ReplyMargin != tc.want.ReplyMargin || got.LoginTimeout != tc.want.LoginTimeout {
			t.Errorf("%+v: got margin %v login %v, want %v %v", tc.in, got.ReplyMargin, got.LoginTimeout,
				tc.want.ReplyMargin, tc.want.LoginTimeout)
		}
	}
}

// An envelope failing the crypto checks is dropped and the connection
// closed (PROTOCOL.md 2.2).
func TestForgedEnvelopeClosesConnection(t *testing.T) {
	s := newFakeServer(t)
	sess := dialFake(t, s, Config{})
	forged := make([]byte, 100)
	forged[0], forged[1] = crypto.KindSealed, crypto.ProtocolVersion
	s.mu.Lock()
	s.raw = forged
	s.mu.Unlock()
	_, err := sess.Who(context.Background(), "general")
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("got %v, want ErrConnLost", err)
	}
}

func TestResume(t *testing.T) {
	s := newFakeServer(t)
	sess := dialFake(t, s, Config{})
	ctx := context.Background()
	if _, err := sess.Login(ctx, "right"); err != nil {
		t.Fatal(err)
	}
	s.dropAll()
	// The loss shows on the next request (or at once, through the reader).
	deadline := time.Now().Add(5 * time.Second)
	for sess.Connected() && time.Now().Before(deadline) {
		sess.Who(ctx, "general")
	}
	t.Run("OK", func(t *testing.T) {
		if err := sess.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := sess.Send(ctx, "general", "after resume", "c2"); err != nil {
			t.Fatalf("send after resume: %v", err)
		}
	})
	t.Run("ErrUnknownSession", func(t *testing.T) {
		s.forgetSessions()
		s.dropAll()
		err := sess.Resume(ctx)
		if !IsCode(err, lnet.CodeUnknownSession) {
			t.Fatalf("got %v, want unknown_session", err)
		}
	})
	t.Run("ErrClosedAfterBye", func(t *testing.T) {
		sess.Close()
		if err := sess.Resume(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v", err)
		}
		if _, err := sess.Who(ctx, "general"); !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestBye(t *testing.T) {
	s := newFakeServer(t)
	sess := dialFake(t, s, Config{})
	if err := sess.Bye(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sess.isErased() {
		t.Error("keys not erased after bye")
	}
	reqs := s.seen()
	if reqs[len(reqs)-1]["op"] != "bye" {
		t.Errorf("last request %v", reqs[len(reqs)-1])
	}
}

func TestTrust(t *testing.T) {
	s := newFakeServer(t)
	fp := crypto.Fingerprint(s.identity.Public().(ed25519.PublicKey))
	other := crypto.NewIdentity()
	otherFP := crypto.Fingerprint(other.Public().(ed25519.PublicKey))
	path := filepath.Join(t.TempDir(), "known_servers")
	load := func() *KnownServers {
		k, err := LoadKnownServers(path)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	dial := func(tr Trust) error {
		sess, err := Dial(context.Background(), Config{Addr: s.addr(), CheckIdentity: tr.Check})
		if err == nil {
			sess.Close()
		}
		return err
	}
	t.Run("ErrNobodyToAsk", func(t *testing.T) {
		err := dial(Trust{Known: load()})
		var u *UnknownServerError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), "--trust "+fp) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ErrDeclined", func(t *testing.T) {
		asked := ""
		err := dial(Trust{Known: load(), Ask: func(a, f string) (bool, error) { asked = f; return false, nil }})
		if !errors.Is(err, ErrNotTrusted) || asked != fp {
			t.Fatalf("got %v, asked %q", err, asked)
		}
	})
	t.Run("ErrPinnedMismatch", func(t *testing.T) {
		err := dial(Trust{Known: load(), Pinned: otherFP})
		var pm *PinnedMismatchError
		if !errors.As(err, &pm) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("PinnedRecorded", func(t *testing.T) {
		if err := dial(Trust{Known: load(), Pinned: fp}); err != nil {
			t.Fatal(err)
		}
		if err := dial(Trust{Known: load()}); err != nil {
			t.Fatalf("known server refused: %v", err)
		}
	})
	t.Run("ErrChangedKey", func(t *testing.T) {
		k := load()
		if err := k.Remove(s.addr()); err != nil {
			t.Fatal(err)
		}
		if err := k.Add(s.addr(), other.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
		err := dial(Trust{Known: load(), Ask: func(string, string) (bool, error) { return true, nil }})
		var km *KeyMismatchError
		if !errors.As(err, &km) || !strings.Contains(err.Error(), path) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestPinnedIs(t *testing.T) {
	const fp = "SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw"
	for _, tc := range []struct {
		pinned string
		want   bool
	}{
		{fp, true},
		{fp + "=", true},
		{" " + fp + "\n", true},
		{"SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIx", false},
		{"junk", false},
		{"", false},
	} {
		if got := pinnedIs(tc.pinned, fp); got != tc.want {
			t.Errorf("pinnedIs(%q) = %v, want %v", tc.pinned, got, tc.want)
		}
	}
}
