package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/testkit"
)

// hub is an in-memory server for the REPL tests: salons, messages, cid
// dedup, long-poll wake-ups, and switches to cut the network or forget
// sessions.
type hub struct {
	mu        sync.Mutex
	msgs      map[string][]lnet.Message
	nextID    int64
	cids      map[string]int64
	wake      chan struct{}
	down      bool
	live      map[*fakeSess]bool
	rateLimit int             // answer rate_limited to this many sends
	forbidden map[string]bool // salons nobody may write in
	dropAck   int             // store, then lose the connection instead of acking, this many times
	password  string
	salons    []string
	logins    int
	byes      int
	stored    []string // texts in store order
	attempts  []string // "cid text" of every send that reached the hub
	gen       int      // bumped when alice's password changes: sessions end
	hideAbove int64    // when set, fetches leave out messages with a higher id
	lastAt    time.Time
	// refuseDials: answer this many dials with the plain unavailable of
	// a full source; refuseLogins: answer this many logins with
	// refuseLoginErr (default rate_limited "too many sessions").
	refuseDials    int
	refuseLogins   int
	refuseLoginErr error
	// passwdErr: a passwd changes the password, then fails with it
	// (client.ErrConnLost: the connection is lost and the answer with it,
	// as client.Session.Passwd reports once it could not resume in time).
	passwdErr  error
	dials      int // dials that reached the hub
	loginTries int // logins that reached the hub
}

func newHub() *hub {
	return &hub{
		msgs: map[string][]lnet.Message{}, cids: map[string]int64{}, wake: make(chan struct{}),
		live: map[*fakeSess]bool{}, forbidden: map[string]bool{}, password: "right",
		salons: []string{"general", "dev"},
	}
}

// kick wakes every parked fetch. Call with mu held.
func (h *hub) kick() {
	close(h.wake)
	h.wake = make(chan struct{})
}

// post stores a message by someone else.
func (h *hub) post(salon, pseudo, text string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.store(salon, pseudo, text)
}

func (h *hub) store(salon, pseudo, text string) int64 {
	h.nextID++
	// The server's clock, to the millisecond, never twice the same here
	// (the tests tell messages apart by time across a restore).
	at := time.Now().UTC().Truncate(time.Millisecond)
	if !at.After(h.lastAt) {
		at = h.lastAt.Add(time.Millisecond)
	}
	h.lastAt = at
	h.msgs[salon] = append(h.msgs[salon], lnet.Message{
		ID: h.nextID, At: at.Format("2006-01-02T15:04:05.000Z"), Pseudo: pseudo, Text: text})
	if pseudo == "alice" {
		h.stored = append(h.stored, text)
	}
	h.kick()
	return h.nextID
}

func (h *hub) setDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
	if down {
		for s := range h.live {
			s.connected = false
		}
	}
	h.kick()
}

func (h *hub) forget() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live = map[*fakeSess]bool{}
}

// hubBackup is what `librecord backup` keeps: the messages, the id
// sequence and the cids.
type hubBackup struct {
	msgs   map[string][]lnet.Message
	nextID int64
	cids   map[string]int64
}

func (h *hub) backup() hubBackup {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := hubBackup{msgs: map[string][]lnet.Message{}, nextID: h.nextID, cids: map[string]int64{}}
	for k, v := range h.msgs {
		b.msgs[k] = append([]lnet.Message(nil), v...)
	}
	for k, v := range h.cids {
		b.cids[k] = v
	}
	return b
}

// restore is the host restoring b: the server stops (every session ends),
// the older file goes in place, the server starts again. New messages get
// ids from the backup's sequence on: ids the clients have already seen.
func (h *hub) restore(b hubBackup) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = map[string][]lnet.Message{}
	for k, v := range b.msgs {
		h.msgs[k] = append([]lnet.Message(nil), v...)
	}
	h.cids = map[string]int64{}
	for k, v := range b.cids {
		h.cids[k] = v
	}
	h.nextID = b.nextID
	h.hideAbove = 0
	for s := range h.live {
		s.connected = false
	}
	h.live = map[*fakeSess]bool{}
	h.kick()
}

// texts returns the texts of salon's messages, oldest first.
func (h *hub) texts(salon string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.msgs[salon] {
		out = append(out, m.Text)
	}
	return out
}

// resetPassword is `librecord user reset-password alice`: her sessions
// get auth at their next request, and end.
func (h *hub) resetPassword(pw string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.password = pw
	h.gen++
	h.kick()
}

// removeUser is `librecord user remove alice`: no salon, no login.
func (h *hub) removeUser() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.password = "\x00removed"
	h.salons = nil
	h.gen++
	h.kick()
}

// setSalons is `librecord salon grant/revoke`: the salons alice may open.
func (h *hub) setSalons(salons ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.salons = salons
	h.kick()
}

// allowed reports whether alice may open salon. Call with mu held.
func (h *hub) allowed(salon string) bool { return canonical(h.salons, salon) != "" }

func (h *hub) sendAttempts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.attempts...)
}

func (h *hub) storedTexts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.stored...)
}

