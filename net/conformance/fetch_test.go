package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func ids(ms []message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func wantTexts(t *testing.T, what string, got []message, want ...string) {
	t.Helper()
	if strings.Join(texts(got), "|") != strings.Join(want, "|") {
		t.Fatalf("%s: got %q, want %q", what, texts(got), want)
	}
}

func mk(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("m%d", i))
	}
	return out
}

// TestFetchCursors: shapes, default limit, before/after/none, more.
func TestFetchCursors(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--max-fetch", "20"}})
	a := connect(t, s, "alice")
	msgs, more, m := a.fetch(obj{"salon": "general"})
	if len(msgs) != 0 || more {
		t.Fatalf("empty salon: %s", m.bodyRaw)
	}
	wantKeys(t, m, "op", "re", "salon", "more", "messages")
	var id []int64
	for i := 1; i <= 15; i++ {
		id = append(id, a.send("general", fmt.Sprintf("m%d", i)))
	}
	a.send("dev", "elsewhere")

	msgs, more, m = a.fetch(obj{"salon": "general"})
	wantTexts(t, "default limit", msgs, mk(6, 15)...)
	if !more || m.body.str("salon") != "general" {
		t.Fatalf("default: more=%v %s", more, m.bodyRaw)
	}
	arr := m.body["messages"].([]any)
	for _, e := range arr {
		o := obj(e.(map[string]any))
		for k := range o {
			if k != "id" && k != "at" && k != "pseudo" && k != "text" && k != "system" {
				t.Errorf("message has unexpected field %q: %v", k, o)
			}
		}
		if v, ok := o["system"]; ok && v != false {
			t.Errorf("user message marked system: %v", o)
		}
		if o.str("pseudo") != "alice" {
			t.Errorf("pseudo: %v", o)
		}
	}
	check := func(name string, f obj, wantMore bool, want ...string) {
		t.Helper()
		f["salon"] = "general"
		msgs, more, _ := a.fetch(f)
		wantTexts(t, name, msgs, want...)
		if more != wantMore {
			t.Fatalf("%s: more=%v, want %v", name, more, wantMore)
		}
	}
	check("limit 15", obj{"limit": 15}, false, mk(1, 15)...)
	check("limit 20", obj{"limit": 20}, false, mk(1, 15)...)
	check("limit 14", obj{"limit": 14}, true, mk(2, 15)...)
	check("limit 1", obj{"limit": 1}, true, "m15")
	check("before m6", obj{"limit": 3, "before": id[5]}, true, mk(3, 5)...)
	check("before m4", obj{"limit": 3, "before": id[3]}, false, mk(1, 3)...)
	check("before m1", obj{"limit": 3, "before": id[0]}, false)
	check("before default", obj{"before": id[14]}, true, mk(5, 14)...)
	check("after m10", obj{"limit": 3, "after": id[9]}, true, mk(11, 13)...)
	check("after m12", obj{"limit": 3, "after": id[11]}, false, mk(13, 15)...)
	check("after m15", obj{"limit": 3, "after": id[14]}, false)
	check("after m1 default", obj{"after": id[0]}, true, mk(2, 11)...)
	// wait_ms without after is ignored, not even range-checked.
	check("wait_ms alone", obj{"limit": 1, "wait_ms": 99999999}, true, "m15")
	check("wait_ms before", obj{"limit": 1, "before": id[1], "wait_ms": -5}, false, "m1")
	// wait_ms with after and something new: at once.
	check("wait_ms after new", obj{"limit": 1, "after": id[13], "wait_ms": 25000}, false, "m15")

	bad := []obj{
		{"limit": 0}, {"limit": -1}, {"limit": 21}, {"limit": 1.5}, {"limit": "5"},
		{"before": id[5], "after": id[1]},
		{"before": "3"}, {"after": 1.5}, {"after": true},
		{"after": id[14], "wait_ms": 25001}, {"after": id[14], "wait_ms": -1},
		{"after": id[14], "wait_ms": "10"}, {"after": id[14], "wait_ms": 1.5},
	}
	for _, f := range bad {
		f["op"] = "fetch"
		f["salon"] = "general"
		a.doErr(f, "bad_request")
	}
	check("limit max", obj{"limit": 20, "after": id[0]}, false, mk(2, 15)...)
}

// TestLongPoll: a parked fetch answers as soon as a message arrives in its
// salon (not another), other requests are served meanwhile, and it answers
// an empty list after wait_ms.
func TestLongPoll(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	b := connect(t, s, "bob")
	cc := connect(t, s, "carol")
	last := b.send("general", "before")

	parked := a.request(obj{"op": "fetch", "salon": "general", "after": last, "wait_ms": 25000})
	// Served meanwhile, answered first.
	m := a.do(obj{"op": "salons"})
	if m.body.str("op") != "salons" {
		t.Fatalf("salons while parked: %s", m.bodyRaw)
	}
	cc.send("dev", "in dev")
	newID := b.send("general", "wake up")
	m = a.readT(8 * time.Second)
	if re, _ := m.body.intField("re"); re != parked {
		t.Fatalf("expected the parked fetch, got %s", m.bodyRaw)
	}
	msgs := messagesOf(t, m)
	if len(msgs) == 0 || msgs[0].ID != newID || msgs[0].Text != "wake up" {
		t.Fatalf("parked fetch answer: %s", m.bodyRaw)
	}
	if m.body.boolField(t, "more") {
		t.Fatalf("more on a fresh answer: %s", m.bodyRaw)
	}
	// Timeout: an empty list.
	msgs, more, _ := a.fetch(obj{"salon": "general", "after": newID, "wait_ms": 300})
	if len(msgs) != 0 || more {
		t.Fatalf("timed-out fetch: %v %v", msgs, more)
	}
	msgs, _, _ = a.fetch(obj{"salon": "general", "after": newID, "wait_ms": 0})
	if len(msgs) != 0 {
		t.Fatalf("wait_ms 0: %v", msgs)
	}
}

