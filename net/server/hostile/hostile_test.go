package hostile

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The limits the hostile test runs the server with: small, so that every
// attacker reaches them at once.
const (
	pendingCap  = 4 // --max-pending-per-source
	sessionCap  = 3 // --max-sessions-per-user
	parkedCap   = 4 // --max-parked
	loginLimit  = 3 // --login-limit (per minute; the test is shorter)
	logTotal    = 30
	memBoundKiB = 64 << 10 // the server's peak resident memory, VmHWM
)

var hostileFlags = []string{
	"--login-timeout", "2s",
	// mallory's extra connection is refused six logins in a row within
	// its 2 s: pauses of 10 ms doubling to 160 ms fit, the default 100 ms
	// (doubling to 1.6 s) would not.
	"--login-pause", "10ms",
	"--session-timeout", "30s",
	"--max-pending-per-source", fmt.Sprint(pendingCap),
	"--max-sessions-per-user", fmt.Sprint(sessionCap),
	"--max-parked", fmt.Sprint(parkedCap),
	"--login-limit", fmt.Sprint(loginLimit),
	"--log-per-source", "5",
	"--log-total", fmt.Sprint(logTotal),
}

// tally counts attack outcomes from many goroutines.
type tally struct {
	helloOK, refused atomic.Int64 // hellos answered / refused unavailable
	auth, limited    atomic.Int64 // wrong passwords checked / refused unchecked
	other            atomic.Int64 // anything else (a bug)
	lastOther        atomic.Value
}

func (c *tally) note(a answer) {
	switch code(a) {
	case "auth":
		c.auth.Add(1)
	case "rate_limited":
		c.limited.Add(1)
	default:
		c.other.Add(1)
		c.lastOther.Store(a.String())
	}
}