func (h *hub) dial(ctx context.Context, ask AskTrust) (Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return nil, errors.New("connect: connection refused")
	}
	h.dials++
	if h.refuseDials > 0 {
		h.refuseDials--
		return nil, &client.ServerError{Code: lnet.CodeUnavailable, Message: "too many connections from your address"}
	}
	s := &fakeSess{h: h, connected: true}
	h.live[s] = true
	return s, nil
}

type fakeSess struct {
	h         *hub
	connected bool
	loggedIn  bool
	closed    bool
	gen       int
}

var errRefused = errors.New("connection refused")

// check returns the error of a request on s. Call with h.mu held.
func (s *fakeSess) check() error {
	switch {
	case s.closed:
		return client.ErrClosed
	case s.h.down || !s.connected:
		s.connected = false
		return client.ErrConnLost
	case !s.h.live[s]:
		return client.ErrConnLost
	case s.loggedIn && s.gen != s.h.gen:
		// The server ends the session and closes the connection.
		delete(s.h.live, s)
		s.connected = false
		return &client.ServerError{Code: lnet.CodeAuth, Message: "your account or password changed: log in again"}
	}
	return nil
}

// forbidden is the answer to a salon alice may not open.
var errForbidden = &client.ServerError{Code: lnet.CodeForbidden, Message: "no access to salon"}

func (s *fakeSess) Login(ctx context.Context, password string) (client.LoginInfo, error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := s.check(); err != nil {
		return client.LoginInfo{}, err
	}
	h.loginTries++
	if h.refuseLogins > 0 {
		h.refuseLogins--
		if h.refuseLoginErr != nil {
			return client.LoginInfo{}, h.refuseLoginErr
		}
		return client.LoginInfo{}, &client.ServerError{Code: lnet.CodeRateLimited, Message: "too many sessions"}
	}
	if password != h.password {
		return client.LoginInfo{}, &client.ServerError{Code: lnet.CodeAuth, Message: "wrong password"}
	}
	h.logins++
	s.loggedIn = true
	s.gen = h.gen
	return client.LoginInfo{Pseudo: "alice", Salons: append([]string(nil), h.salons...),
		SessionTimeout: 30 * time.Second, Poll: 3 * time.Second}, nil
}

func (s *fakeSess) Send(ctx context.Context, salon, text, cid string) (client.Ack, error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := s.check(); err != nil {
		return client.Ack{}, err
	}
	h.attempts = append(h.attempts, cid+" "+text)
	if h.forbidden[salon] || !h.allowed(salon) {
		return client.Ack{}, errForbidden
	}
	id, dup := h.cids[cid]
	if !dup {
		if h.rateLimit > 0 {
			h.rateLimit--
			return client.Ack{}, &client.ServerError{Code: lnet.CodeRateLimited, Message: "slow down"}
		}
		id = h.store(salon, "alice", text)
		h.cids[cid] = id
	}
	if h.dropAck > 0 {
		h.dropAck--
		s.connected = false
		return client.Ack{}, client.ErrConnLost
	}
	return client.Ack{Msg: id, Portions: 1}, nil
}

func (s *fakeSess) Fetch(ctx context.Context, f client.FetchRequest) (client.Messages, error) {
	h := s.h
	deadline := time.Now().Add(f.Wait)
	for woken := false; ; woken = true {
		h.mu.Lock()
		// Like the server: a request checks the credential, then access;
		// a parked fetch that wakes checks access first.
		var err error
		if woken && !h.allowed(f.Salon) && !s.closed && s.connected && !h.down && h.live[s] {
			err = errForbidden
		} else if err = s.check(); err == nil && !h.allowed(f.Salon) {
			err = errForbidden
		}
		if err != nil {
			h.mu.Unlock()
			return client.Messages{}, err
		}
		var all []lnet.Message
		for _, m := range h.msgs[f.Salon] {
			if h.hideAbove == 0 || m.ID <= h.hideAbove {
				all = append(all, m)
			}
		}
		var out []lnet.Message
		more := false
		limit := f.Limit
		if limit == 0 {
			limit = 10
		}
		switch {
		case f.HasAfter:
			for _, m := range all {
				if m.ID > f.After {
					out = append(out, m)
				}
			}
			if len(out) > limit {
				out, more = out[:limit], true
			}
		case f.Before > 0:
			for _, m := range all {
				if m.ID < f.Before {
					out = append(out, m)
				}
			}
			if len(out) > limit {
				out, more = out[len(out)-limit:], true
			}
		default:
			out = all
			if len(out) > limit {
				out, more = out[len(out)-limit:], true
			}
		}
		wake := h.wake
		h.mu.Unlock()
		if len(out) > 0 || !f.HasAfter || f.Wait == 0 || time.Now().After(deadline) {
			return client.Messages{Salon: f.Salon, More: more, Messages: append([]lnet.Message(nil), out...)}, nil
		}
		select {
		case <-wake:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			return client.Messages{}, ctx.Err()
		}
	}
}

