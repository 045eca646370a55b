package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"librecord/db"
	"librecord/net"
)

// newSessionFrom starts a session from source addr (not logged in).
func newSessionFrom(t *testing.T, h *Hub, addr string) *Session {
	t.Helper()
	s, err := h.NewSession(newChannel(t), testPeer(addr), nopConn{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func loginAs(t *testing.T, h *Hub, s *Session, password string) answer {
	t.Helper()
	r := newReply()
	h.Handle(s, &net.Request{Op: net.OpLogin, ID: 1, Password: password}, 1, r)
	return r.wait(t)
}

// TestMaxSessionsPerUser: past the cap a login answers rate_limited
// "too many sessions", which is not a failed login of the source; a
// session that ends frees its place.
func TestMaxSessionsPerUser(t *testing.T) {
	h, _, _ := sessionHubWith(t, func(c *Config) {
		c.MaxSessions = 2
		c.LoginLimit = 1 // one failure would refuse the next attempt
		c.LoginWindow = time.Hour
	})
	var live []*Session
	for i := range 2 {
		s := newSessionFrom(t, h, "192.0.2.1:1")
		if a := loginAs(t, h, s, alicePassword); a.Op != net.OpConnected {
			t.Fatalf("login %d: %+v", i, a)
		}
		live = append(live, s)
	}
	third := newSessionFrom(t, h, "192.0.2.1:1")
	for range 3 { // refused again and again, never as a failure
		r := newReply()
		h.Handle(third, &net.Request{Op: net.OpLogin, ID: 1, Password: alicePassword}, 1, r)
		body := <-r.answers
		if !bytes.Contains(body, []byte(`"code":"rate_limited"`)) || !bytes.Contains(body, []byte("too many sessions")) {
			t.Fatalf("third session: %s", body)
		}
	}
	if a := loginAs(t, h, third, "not-alices-password"); a.Code != net.CodeAuth {
		t.Fatalf("a wrong password after refusals: %+v (refusals counted as failures?)", a)
	}
	h.end(live[0], "test")
	if a := loginAs(t, h, newSessionFrom(t, h, "192.0.2.2:1"), alicePassword); a.Op != net.OpConnected {
		t.Fatalf("login after a session ended: %+v", a)
	}
}

// TestParkedFetchBound: a session parks at most MaxParked fetches; the
// next one pushes the oldest out, which answers at once with an empty
// list, and the others stay parked.
func TestParkedFetchBound(t *testing.T) {
	h, _, _ := sessionHubWith(t, func(c *Config) { c.MaxParked = 2 })
	s := loginOn(t, h, nopConn{}, db.Salon{})
	park := func(id int64) *testReply {
		r := newReply()
		h.Handle(s, &net.Request{Op: net.OpFetch, ID: id, Salon: "general", HasAfter: true, After: 1 << 40, WaitMS: net.MaxWaitMS}, 1, r)
		return r
	}
	first, second := park(10), park(11)
	for _, r := range []*testReply{first, second} {
		select {
		case body := <-r.answers:
			t.Fatalf("answered while under the bound: %s", body)
		case <-time.After(50 * time.Millisecond):
		}
	}
	third := park(12)
	body := <-first.answers
	var got struct {
		Re       int64             `json:"re"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Re != 10 || len(got.Messages) != 0 {
		t.Fatalf("oldest parked fetch answered %s", body)
	}
	for _, r := range []*testReply{second, third} {
		select {
		case body := <-r.answers:
			t.Fatalf("a newer parked fetch answered: %s", body)
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.mu.Lock()
	parked := s.parked
	s.mu.Unlock()
	if parked != 2 {
		t.Fatalf("%d fetches parked, want 2", parked)
	}
}

// lines is a log sink counting lines by message.
type lines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "msg="+msg+"\n") + strings.Count(l.b.String(), "msg="+msg+" ")
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestQuietLog: lines caused by strangers are limited per source and in
// total, suppressed ones are summed up in a summary line, and the table
// of sources stays bounded however many sources there are.
func TestQuietLog(t *testing.T) {
	sink := &lines{}
	q := newQuietLog(slog.New(slog.NewTextHandler(sink, nil)), 3, 5, 20*time.Millisecond)
	a, b, c := src("192.0.2.1"), src("192.0.2.2"), src("2001:db8::1")
	for range 10 {
		q.emit(a, slog.LevelInfo, "noise")
	}
	if n := sink.count("noise"); n != 3 {
		t.Fatalf("one source logged %d lines, want its 3", n)
	}
	for range 10 {
		q.emit(b, slog.LevelInfo, "noise")
		q.emit(c, slog.LevelInfo, "noise")
	}
	if n := sink.count("noise"); n != 5 {
		t.Fatalf("all sources logged %d lines, want the total of 5", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(sink.String(), "count=25") {
		if time.Now().After(deadline) {
			t.Fatalf("no summary of the 25 suppressed lines: %s", sink.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range maxTracked + 100 {
		q.emit(src(fmt.Sprintf("10.%d.%d.1", i>>8&0xff, i&0xff)), slog.LevelInfo, "many")
		q.emit(src(fmt.Sprintf("2001:db8:%x::1", i)), slog.LevelInfo, "many")
	}
	if n := q.tracked(); n > maxTracked {
		t.Fatalf("the table holds %d sources, bound %d", n, maxTracked)
	}
	q.stop()
}

// TestHashGate: with every slot taken, a waiting attempt from a clean
// source gets the next free slot before attempts from sources with
// failures that waited longer; within a class, first come first served;
// a waiter that gives up takes no slot.
func TestHashGate(t *testing.T) {
	g := newHashGate(1)
	never := make(chan struct{})
	if !g.acquire(false, never) {
		t.Fatal("a free slot refused")
	}
	order := make(chan string, 4)
	started := make(chan struct{}, 4)
	waiting := 0
	wait := func(name string, clean bool, done <-chan struct{}) {
		waiting++
		go func() {
			started <- struct{}{}
			if g.acquire(clean, done) {
				order <- name
				return
			}
			order <- name + " gave up"
		}()
		<-started
		waitUntil(t, func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return len(g.waiting[0])+len(g.waiting[1]) == waiting
		})
	}
	quit := make(chan struct{})
	wait("guess 1", false, never)
	wait("guess 2", false, never)
	wait("quitter", true, quit)
	wait("user", true, never)
	close(quit)
	if got := <-order; got != "quitter gave up" {
		t.Fatalf("first out: %s", got)
	}
	for _, want := range []string{"user", "guess 1", "guess 2"} {
		g.release()
		if got := <-order; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	g.release()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free != 1 {
		t.Fatalf("%d free slots, want 1", g.free)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
