package repl

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/testkit"
)

// sleeps records the waits the chat asks for, and returns at once.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// fullJitter draws the largest wait, so that the waits are known.
func fullJitter(upTo time.Duration) time.Duration { return upTo }

func TestBackoff(t *testing.T) {
	b := &backoff{base: time.Second, max: 10 * time.Second, jitter: fullJitter}
	var got []time.Duration
	for range 6 {
		got = append(got, b.next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	if b.waited != 35*time.Second {
		t.Errorf("waited %v", b.waited)
	}
	// Jitter spreads each wait over its upper half.
	b = &backoff{base: time.Second, max: time.Minute, jitter: func(time.Duration) time.Duration { return 0 }}
	if d := b.next(); d != 500*time.Millisecond {
		t.Errorf("least first wait %v, want 500ms", d)
	}
	b = &backoff{base: time.Second, max: time.Minute, jitter: uniformJitter}
	for range 200 {
		b.n = 40 // far past the cap: no overflow
		if d := b.next(); d < 30*time.Second || d > time.Minute {
			t.Fatalf("wait %v outside [30s, 1m]", d)
		}
	}
}

// TestScriptRetriesRefusals: a full source (unavailable at the hello) and
// a user with too many sessions (rate_limited at login) are tried again
// after doubling waits, and the script then runs.
func TestScriptRetriesRefusals(t *testing.T) {
	h := newHub()
	h.refuseDials, h.refuseLogins = 2, 3
	var sl sleeps
	cfg := scriptConfig()
	cfg.sleep, cfg.jitter = sl.sleep, fullJitter
	var errOut testkit.Buffer
	err := RunScript(context.Background(), cfg, h.dial, strings.NewReader("hello\n"), &strings.Builder{}, &errOut)
	if err != nil {
		t.Fatalf("%v (stderr %s)", err, errOut.String())
	}
	if h.dials != 3 || h.loginTries != 4 {
		t.Errorf("%d dials and %d logins, want 3 and 4", h.dials, h.loginTries)
	}
	d := cfg.RetryDelay
	if got, want := sl.got(), []time.Duration{d, 2 * d, 4 * d, 8 * d, 16 * d}; !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	if got := h.storedTexts(); !reflect.DeepEqual(got, []string{"hello"}) {
		t.Errorf("stored %q", got)
	}
	stderr := errOut.String()
	for _, want := range []string{"turned the connection away for now (too many connections from your address (unavailable)); trying again in 10ms",
		"refused the login for now (too many sessions (rate_limited)); trying again in 80ms"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestScriptGivesUpOnRefusals: a server that keeps refusing is given up
// after a reconnect window of waits, with few attempts.
func TestScriptGivesUpOnRefusals(t *testing.T) {
	h := newHub()
	h.refuseLogins = 1 << 30
	var sl sleeps
	cfg := scriptConfig()
	cfg.sleep, cfg.jitter = sl.sleep, fullJitter
	cfg.ReconnectWindow = 25 * time.Second
	err := RunScript(context.Background(), cfg, h.dial, strings.NewReader("hello\n"), &strings.Builder{}, &strings.Builder{})
	if !client.IsCode(err, lnet.CodeRateLimited) || !strings.Contains(err.Error(), "kept refusing") {
		t.Fatalf("got %v", err)
	}
	var total time.Duration
	for _, d := range sl.got() {
		total += d
	}
	// 10ms doubling: 10 waits make 10.23 s, the 12th would pass 25 s.
	if n := len(sl.got()); n != 11 || total > cfg.ReconnectWindow || h.loginTries != 12 {
		t.Errorf("%d waits (%v in all) and %d logins", n, total, h.loginTries)
	}
}

// TestInteractiveRetriesRefusals: the person types the password once; the
// refusals are said, and tried again with it after growing waits.
func TestInteractiveRetriesRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"TooManySessions", nil, "the server refused the login for now (too many sessions (rate_limited)); trying again in 20ms"},
		{"TooManyFailures", &client.ServerError{Code: lnet.CodeRateLimited, Message: "too many failed logins"},
			"the server refused the login for now (too many failed logins (rate_limited)); trying again in 20ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub()
			h.refuseDials, h.refuseLogins, h.refuseLoginErr = 1, 2, tc.err
			var sl sleeps
			term, _, _ := startChat(t, h, Config{sleep: sl.sleep, jitter: fullJitter})
			term.waitText(t, "the server turned the connection away for now (too many connections from your address (unavailable)); trying again in 10ms")
			term.passwords <- "right"
			term.waitText(t, "connected to test:7447 as alice")
			term.waitText(t, tc.want)
			if got, want := sl.got(), []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}; !reflect.DeepEqual(got, want) {
				t.Errorf("waits %v, want %v", got, want)
			}
			term.mu.Lock()
			asked := strings.Count(strings.Join(term.prompts, "\n"), "password for")
			term.mu.Unlock()
			h.mu.Lock()
			defer h.mu.Unlock()
			if asked != 1 || h.loginTries != 3 || h.dials != 2 {
				t.Errorf("password asked %d times, %d logins, %d dials; want 1, 3, 2", asked, h.loginTries, h.dials)
			}
		})
	}
}

// TestReloginRetriesRefusals: logging in again after the server forgot
// the session backs off while the server refuses, then succeeds.
func TestReloginRetriesRefusals(t *testing.T) {
	h := newHub()
	var sl sleeps
	cfg := Config{sleep: sl.sleep, jitter: fullJitter, Password: func() (string, error) { return "right", nil },
		PasswordSource: "test"}
	term, _, _ := startChat(t, h, cfg)
	term.waitText(t, "connected to test:7447 as alice")
	h.mu.Lock()
	h.refuseLogins = 4
	h.mu.Unlock()
	h.forget()
	h.setDown(true)
	h.setDown(false)
	term.waitText(t, "logged in again as alice")
	d := 10 * time.Millisecond
	if got, want := sl.got(), []time.Duration{d, 2 * d, 4 * d, 8 * d}; !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loginTries != 6 { // the first login, 4 refused, 1 accepted
		t.Errorf("%d logins, want 6", h.loginTries)
	}
}
