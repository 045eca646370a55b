package chat

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"librecord/net"
)

func TestLargestBodies(t *testing.T) {
	send, answer := LargestBodies(100)
	// "\"" x 100 escapes to 200 bytes; the rest is a fixed frame of field
	// names and the longest values.
	if send < 200+64*2+32+19 || answer < 200+32+32+19+19+24 {
		t.Fatalf("LargestBodies(100) = %d, %d: too small", send, answer)
	}
	s2, a2 := LargestBodies(200)
	if s2-send != 200 || a2-answer != 200 {
		t.Fatalf("each byte of text should cost 2 bytes at worst: %d->%d, %d->%d", send, s2, answer, a2)
	}
	// U+2028 is 3 bytes of text and 6 once escaped: no worse than '"'.
	if n := len(net.Encode(strings.Repeat("\u2028", 33))); n > 2*99+2 {
		t.Fatalf("U+2028 escapes to more than twice its size: %d", n)
	}
}

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBucket(2, 3)
	for i := range 3 {
		if !b.take(now) {
			t.Fatalf("take %d refused within burst", i)
		}
	}
	if b.take(now) {
		t.Fatal("take past burst allowed")
	}
	b.refund()
	if !b.take(now) {
		t.Fatal("refunded token not available")
	}
	if !b.take(now.Add(500 * time.Millisecond)) {
		t.Fatal("token not refilled after 1/rate")
	}
	if b.take(now.Add(500 * time.Millisecond)) {
		t.Fatal("more tokens than refilled")
	}
	off := newBucket(0, 0)
	for range 1000 {
		if !off.take(now) {
			t.Fatal("rate 0 should not limit")
		}
	}
}

func TestLoginLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return now.Add(d) } }
	l := newLoginLimiter(3, 0, time.Minute)
	a := src("1.2.3.4")
	for i := range 3 {
		if !l.allow(a, at(time.Duration(i)*time.Second)) {
			t.Fatalf("attempt %d refused", i)
		}
		l.end(a, true, now.Add(time.Duration(i)*time.Second))
	}
	if l.allow(a, at(10*time.Second)) {
		t.Fatal("4th attempt allowed after 3 failures")
	}
	if !l.allow(src("5.6.7.8"), at(10*time.Second)) {
		t.Fatal("another address refused")
	}
	l.end(src("5.6.7.8"), false, now)
	// Refused attempts do not count: once the first failure is 60 s old,
	// one attempt is allowed again.
	if !l.allow(a, at(time.Minute)) {
		t.Fatal("attempt refused after the oldest failure left the window")
	}
	// In flight counts as a possible failure: a parallel attempt waits for
	// it, and is then refused if it failed...
	second := make(chan bool)
	go func() { second <- l.allow(a, at(time.Minute)) }()
	select {
	case ok := <-second:
		t.Fatalf("parallel attempt beyond the limit did not wait (allowed %v)", ok)
	case <-time.After(20 * time.Millisecond):
	}
	l.end(a, true, now.Add(time.Minute))
	if <-second {
		t.Fatal("attempt allowed after the one it waited for failed")
	}
	// ...or allowed if it succeeded.
	if !l.allow(a, at(time.Minute+time.Second)) {
		t.Fatal("attempt refused after the second failure left the window")
	}
	go func() { second <- l.allow(a, at(time.Minute+time.Second)) }()
	l.end(a, false, now.Add(time.Minute))
	if !<-second {
		t.Fatal("attempt refused after the one it waited for succeeded")
	}
	if off := newLoginLimiter(0, 0, time.Minute); !off.allow(src("1.2.3.4"), at(0)) {
		t.Fatal("limit 0 should not limit")
	}
}

func src(addr string) net.Source { return net.SourceOf(netip.MustParseAddr(addr)) }

// TestLoginLimiterIPv6 checks the grouping of PROTOCOL.md section 4:
// addresses of one /64 share one budget, the /64s of one /48 share a
// larger one, and an IPv4-mapped address counts as its IPv4 source.
func TestLoginLimiterIPv6(t *testing.T) {
	now := time.Unix(1000, 0)
	at := func() time.Time { return now }
	fail := func(l *loginLimiter, addr string) bool {
		if !l.allow(src(addr), at) {
			return false
		}
		l.end(src(addr), true, now)
		return true
	}
	t.Run("Rotating64", func(t *testing.T) {
		l := newLoginLimiter(3, 0, time.Minute)
		for i := range 3 {
			if !fail(l, fmt.Sprintf("2001:db8:1:2::%x", i+1)) {
				t.Fatalf("guess %d refused", i)
			}
		}
		if fail(l, "2001:db8:1:2:dead:beef:0:1") {
			t.Fatal("a 4th address of the same /64 got a 4th guess")
		}
		if !fail(l, "2001:db8:1:3::1") {
			t.Fatal("another /64 refused")
		}
	})
	t.Run("Rotating48", func(t *testing.T) {
		l := newLoginLimiter(3, 10, time.Minute)
		guesses := 0
		for i := range 100 { // 100 /64s of one /48, 3 guesses each
			for range 3 {
				if fail(l, fmt.Sprintf("2001:db8:1:%x::1", i)) {
					guesses++
				}
			}
		}
		if guesses != 10 {
			t.Fatalf("one /48 got %d guesses, want its budget of 10", guesses)
		}
		if !fail(l, "2001:db8:2::1") {
			t.Fatal("another /48 refused")
		}
		if !fail(l, "192.0.2.1") {
			t.Fatal("an IPv4 source refused")
		}
	})
	t.Run("Mapped", func(t *testing.T) {
		l := newLoginLimiter(2, 0, time.Minute)
		fail(l, "192.0.2.7")
		fail(l, "::ffff:192.0.2.7")
		if fail(l, "192.0.2.7") {
			t.Fatal("the IPv4-mapped form bought a guess")
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		l := newLoginLimiter(3, 10, time.Minute)
		for i := range maxTracked + 500 {
			fail(l, fmt.Sprintf("2001:db8:%x:%x::1", i>>8, i&0xff))
		}
		if n := l.tracked(); n > maxTracked {
			t.Fatalf("table holds %d keys, bound %d", n, maxTracked)
		}
	})
}

// allow is begin without its clean result.
func (l *loginLimiter) allow(src net.Source, now func() time.Time) bool {
	ok, _ := l.begin(src, now)
	return ok
}