// TestParkedFetchStopsSessionClock: a parked fetch keeps the session alive
// past the session timeout.
func TestParkedFetchStopsSessionClock(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{flags: []string{"--session-timeout", "1200ms"}})
	a := connect(t, s, "alice")
	last := a.send("general", "x")
	msgs, _, _ := a.fetch(obj{"salon": "general", "after": last, "wait_ms": 2500})
	if len(msgs) != 0 {
		t.Fatalf("unexpected %v", msgs)
	}
	// The time parked does not count: the session is far from its timeout.
	time.Sleep(300 * time.Millisecond)
	a.doOK(obj{"op": "salons"})
}

// TestParkedFetchDroppedOnClose: a parked fetch whose connection closes is
// dropped, never answered on the resumed connection.
func TestParkedFetchDroppedOnClose(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	b := connect(t, s, "bob")
	last := b.send("general", "x")
	a.request(obj{"op": "fetch", "id": 777777, "salon": "general", "after": last, "wait_ms": 20000})
	a.doOK(obj{"op": "salons"}) // the fetch is parked by now
	a.close()
	r := a.resumeConn()
	r.doOK(obj{"op": "resume"})
	b.send("general", "wake")
	msgs, _, _ := r.fetch(obj{"salon": "general", "after": last})
	if len(msgs) != 1 {
		t.Fatalf("fetch after resume: %v", msgs)
	}
	r.doOK(obj{"op": "salons"}) // do fails if a stray answer (re 777777) arrives
}

// TestFetchTrimmedToOneFrame: an answer that would not fit in one frame
// carries fewer messages, those nearest the cursor, with more: true.
func TestFetchTrimmedToOneFrame(t *testing.T) {
	t.Parallel()
	s := smallServer(t)
	a := connect(t, s, "alice")
	var id []int64
	for i := 0; i < 6; i++ {
		id = append(id, a.send("general", fmt.Sprintf("%d%s", i, strings.Repeat(`"`, 999))))
	}
	first := func(ms []message) []int64 { return ids(ms) }
	// No cursor: the newest.
	msgs, more, m := a.fetch(obj{"salon": "general", "limit": 6})
	if len(msgs) == 0 || len(msgs) >= 6 || !more || msgs[len(msgs)-1].ID != id[5] {
		t.Fatalf("no cursor: ids %v more %v (%d portions)", first(msgs), more, m.portions)
	}
	k := len(msgs)
	for i, mm := range msgs {
		if mm.ID != id[6-k+i] {
			t.Fatalf("no cursor: ids %v, want the newest %d", first(msgs), k)
		}
	}
	// after: the oldest after the cursor.
	msgs, more, _ = a.fetch(obj{"salon": "general", "limit": 5, "after": id[0]})
	if len(msgs) == 0 || len(msgs) >= 5 || !more || msgs[0].ID != id[1] {
		t.Fatalf("after: ids %v more %v", first(msgs), more)
	}
	// before: the newest before the cursor.
	msgs, more, _ = a.fetch(obj{"salon": "general", "limit": 5, "before": id[5]})
	if len(msgs) == 0 || len(msgs) >= 5 || !more || msgs[len(msgs)-1].ID != id[4] {
		t.Fatalf("before: ids %v more %v", first(msgs), more)
	}
	// A long-poll answer is trimmed too.
	parked := a.request(obj{"op": "fetch", "salon": "general", "after": id[5], "limit": 5, "wait_ms": 20000})
	a.doOK(obj{"op": "salons"})
	b := connect(t, s, "bob")
	for i := 0; i < 4; i++ {
		b.send("general", strings.Repeat(`"`, 1000))
	}
	for {
		m := a.read()
		if re, _ := m.body.intField("re"); re == parked {
			if len(messagesOf(t, m)) == 0 {
				t.Fatal("empty wake-up answer")
			}
			break
		}
	}
}

// TestRevokeParkedFetch: access is checked when a parked fetch answers.
func TestRevokeParkedFetch(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	cc := connect(t, s, "carol")
	last := cc.send("dev", "before")
	parked := a.request(obj{"op": "fetch", "salon": "dev", "after": last, "wait_ms": 20000})
	a.doOK(obj{"op": "salons"})
	s.admin("", "salon", "revoke", "dev", "alice")
	cc.send("dev", "secret after revoke")
	m := a.read()
	if re, _ := m.body.intField("re"); re != parked {
		t.Fatalf("expected the parked fetch, got %s", m.bodyRaw)
	}
	if strings.Contains(string(m.bodyRaw), "secret") {
		t.Fatalf("revoked user got the message: %s", m.bodyRaw)
	}
	checkError(t, m, "forbidden")
	a.doErr(obj{"op": "fetch", "salon": "dev"}, "forbidden")
	a.doErr(obj{"op": "send", "salon": "dev", "text": "x", "cid": randCID()}, "forbidden")
	sm := a.doOK(obj{"op": "salons"})
	if strings.Contains(string(sm.bodyRaw), `"dev"`) {
		t.Fatalf("revoked salon still listed: %s", sm.bodyRaw)
	}
	w := cc.doOK(obj{"op": "who", "salon": "dev"})
	if strings.Contains(string(w.bodyRaw), "alice") {
		t.Fatalf("who lists a revoked user: %s", w.bodyRaw)
	}
}
