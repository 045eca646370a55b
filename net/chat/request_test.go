package chat

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"librecord/net"
)

func TestParseRequest(t *testing.T) {
	type want struct {
		code  string // "" = parses
		re    int64
		check func(*Request) bool
	}
	ok := func(check func(*Request) bool) want { return want{check: check} }
	bad := func(re int64) want { return want{code: net.CodeBadRequest, re: re} }
	for name, tc := range map[string]struct {
		body string
		want want
	}{
		"Login":            {`{"op":"login","id":1,"password":"pw"}`, ok(func(r *Request) bool { return r.Op == "login" && r.ID == 1 && r.Password == "pw" })},
		"UnknownFields":    {`{"op":"salons","id":9,"extra":{"a":[1,2]},"x":null}`, ok(func(r *Request) bool { return r.Op == "salons" && r.ID == 9 })},
		"BigID":            {`{"op":"bye","id":9223372036854775807}`, ok(func(r *Request) bool { return r.ID == 1<<63-1 })},
		"Send":             {`{"op":"send","id":7,"salon":"general","text":"a\u00e9\ud83d\ude00<&>","cid":"k3J9"}`, ok(func(r *Request) bool { return r.Text == "aé😀<&>" && r.Cid == "k3J9" && r.Salon == "general" })},
		"FetchAfterWait":   {`{"op":"fetch","id":8,"salon":"g","after":5,"wait_ms":2500,"limit":3}`, ok(func(r *Request) bool { return r.HasAfter && r.After == 5 && r.WaitMS == 2500 && r.Limit == 3 })},
		"FetchNullCursor":  {`{"op":"fetch","id":8,"salon":"g","before":null,"after":0}`, ok(func(r *Request) bool { return r.HasAfter && !r.HasBefore })},
		"WaitIgnoredNoAft": {`{"op":"fetch","id":8,"salon":"g","wait_ms":"x"}`, ok(func(r *Request) bool { return !r.HasAfter && r.WaitMS == 0 })},
		"WaitBigNoAfter":   {`{"op":"fetch","id":8,"salon":"g","wait_ms":999999}`, ok(func(r *Request) bool { return r.WaitMS == 0 })},

		"NotObject":        {`[1]`, bad(0)},
		"Null":             {`null`, bad(0)},
		"Empty":            {``, bad(0)},
		"Trailing":         {`{"op":"bye","id":1} x`, bad(0)},
		"InvalidUTF8":      {"{\"op\":\"bye\",\"id\":1,\"x\":\"\xff\"}", bad(0)},
		"IDFloat":          {`{"op":"bye","id":1.0}`, bad(0)},
		"IDString":         {`{"op":"bye","id":"1"}`, bad(0)},
		"IDZero":           {`{"op":"bye","id":0}`, bad(0)},
		"IDNegative":       {`{"op":"bye","id":-3}`, bad(0)},
		"IDExponent":       {`{"op":"bye","id":1e2}`, bad(0)},
		"IDOverflow":       {`{"op":"bye","id":9223372036854775808}`, bad(0)},
		"IDMissing":        {`{"op":"bye"}`, bad(0)},
		"OpMissing":        {`{"id":4}`, bad(4)},
		"OpNotString":      {`{"op":1,"id":4}`, bad(4)},
		"OpUnknown":        {`{"op":"dance","id":4}`, bad(4)},
		"OpAnswerName":     {`{"op":"ack","id":4}`, bad(4)},
		"PasswordMissing":  {`{"op":"login","id":2}`, bad(2)},
		"PasswordNumber":   {`{"op":"login","id":2,"password":12}`, bad(2)},
		"PasswordNull":     {`{"op":"login","id":2,"password":null}`, bad(2)},
		"SendNoCid":        {`{"op":"send","id":3,"salon":"g","text":"x"}`, bad(3)},
		"SendLoneHigh":     {`{"op":"send","id":3,"salon":"g","text":"a\ud800b","cid":"c"}`, bad(3)},
		"SendLoneLow":      {`{"op":"send","id":3,"salon":"g","text":"\udc00","cid":"c"}`, bad(3)},
		"SendHighHigh":     {`{"op":"send","id":3,"salon":"g","text":"\ud800\ud800","cid":"c"}`, bad(3)},
		"SendHighAtEnd":    {`{"op":"send","id":3,"salon":"g","text":"\ud83d","cid":"c"}`, bad(3)},
		"FetchBoth":        {`{"op":"fetch","id":5,"salon":"g","before":3,"after":1}`, bad(5)},
		"FetchLimitZero":   {`{"op":"fetch","id":5,"salon":"g","limit":0}`, bad(5)},
		"FetchLimitFloat":  {`{"op":"fetch","id":5,"salon":"g","limit":10.0}`, bad(5)},
		"FetchLimitString": {`{"op":"fetch","id":5,"salon":"g","limit":"10"}`, bad(5)},
		"FetchWaitRange":   {`{"op":"fetch","id":5,"salon":"g","after":1,"wait_ms":25001}`, bad(5)},
		"FetchWaitNeg":     {`{"op":"fetch","id":5,"salon":"g","after":1,"wait_ms":-1}`, bad(5)},
		"FetchWaitType":    {`{"op":"fetch","id":5,"salon":"g","after":1,"wait_ms":true}`, bad(5)},
		"FetchNegCursor":   {`{"op":"fetch","id":5,"salon":"g","after":-1}`, bad(5)},
		"FetchNoSalon":     {`{"op":"fetch","id":5}`, bad(5)},
		"WhoSalonNumber":   {`{"op":"who","id":6,"salon":3}`, bad(6)},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tc.body))
			if tc.want.code == "" {
				if err != nil {
					t.Fatalf("ParseRequest(%s): %v", tc.body, err)
				}
				if !tc.want.check(r) {
					t.Fatalf("ParseRequest(%s) = %+v", tc.body, r)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseRequest(%s) = %+v, want error %s", tc.body, r, tc.want.code)
			}
			if err.Code != tc.want.code || err.Re != tc.want.re {
				t.Fatalf("ParseRequest(%s) error %+v, want code %s re %d", tc.body, err, tc.want.code, tc.want.re)
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	for name, tc := range map[string]struct {
		text string
		code string
	}{
		"OK":          {"à\n\t😀<", ""},
		"NBSPAllowed": {"a\u00a0b", ""},
		"C1NEL":       {"\u0085", net.CodeBadRequest},
		"C1First":     {"a\u0080", net.CodeBadRequest},
		"C1Last":      {"a\u009f", net.CodeBadRequest},
		"C1CSI":       {"\u009b31m", net.CodeBadRequest},
		"Max":         {strings.Repeat("é", 5), ""},
		"Empty":       {"", net.CodeBadRequest},
		"TooLarge":    {strings.Repeat("a", 11), net.CodeTooLarge},
		"TooLargeUTF": {strings.Repeat("é", 6), net.CodeTooLarge},
		"NUL":         {"a\x00", net.CodeBadRequest},
		"CR":          {"a\r\n", net.CodeBadRequest},
		"ESC":         {"\x1b[31m", net.CodeBadRequest},
		"DEL":         {"a\x7f", net.CodeBadRequest},
		"BadUTF8":     {"a\xffb", net.CodeBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			err := checkText(tc.text, 10)
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("checkText(%q) = %v", tc.text, err)
			case tc.code != "" && (err == nil || err.Code != tc.code):
				t.Fatalf("checkText(%q) = %v, want %s", tc.text, err, tc.code)
			}
		})
	}
}