func (s *fakeSess) Salons(ctx context.Context) ([]lnet.SalonInfo, error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	var out []lnet.SalonInfo
	for _, name := range h.salons {
		var last int64
		if ms := h.msgs[name]; len(ms) > 0 {
			last = ms[len(ms)-1].ID
		}
		out = append(out, lnet.SalonInfo{Name: name, Last: last})
	}
	return out, nil
}

func (s *fakeSess) Who(ctx context.Context, salon string) ([]string, error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	return []string{"alice", "bob"}, nil
}

// Passwd changes alice's password like the server: her other sessions
// end, this one stays.
func (s *fakeSess) Passwd(ctx context.Context, current string) (string, error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := s.check(); err != nil {
		return "", err
	}
	if current != h.password {
		return "", &client.ServerError{Code: lnet.CodeAuth, Message: "wrong password"}
	}
	h.password = fmt.Sprintf("fresh-password-%d", h.gen+1)
	h.gen++
	s.gen = h.gen
	h.kick()
	if h.passwdErr != nil {
		if errors.Is(h.passwdErr, client.ErrConnLost) {
			s.connected = false
		}
		return "", h.passwdErr
	}
	return h.password, nil
}

func (s *fakeSess) Resume(ctx context.Context) error {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case s.closed:
		return client.ErrClosed
	case h.down:
		return errRefused
	case !h.live[s]:
		return &client.ServerError{Code: lnet.CodeUnknownSession, Message: "no such session"}
	}
	s.connected = true
	return nil
}

func (s *fakeSess) Bye(ctx context.Context) error {
	h := s.h
	h.mu.Lock()
	if err := s.check(); err == nil {
		h.byes++
		delete(h.live, s)
	}
	h.mu.Unlock()
	s.Close()
	return nil
}

func (s *fakeSess) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.closed = true
}

// fakeTerm is a Terminal whose screen is a list of lines.
type fakeTerm struct {
	mu        sync.Mutex
	screen    []string
	blocks    []fakeBlock
	next      Mark
	input     chan string
	passwords chan string
	prompts   []string
	history   []string
	completer func(string) []string
	bells     int
}

type fakeBlock struct {
	mark    Mark
	n       int
	barrier bool // cannot be redrawn (a password prompt)
}

func newFakeTerm() *fakeTerm {
	return &fakeTerm{input: make(chan string, 100), passwords: make(chan string, 10)}
}

func (f *fakeTerm) add(text string) Mark {
	lines := strings.Split(text, "\n")
	f.next++
	f.blocks = append(f.blocks, fakeBlock{mark: f.next, n: len(lines)})
	f.screen = append(f.screen, lines...)
	return f.next
}

func (f *fakeTerm) ReadLine(prompt string) (string, Mark, error) {
	f.mu.Lock()
	f.prompts = append(f.prompts, prompt)
	f.mu.Unlock()
	line, ok := <-f.input
	if !ok {
		return "", 0, io.EOF
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return line, f.add(prompt + line), nil
}

func (f *fakeTerm) ReadPassword(prompt string) (string, error) {
	f.mu.Lock()
	f.prompts = append(f.prompts, prompt)
	f.mu.Unlock()
	pw, ok := <-f.passwords
	if !ok {
		return "", io.EOF
	}
	f.mu.Lock()
	f.add(prompt)
	f.blocks[len(f.blocks)-1].barrier = true
	f.mu.Unlock()
	return pw, nil
}

func (f *fakeTerm) Print(text string) Mark {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.add(text)
}

func (f *fakeTerm) Replace(m Mark, text string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := len(f.screen)
	i := len(f.blocks) - 1
	for ; i >= 0; i-- {
		b := f.blocks[i]
		start -= b.n
		if b.barrier {
			return false
		}
		if b.mark == m {
			break
		}
	}
	if i < 0 || m == 0 {
		return false
	}
	lines := strings.Split(text, "\n")
	rest := append([]string(nil), f.screen[start+f.blocks[i].n:]...)
	f.screen = append(append(f.screen[:start], lines...), rest...)
	f.blocks[i].n = len(lines)
	return true
}

func (f *fakeTerm) AddHistory(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history = append(f.history, line)
}

func (f *fakeTerm) historyLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.history...)
}

func (f *fakeTerm) lastPrompt() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.prompts) == 0 {
		return ""
	}
	return f.prompts[len(f.prompts)-1]
}

func (f *fakeTerm) SetCompleter(c func(string) []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.completer = c
}

func (f *fakeTerm) Bell() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bells++
}

func (f *fakeTerm) bellCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bells
}

func (f *fakeTerm) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.screen, "\n")
}

// waitFor waits until the screen satisfies ok, or fails the test.
func (f *fakeTerm) waitFor(t *testing.T, what string, ok func(screen string) bool) {
	t.Helper()
	if !testkit.Eventually(func() bool { return ok(f.text()) }) {
		t.Fatalf("timed out waiting for %s; screen:\n%s", what, f.text())
	}
}

func (f *fakeTerm) waitText(t *testing.T, s string) {
	t.Helper()
	f.waitFor(t, fmt.Sprintf("%q", s), func(screen string) bool { return strings.Contains(screen, s) })
}
