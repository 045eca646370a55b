package net

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRequest(t *testing.T) {
	type want struct {
		code  string // "" = parses
		re    int64
		check func(*Request) bool
	}
	ok := func(check func(*Request) bool) want { return want{check: check} }
	bad := func(re int64) want { return want{code: CodeBadRequest, re: re} }
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
		"C1NEL":       {"\u0085", CodeBadRequest},
		"C1First":     {"a\u0080", CodeBadRequest},
		"C1Last":      {"a\u009f", CodeBadRequest},
		"C1CSI":       {"\u009b31m", CodeBadRequest},
		"Max":         {strings.Repeat("é", 5), ""},
		"Empty":       {"", CodeBadRequest},
		"TooLarge":    {strings.Repeat("a", 11), CodeTooLarge},
		"TooLargeUTF": {strings.Repeat("é", 6), CodeTooLarge},
		"NUL":         {"a\x00", CodeBadRequest},
		"CR":          {"a\r\n", CodeBadRequest},
		"ESC":         {"\x1b[31m", CodeBadRequest},
		"DEL":         {"a\x7f", CodeBadRequest},
		"BadUTF8":     {"a\xffb", CodeBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckText(tc.text, 10)
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("CheckText(%q) = %v", tc.text, err)
			case tc.code != "" && (err == nil || err.Code != tc.code):
				t.Fatalf("CheckText(%q) = %v, want %s", tc.text, err, tc.code)
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
		if !ValidCid(s) {
			t.Errorf("ValidCid(%q) = false", s)
		}
	}
	for _, s := range []string{"", " ", "a b", strings.Repeat("k", 65), "é", "\x7f"} {
		if ValidCid(s) {
			t.Errorf("ValidCid(%q) = true", s)
		}
	}
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
			if err.Code != CodeBadRequest || err.Re < 0 {
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

// TestPasswdBadRequest: a passwd without its password field is bad_request.
func TestPasswdBadRequest(t *testing.T) {
	if _, e := ParseRequest([]byte(`{"op":"passwd","id":3}`)); e == nil || e.Code != CodeBadRequest || e.Re != 3 {
		t.Fatalf("passwd without password: %v", e)
	}
	if _, e := ParseRequest([]byte(`{"op":"passwd","id":3,"password":7}`)); e == nil || e.Code != CodeBadRequest {
		t.Fatalf("passwd with a number: %v", e)
	}
}

// TestRequestRoundTrip: what the client's Encode writes, the server's
// ParseRequest reads back the same, for every op.
func TestRequestRoundTrip(t *testing.T) {
	for name, r := range map[string]Request{
		"Login":       {Op: OpLogin, ID: 1, Password: "pw <&> é"},
		"Passwd":      {Op: OpPasswd, ID: 2, Password: "current"},
		"Send":        {Op: OpSend, ID: 3, Salon: "general", Text: "a\nb <&>\u2028", Cid: `k"\`},
		"FetchLatest": {Op: OpFetch, ID: 4, Salon: "dev"},
		"FetchBefore": {Op: OpFetch, ID: 5, Salon: "dev", Limit: 3, Before: 9, HasBefore: true},
		"FetchAfter0": {Op: OpFetch, ID: 6, Salon: "dev", After: 0, HasAfter: true, WaitMS: 2500},
		"Who":         {Op: OpWho, ID: 7, Salon: "dev"},
		"Salons":      {Op: OpSalons, ID: 8},
		"Resume":      {Op: OpResume, ID: 9},
		"Bye":         {Op: OpBye, ID: 1<<63 - 1},
	} {
		t.Run(name, func(t *testing.T) {
			body := r.Encode()
			got, err := ParseRequest(body)
			if err != nil {
				t.Fatalf("ParseRequest(%s): %v", body, err)
			}
			if *got != r {
				t.Fatalf("round trip of %s:\n got %+v\nwant %+v", body, *got, r)
			}
			if strings.Contains(string(body), `\u003c`) {
				t.Fatalf("HTML-escaped: %s", body)
			}
		})
	}
}

// TestResponseRoundTrip: what the server's Encode writes, the client's
// ParseResponse reads back the same; the exact bytes of a few answers
// are the protocol's.
func TestResponseRoundTrip(t *testing.T) {
	for name, tc := range map[string]struct {
		r    Response
		want string // "" = not compared
	}{
		"Connected": {Response{Op: OpConnected, Re: 1, Status: StatusConnected, Pseudo: "alice", Salons: []string{"dev"}, SessionTimeoutMS: 30000, PollMS: 3000},
			`{"op":"connected","re":1,"status":"CONNECTÉ","pseudo":"alice","salons":["dev"],"session_timeout_ms":30000,"poll_ms":3000}`},
		"Ack": {Response{Op: OpAck, Re: 7, Msg: 1042, Portions: 3}, `{"op":"ack","re":7,"msg":1042,"portions":3}`},
		"Messages": {Response{Op: OpMessages, Re: 8, Salon: "general", More: true, Messages: []Message{
			{ID: 1, At: "2026-11-25T10:00:00.123Z", Pseudo: "bob", Text: "salut <&>"},
			{ID: 2, At: "2026-11-25T10:00:01.000Z", System: true, Text: "carol disconnected"}}},
			`{"op":"messages","re":8,"salon":"general","more":true,"messages":[{"id":1,"at":"2026-11-25T10:00:00.123Z","pseudo":"bob","text":"salut <&>"},{"id":2,"at":"2026-11-25T10:00:01.000Z","pseudo":"","system":true,"text":"carol disconnected"}]}`},
		"Salons":    {Response{Op: OpSalons, Re: 9, SalonList: []SalonInfo{{"general", 1042}, {"dev", 0}}}, `{"op":"salons","re":9,"salons":[{"name":"general","last":1042},{"name":"dev","last":0}]}`},
		"Who":       {Response{Op: OpWho, Re: 10, Salon: "general", Pseudos: []string{"alice"}}, `{"op":"who","re":10,"salon":"general","pseudos":["alice"]}`},
		"Resumed":   {Response{Op: OpResumed, Re: 11, Status: StatusConnected}, `{"op":"resumed","re":11,"status":"CONNECTÉ"}`},
		"Bye":       {Response{Op: OpBye, Re: 12}, `{"op":"bye","re":12}`},
		"Passwd":    {Response{Op: OpPasswd, Re: 13, Password: "abcd-efgh"}, `{"op":"passwd","re":13,"password":"abcd-efgh"}`},
		"Error":     {Response{Op: OpError, Re: 12, Code: CodeForbidden, Message: "no access to salon"}, `{"op":"error","re":12,"code":"forbidden","message":"no access to salon"}`},
		"ErrorNoRe": {Response{Op: OpError, Code: CodeCrypto, Message: "envelope rejected"}, `{"op":"error","code":"crypto","message":"envelope rejected"}`},
	} {
		t.Run(name, func(t *testing.T) {
			body := tc.r.Encode()
			if tc.want != "" && string(body) != tc.want {
				t.Fatalf("Encode:\n got %s\nwant %s", body, tc.want)
			}
			got, err := ParseResponse(body)
			if err != nil {
				t.Fatalf("ParseResponse(%s): %v", body, err)
			}
			if !reflect.DeepEqual(*got, tc.r) {
				t.Fatalf("round trip of %s:\n got %+v\nwant %+v", body, *got, tc.r)
			}
		})
	}
	t.Run("EmptyListsNotNull", func(t *testing.T) {
		for _, r := range []Response{{Op: OpConnected, Re: 1}, {Op: OpSalons, Re: 1}, {Op: OpWho, Re: 1}, {Op: OpMessages, Re: 1}} {
			if body := r.Encode(); strings.Contains(string(body), "null") {
				t.Errorf("%s", body)
			}
		}
	})
}

// TestParseResponseHostile: a body that is not an answer is refused
// whole; an ill-typed field keeps op and re so the waiting request can
// fail as a protocol violation.
func TestParseResponseHostile(t *testing.T) {
	for _, body := range []string{``, `[]`, `"x"`, `{}`, `{"op":""}`, `{"op":7,"re":1}`, `{"op":"ack"`} {
		if r, err := ParseResponse([]byte(body)); r != nil || err == nil {
			t.Errorf("ParseResponse(%s) = %+v, %v", body, r, err)
		}
	}
	for _, body := range []string{`{"op":"ack","re":4,"msg":"x"}`, `{"op":"connected","re":4,"salons":[{"name":"a"}]}`, `{"op":"salons","re":4,"salons":["a"]}`} {
		r, err := ParseResponse([]byte(body))
		if err == nil || r == nil || r.Re != 4 {
			t.Errorf("ParseResponse(%s) = %+v, %v; want op and re with an error", body, r, err)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{`{"op":"ack","re":1,"msg":2,"portions":1}`, `{"op":"connected","re":1,"salons":["a"]}`, `{"op":"salons","re":1,"salons":[{"name":"a","last":1}]}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseResponse(body)
		if r == nil && err == nil {
			t.Fatalf("nil response without an error for %q", body)
		}
		if r != nil && r.Op == "" {
			t.Fatalf("response without op from %q", body)
		}
	})
}