func TestNamesAndCids(t *testing.T) {
	for _, s := range []string{"general", "A-b_c.9", strings.Repeat("x", 32)} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", strings.Repeat("x", 33), "a b", "é", "a/b", "a\x00"} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
	for _, s := range []string{"!", "~", strings.Repeat("k", 64), `"\`} {
		if !validCid(s) {
			t.Errorf("validCid(%q) = false", s)
		}
	}
	for _, s := range []string{"", " ", "a b", strings.Repeat("k", 65), "é", "\x7f"} {
		if validCid(s) {
			t.Errorf("validCid(%q) = true", s)
		}
	}
}

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
	if n := len(encode(strings.Repeat("\u2028", 33))); n > 2*99+2 {
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

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"login","id":1,"password":"pw"}`,
		`{"op":"send","id":7,"salon":"general","text":"a\ud83d\ude00","cid":"k"}`,
		`{"op":"fetch","id":8,"salon":"g","after":5,"wait_ms":2500,"limit":3}`,
		`{"op":"send","id":3,"salon":"g","text":"\ud800\\u","cid":"c"}`,
		`{"id":1.0}`, `[]`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			if err.Code != net.CodeBadRequest || err.Re < 0 {
				t.Fatalf("error %+v", err)
			}
			return
		}
		if r.ID <= 0 || !utf8.Valid(body) {
			t.Fatalf("accepted %q as %+v", body, r)
		}
		for _, s := range []string{r.Text, r.Salon, r.Cid, r.Password} {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 field from %q", body)
			}
		}
	})
}

// allow is begin without its clean result.
func (l *loginLimiter) allow(src net.Source, now func() time.Time) bool {
	ok, _ := l.begin(src, now)
	return ok
}