// holdPending holds, from source local, every connection not logged in
// the server lets it, re-dialling as they are closed, and floods wrong
// passwords on each.
func holdPending(ctx context.Context, addr, local string, n int, c *tally) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for guess := 0; ctx.Err() == nil; {
				p, err := dialFrom(addr, local)
				if err != nil {
					continue
				}
				stop := context.AfterFunc(ctx, p.close)
				err = p.hello()
				if _, ok := err.(errRefused); ok {
					c.refused.Add(1)
				}
				if err == nil {
					c.helloOK.Add(1)
					for ctx.Err() == nil {
						guess++
						a, err := p.login(fmt.Sprintf("guess-%d-%d", w, guess))
						if err != nil {
							break // closed: not logged in in time
						}
						c.note(a)
					}
				}
				stop()
				p.close()
				select { // a refused attacker redials at once; this only spares the CPU
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
}

// guessFrom tries wrong passwords from one source.
func guessFrom(ctx context.Context, addr, local string, tries int, c *tally) {
	for done := 0; done < tries && ctx.Err() == nil; {
		p, err := dialFrom(addr, local)
		if err != nil {
			continue
		}
		if p.hello() == nil {
			for ; done < tries; done++ {
				a, err := p.login(fmt.Sprintf("wrong-%s-%d", local, done))
				if err != nil {
					break
				}
				c.note(a)
			}
		}
		p.close()
	}
}

// TestHostileLoad: the real binary under attack from many loopback
// sources at once, while a well-behaved pair of users chats.
//
//   - 127.0.0.2 holds every connection not logged in it may (re-dialling
//     as the login timeout closes them) and floods wrong passwords on each;
//   - 127.0.1.1 to 127.0.1.40 each try 6 wrong passwords;
//   - mallory (127.0.0.4) opens sessions past the per-user cap and parks
//     fetches without end on one of them;
//   - 127.0.0.5 sends a byte a second;
//
// meanwhile alice (127.0.0.9) logs in, sends, loses her connection,
// resumes and sends again, and bob (127.0.0.10) receives every message
// exactly once. The test asserts outcomes (refusals, counts, the log
// bound, the memory bound), never timings.
func TestHostileLoad(t *testing.T) {
	db := newDB(t, true, "alice", "bob", "mallory")
	srv := serve(t, db, hostileFlags...)
	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var attackers sync.WaitGroup
	run := func(f func()) {
		attackers.Add(1)
		go func() { defer attackers.Done(); f() }()
	}

	holder := &tally{}
	run(func() { holdPending(ctx, srv.addr, "127.0.0.2", 2*pendingCap, holder) })
	const guessSources, guessTries = 40, 6
	guessers := make([]*tally, guessSources)
	for i := range guessers {
		guessers[i] = &tally{}
		run(func() { guessFrom(ctx, srv.addr, fmt.Sprintf("127.0.1.%d", i+1), guessTries, guessers[i]) })
	}
	slowClosed := make(chan error, 1)
	run(func() { slowClosed <- slowPeer(ctx, srv.addr, "127.0.0.5") })

	// The holder is at its cap before the good users start.
	waitFor(t, "the holding source to be refused", func() bool { return holder.refused.Load() > 0 })

	// mallory: sessions up to the cap, then refusals that are not failures.
	var mallory []*peer
	for i := range sessionCap + 1 {
		p := mustDial(t, srv.addr, "127.0.0.4")
		if err := p.hello(); err != nil {
			t.Fatalf("mallory's hello %d: %v", i, err)
		}
		a, err := p.login(password("mallory"))
		if err != nil {
			t.Fatal(err)
		}
		if i < sessionCap && a.str("op") != "connected" {
			t.Fatalf("mallory's session %d: %v", i, a)
		}
		mallory = append(mallory, p)
	}
	extra := mallory[sessionCap]
	for range loginLimit + 1 {
		a, err := extra.login(password("mallory"))
		if err != nil || code(a) != "rate_limited" || !strings.Contains(a.str("message"), "too many sessions") {
			t.Fatalf("login past the session cap: %v %v", a, err)
		}
	}
	if a, err := extra.login("not-mallorys-password"); err != nil || code(a) != "auth" {
		t.Fatalf("a wrong password after %d session refusals: %v %v (refusals counted as failed logins?)", loginLimit+1, a, err)
	}

	// mallory's first session parks fetches without end.
	parker := mallory[0]
	var parkedSent, parkedAnswered atomic.Int64
	run(func() {
		for ctx.Err() == nil && parkedSent.Load() < 200 {
			if _, err := parker.request("fetch", map[string]any{"salon": "general", "after": 1 << 40, "wait_ms": 25000}); err != nil {
				return
			}
			parkedSent.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	})
	go func() {
		for {
			a, err := parker.read(time.Minute)
			if err != nil {
				return
			}
			if a.str("op") == "messages" {
				parkedAnswered.Add(1)
			}
		}
	}()

	// The well-behaved users.
	alice := mustDial(t, srv.addr, "127.0.0.9")
	if err := alice.hello(); err != nil {
		t.Fatalf("alice's hello under attack: %v", err)
	}
	if a, err := alice.login(password("alice")); err != nil || a.str("op") != "connected" {
		t.Fatalf("alice's login under attack: %v %v", a, err)
	}
	bob := mustDial(t, srv.addr, "127.0.0.10")
	if err := bob.hello(); err != nil {
		t.Fatalf("bob's hello: %v", err)
	}
	if a, err := bob.login(password("bob")); err != nil || a.str("op") != "connected" {
		t.Fatalf("bob's login: %v %v", a, err)
	}
	start, err := bob.call("fetch", map[string]any{"salon": "general", "limit": 1})
	if err != nil {
		t.Fatal(err)
	}
	cursor := int64(0)
	if ms, _ := start.body["messages"].([]any); len(ms) == 1 {
		cursor = answer{body: ms[0].(map[string]any)}.num("id")
	}
	var sent []string
	send := func(p *peer, text string) {
		t.Helper()
		a, err := p.call("send", map[string]any{"salon": "general", "text": text, "cid": strings.ReplaceAll(text, " ", "-")})
		if err != nil || a.str("op") != "ack" {
			t.Fatalf("send %q: %v %v", text, a, err)
		}
		sent = append(sent, text)
	}
	for i := range 10 {
		send(alice, fmt.Sprintf("before the drop %d", i))
	}
	alice.close() // the connection drops; the session lives on
	alice, a, err := alice.moveTo(srv.addr, "127.0.0.9")
	if err != nil || a.str("op") != "resumed" {
		t.Fatalf("alice's resume under attack: %v %v", a, err)
	}
	for i := range 10 {
		send(alice, fmt.Sprintf("after the resume %d", i))
	}
	var got []string
	seen := map[int64]bool{}
	for len(got) < len(sent) {
		a, err := bob.call("fetch", map[string]any{"salon": "general", "after": cursor, "wait_ms": 2000, "limit": 100})
		if err != nil || a.str("op") != "messages" {
			t.Fatalf("bob's fetch: %v %v", a, err)
		}
		ms, _ := a.body["messages"].([]any)
		for _, m := range ms {
			msg := answer{body: m.(map[string]any)}
			id := msg.num("id")
			if seen[id] {
				t.Fatalf("message %d received twice", id)
			}
			seen[id] = true
			cursor = id
			if msg.str("pseudo") == "alice" {
				got = append(got, msg.str("text"))
			}
		}
	}
	if strings.Join(got, "|") != strings.Join(sent, "|") {
		t.Fatalf("bob received\n%q\nalice sent\n%q", got, sent)
	}

	// The slow peer was closed by the login deadline.
	select {
	case err := <-slowClosed:
		if err != nil {
			t.Fatalf("slow peer: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a peer sending a byte a second is still connected")
	}
	// Parked fetches past the bound were answered early.
	var early int64
	waitFor(t, "parked fetches past the bound to be answered", func() bool {
		n := parkedSent.Load()
		early = parkedAnswered.Load()
		return n >= 50 && early >= n-parkedCap
	})

	rss, err1 := srv.memKiB("VmRSS")
	hwm, err2 := srv.memKiB("VmHWM")
	if err1 != nil || err2 != nil {
		t.Fatalf("memory: %v %v", err1, err2)
	}
	cancel()
	attackers.Wait()
	elapsed := time.Since(started)
	srv.stop()

	// Outcomes of the attack.
	t.Logf("holder: %d hellos admitted, %d refused; %d passwords checked, %d refused unchecked",
		holder.helloOK.Load(), holder.refused.Load(), holder.auth.Load(), holder.limited.Load())
	if n := holder.auth.Load(); n > loginLimit {
		t.Errorf("the holding source had %d passwords checked, limit %d", n, loginLimit)
	}
	checked := int64(0)
	for i, g := range guessers {
		if n := g.auth.Load(); n > loginLimit {
			t.Errorf("source 127.0.1.%d had %d passwords checked, limit %d", i+1, n, loginLimit)
		}
		if g.auth.Load()+g.limited.Load() != guessTries {
			t.Errorf("source 127.0.1.%d: %d answers of %d tries", i+1, g.auth.Load()+g.limited.Load(), guessTries)
		}
		checked += g.auth.Load()
	}
	for _, c := range append(guessers, holder) {
		if c.other.Load() > 0 {
			t.Errorf("unexpected answer to a wrong password: %v", c.lastOther.Load())
		}
	}
	t.Logf("%d sources x %d guesses: %d checked", guessSources, guessTries, checked)
	t.Logf("parked fetches: %d sent, %d answered early (bound %d parked)", parkedSent.Load(), early, parkedCap)
	t.Logf("server memory at the end of the attack: VmRSS %d KiB, VmHWM %d KiB (bound %d KiB)", rss, hwm, memBoundKiB)
	if hwm > memBoundKiB {
		t.Errorf("server peak memory %d KiB over the bound %d KiB", hwm, memBoundKiB)
	}
	checkLogBound(t, srv.stderr.String(), elapsed)
}

// strangerLines are the log messages peers not logged in cause.
var strangerLines = []string{
	`msg="connection opened"`, `msg="connection closed"`, `msg="connection closed: not logged in in time"`,
	`msg="broken frame"`, `msg="envelope rejected"`, `msg="hello refused: too many connections not logged in"`,
	`msg="connection refused: too many from this source"`, `msg="connection refused: server full"`,
	`msg="login failed"`, `msg="login refused: too many failures"`, `msg="login refused: too many sessions"`,
	`msg="write failed"`,
}

// checkLogBound: the lines strangers caused stay within --log-total a
// minute (its burst plus what refilled while the test ran), the rest was
// counted in "log lines suppressed" lines.
func checkLogBound(t *testing.T, log string, elapsed time.Duration) {
	t.Helper()
	stranger := 0
	for _, line := range strings.Split(log, "\n") {
		for _, m := range strangerLines {
			// Lines about logged-in connections name the pseudo.
			about := strings.Contains(line, " pseudo=") && !strings.Contains(m, "too many sessions")
			if !about && (strings.Contains(line, m+" ") || strings.HasSuffix(line, m)) {
				stranger++
				break
			}
		}
	}
	bound := logTotal + int(elapsed.Minutes()*logTotal) + 1
	t.Logf("log: %d lines in all, %d caused by strangers (bound %d)", strings.Count(log, "\n"), stranger, bound)
	if stranger > bound {
		t.Errorf("strangers caused %d log lines, bound %d", stranger, bound)
	}
	if !strings.Contains(log, `msg="log lines suppressed"`) {
		t.Errorf("no summary of suppressed log lines:\n%s", log)
	}
}

// slowPeer sends a byte a second from local until the server closes the
// connection; nil once it did.
func slowPeer(ctx context.Context, addr, local string) error {
	p, err := dialFrom(addr, local)
	if err != nil {
		return err
	}
	defer p.close()
	closed := make(chan struct{})
	go func() {
		buf := make([]byte, 256)
		for {
			if _, err := p.nc.Read(buf); err != nil {
				close(closed)
				return
			}
		}
	}()
	line := "MESS1//" + strings.Repeat("A", 256)
	for i := 0; ; i++ {
		if _, err := p.nc.Write([]byte{line[i%len(line)]}); err != nil {
			<-closed
			return nil
		}
		select {
		case <-closed:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("still open when the test ended")
		case <-time.After(time.Second):
		}
	}
}

func mustDial(t *testing.T, addr, local string) *peer {
	t.Helper()
	p, err := dialFrom(addr, local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// waitFor waits for cond, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
