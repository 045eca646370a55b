package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
)

func mustUser(t testing.TB, d *DB, pseudo string, salons ...string) User {
	t.Helper()
	u, err := d.AddUser(context.Background(), pseudo, "password-of-"+pseudo, salons)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func send(t testing.TB, d *DB, salonID int64, u User, cid, text string) Stored {
	t.Helper()
	st, err := d.InsertMessages(context.Background(), []NewMessage{{
		SalonID: salonID, UserID: u.ID, Cid: cid, Pseudo: u.Pseudo, Text: text, Portions: 1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Err != nil {
		t.Fatal(st[0].Err)
	}
	return st[0]
}

func texts(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Text)
	}
	return out
}

func TestInsertAndPages(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, err := d.AddSalon(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := 1; i <= 10; i++ {
		ids = append(ids, send(t, d, gen.ID, alice, fmt.Sprint("c", i), fmt.Sprint("m", i)).ID)
		send(t, d, dev.ID, alice, fmt.Sprint("d", i), fmt.Sprint("dev", i)) // interleaved ids
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not increasing: %v", ids)
		}
	}
	tests := []struct {
		name     string
		get      func() ([]Message, bool, error)
		want     string
		wantMore bool
	}{
		{"Latest", func() ([]Message, bool, error) { return d.Latest(ctx, gen.ID, 3) }, "[m8 m9 m10]", true},
		{"LatestAll", func() ([]Message, bool, error) { return d.Latest(ctx, gen.ID, 10) }, "[m1 m2 m3 m4 m5 m6 m7 m8 m9 m10]", false},
		{"Before", func() ([]Message, bool, error) { return d.Before(ctx, gen.ID, ids[5], 2) }, "[m4 m5]", true},
		{"BeforeStart", func() ([]Message, bool, error) { return d.Before(ctx, gen.ID, ids[2], 5) }, "[m1 m2]", false},
		{"After", func() ([]Message, bool, error) { return d.After(ctx, gen.ID, ids[5], 2) }, "[m7 m8]", true},
		{"AfterEnd", func() ([]Message, bool, error) { return d.After(ctx, gen.ID, ids[7], 5) }, "[m9 m10]", false},
		{"AfterNothing", func() ([]Message, bool, error) { return d.After(ctx, gen.ID, ids[9], 5) }, "[]", false},
		{"AfterZero", func() ([]Message, bool, error) { return d.After(ctx, gen.ID, 0, 1) }, "[m1]", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, more, err := tt.get()
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(texts(msgs)); got != tt.want || more != tt.wantMore {
				t.Fatalf("got %s more=%v, want %s more=%v", got, more, tt.want, tt.wantMore)
			}
			for _, m := range msgs {
				if m.Salon != "general" || m.Pseudo != "alice" || m.System || m.At.IsZero() || m.At.Location().String() != "UTC" {
					t.Fatalf("bad message %+v", m)
				}
			}
		})
	}
	s, _ := d.Access(ctx, alice.ID, "general")
	if s.Last != ids[9] {
		t.Fatalf("Last = %d, want %d", s.Last, ids[9])
	}
	if _, _, err := d.Latest(ctx, gen.ID, 0); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

func TestInsertDedup(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	bob := mustUser(t, d, "bob", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, _ := d.AddSalon(ctx, "dev")

	first, err := d.InsertMessages(ctx, []NewMessage{{SalonID: gen.ID, UserID: alice.ID, Cid: "k1", Pseudo: "alice", Text: "hello", Portions: 3}})
	if err != nil {
		t.Fatal(err)
	}
	// Same cid, other salon, other text, other portions, in a batch with a
	// new message, the same cid twice and bob using the same cid.
	st, err := d.InsertMessages(ctx, []NewMessage{
		{SalonID: dev.ID, UserID: alice.ID, Cid: "k1", Pseudo: "alice", Text: "other", Portions: 1},
		{SalonID: gen.ID, UserID: alice.ID, Cid: "k2", Pseudo: "alice", Text: "new", Portions: 2},
		{SalonID: gen.ID, UserID: alice.ID, Cid: "k2", Pseudo: "alice", Text: "new again", Portions: 5},
		{SalonID: gen.ID, UserID: bob.ID, Cid: "k1", Pseudo: "bob", Text: "bob's", Portions: 1},
		{SalonID: gen.ID, Pseudo: "", Text: "carol disconnected", System: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := st[0]; !s.Duplicate || s.ID != first[0].ID || s.Portions != 3 || !s.At.Equal(first[0].At) {
		t.Errorf("retry = %+v, want first send %+v", s, first[0])
	}
	if s := st[1]; s.Duplicate || s.Portions != 2 {
		t.Errorf("new = %+v", s)
	}
	if s := st[2]; !s.Duplicate || s.ID != st[1].ID || s.Portions != 2 {
		t.Errorf("in-batch retry = %+v, want %+v", s, st[1])
	}
	if s := st[3]; s.Duplicate || s.ID == first[0].ID {
		t.Errorf("bob's k1 = %+v: cids are per user", s)
	}
	got, ok, err := d.LookupCid(ctx, alice.ID, "k2")
	if err != nil || !ok || got.ID != st[1].ID || got.Portions != 2 {
		t.Errorf("LookupCid = %+v %v %v", got, ok, err)
	}
	if _, ok, _ := d.LookupCid(ctx, alice.ID, "nope"); ok {
		t.Error("LookupCid found an unknown cid")
	}
	msgs, _, err := d.Latest(ctx, gen.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(texts(msgs)) != "[hello new bob's carol disconnected]" {
		t.Fatalf("stored %v", texts(msgs))
	}
	if last := msgs[3]; !last.System || last.Pseudo != "" {
		t.Fatalf("system message = %+v", last)
	}
	if n, _, _ := d.Latest(ctx, dev.ID, 10); len(n) != 0 {
		t.Fatalf("duplicate stored in dev: %v", texts(n))
	}
}

func TestInsertRemovedSalon(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, _ := d.AddSalon(ctx, "dev")
	if err := d.RemoveSalon(ctx, "dev", false); err != nil {
		t.Fatal(err)
	}
	st, err := d.InsertMessages(ctx, []NewMessage{
		{SalonID: dev.ID, UserID: alice.ID, Cid: "a", Pseudo: "alice", Text: "lost", Portions: 1},
		{SalonID: gen.ID, UserID: alice.ID, Cid: "b", Pseudo: "alice", Text: "kept", Portions: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(st[0].Err, ErrNotFound) || st[0].ID != 0 {
		t.Fatalf("message to removed salon: %+v", st[0])
	}
	if st[1].Err != nil || st[1].ID == 0 {
		t.Fatalf("other message: %+v", st[1])
	}
}

func TestInsertInvalid(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	gen, _ := d.Salon(ctx, "general")
	for name, m := range map[string]NewMessage{
		"SystemWithUser": {SalonID: gen.ID, UserID: 3, System: true, Text: "x"},
		"UserWithoutCid": {SalonID: gen.ID, UserID: 3, Text: "x"},
		"SystemWithCid":  {SalonID: gen.ID, System: true, Cid: "c", Text: "x"},
		"BadUTF8":        {SalonID: gen.ID, UserID: 3, Cid: "c", Text: "\xff"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := d.InsertMessages(ctx, []NewMessage{m}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if msgs, _, _ := d.Latest(ctx, gen.ID, 10); len(msgs) != 0 {
		t.Fatal("something was stored")
	}
}

// TestIdsNeverReused: after the newest messages are gone (salon purged),
// new ids still grow, so a client cursor never sees an old id again.
func TestIdsNeverReused(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	dev, _ := d.AddSalon(ctx, "dev")
	d.Grant(ctx, "dev", []string{"alice"})
	gen, _ := d.Salon(ctx, "general")
	send(t, d, gen.ID, alice, "1", "one")
	high := send(t, d, dev.ID, alice, "2", "two").ID
	if err := d.RemoveSalon(ctx, "dev", true); err != nil {
		t.Fatal(err)
	}
	if next := send(t, d, gen.ID, alice, "3", "three").ID; next <= high {
		t.Fatalf("id %d reused after %d was deleted", next, high)
	}
}

// TestBlobBinding moves and edits blobs behind the package's back, each
// case on a fresh database: the row refuses to open every time (it is
// skipped by the pages, logged once, and named by Export after the
// readable ones), and an untouched database opens.
func TestBlobBinding(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		stmt string // $A, $B: ids of two general messages, $C one of dev; ?1 blob of A
		dev  bool   // read dev rather than general
		bad  string // the row that no longer opens
	}{
		{"Untouched", ``, false, ""},
		{"MovedToOtherRow", `UPDATE messages SET blob = ?1 WHERE id = $B`, false, "B"},
		{"MovedToOtherSalon", `UPDATE messages SET blob = ?1 WHERE id = $C`, true, "C"},
		{"SenderChanged", `UPDATE messages SET user_id = user_id + 1 WHERE id = $A`, false, "A"},
		{"TimeChanged", `UPDATE messages SET at = at - 1000 WHERE id = $A`, false, "A"},
		{"RowMovedToOtherSalon", `UPDATE messages SET salon_id = (SELECT id FROM salons WHERE name = 'dev') WHERE id = $B`, true, "B"},
		{"Tampered", `UPDATE messages SET blob = CAST(substr(blob, 1, length(blob) - 1) || iif(substr(blob, -1) = x'00', x'01', x'00') AS BLOB) WHERE id = $A`, false, "A"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := testOpen(t)
			alice := mustUser(t, d, "alice", "general")
			gen, _ := d.Salon(ctx, "general")
			dev, _ := d.AddSalon(ctx, "dev")
			a := send(t, d, gen.ID, alice, "a", "secret a")
			b := send(t, d, gen.ID, alice, "b", "secret b")
			c := send(t, d, dev.ID, alice, "c", "secret c")
			raw, err := sql.Open("sqlite", "file:"+d.Path())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var blobA []byte
			if err := raw.QueryRow(`SELECT blob FROM messages WHERE id = ?`, a.ID).Scan(&blobA); err != nil {
				t.Fatal(err)
			}
			if bytesContain(blobA, "secret a") || bytesContain(blobA, "alice") {
				t.Fatal("pseudo or text in clear in the blob")
			}
			salon := gen.ID
			if tc.dev {
				salon = dev.ID
			}
			if tc.stmt != "" {
				stmt := strings.NewReplacer("$A", fmt.Sprint(a.ID), "$B", fmt.Sprint(b.ID), "$C", fmt.Sprint(c.ID)).Replace(tc.stmt)
				var args []any
				if strings.Contains(stmt, "?1") {
					args = append(args, blobA)
				}
				if _, err := raw.Exec(stmt, args...); err != nil {
					t.Fatal(err)
				}
			}
			logs := &strings.Builder{}
			d.SetLogger(slog.New(slog.NewTextHandler(logs, nil)))
			want := map[int64]bool{}
			for _, m := range []Stored{a, b, c} {
				want[m.ID] = true
			}
			bad := map[string]int64{"A": a.ID, "B": b.ID, "C": c.ID}[tc.bad]
			delete(want, bad)
			for range 2 {
				msgs, _, err := d.Latest(ctx, salon, 10)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					if !want[m.ID] {
						t.Fatalf("message %d read (bad %d)", m.ID, bad)
					}
				}
			}
			err = d.Export(ctx, map[bool]string{false: "general", true: "dev"}[tc.dev], func(Message) error { return nil })
			if tc.stmt == "" {
				if err != nil || logs.Len() != 0 {
					t.Fatalf("untouched: export %v, logs %s", err, logs)
				}
				return
			}
			var ue *UnreadableError
			if !errors.As(err, &ue) || len(ue.IDs) != 1 || ue.IDs[0] != bad {
				t.Fatalf("export: %v, want unreadable [%d]", err, bad)
			}
			if n := strings.Count(logs.String(), "message unreadable"); n != 1 || !strings.Contains(logs.String(), fmt.Sprintf("msg=%d", bad)) {
				t.Fatalf("logged %d times, want once with its id:\n%s", n, logs)
			}
		})
	}
}

func bytesContain(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}

// bigSalon fills general with n messages of size bytes each, in one
// commit, and returns their ids.
func bigSalon(t testing.TB, d *DB, n, size int) (Salon, []int64) {
	t.Helper()
	ctx := context.Background()
	u := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	msgs := make([]NewMessage, n)
	for i := range msgs {
		text := fmt.Sprintf("%03d ", i) + strings.Repeat("x", size-4)
		msgs[i] = NewMessage{SalonID: gen.ID, UserID: u.ID, Cid: fmt.Sprint(i), Pseudo: "alice", Text: text, Portions: 1}
	}
	st, err := d.InsertMessages(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, n)
	for i, s := range st {
		ids[i] = s.ID
	}
	return gen, ids
}

func ids(msgs []Message) []int64 {
	var out []int64
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

func TestPagesWithinBudget(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	const size = 1000
	gen, id := bigSalon(t, d, 30, size)
	// Each message counts 1100: the 3rd read takes the count over 3000.
	b := Budget{Bytes: 3000, PerMessage: 100}
	for name, tc := range map[string]struct {
		page     func(Budget) ([]Message, bool, error)
		want     []int64
		wantMore bool
	}{
		"Latest":      {func(b Budget) ([]Message, bool, error) { return d.LatestWithin(ctx, gen.ID, 20, b) }, id[27:], true},
		"Before":      {func(b Budget) ([]Message, bool, error) { return d.BeforeWithin(ctx, gen.ID, id[10], 20, b) }, id[7:10], true},
		"After":       {func(b Budget) ([]Message, bool, error) { return d.AfterWithin(ctx, gen.ID, id[10], 20, b) }, id[11:14], true},
		"CrossAtEnd":  {func(b Budget) ([]Message, bool, error) { return d.AfterWithin(ctx, gen.ID, id[26], 20, b) }, id[27:], false},
		"CrossAtHead": {func(b Budget) ([]Message, bool, error) { return d.BeforeWithin(ctx, gen.ID, id[3], 20, b) }, id[:3], false},
		"FirstAlone":  {func(Budget) ([]Message, bool, error) { return d.AfterWithin(ctx, gen.ID, 0, 20, Budget{Bytes: 10}) }, id[:1], true},
		"LimitFirst":  {func(b Budget) ([]Message, bool, error) { return d.LatestWithin(ctx, gen.ID, 2, b) }, id[28:], true},
		"FitsWhole": {func(Budget) ([]Message, bool, error) {
			return d.AfterWithin(ctx, gen.ID, id[20], 5, Budget{Bytes: 5 * size})
		}, id[21:26], true},
		"NoBudget": {func(Budget) ([]Message, bool, error) { return d.BeforeWithin(ctx, gen.ID, id[10], 20, Budget{}) }, id[:10], false},
	} {
		t.Run(name, func(t *testing.T) {
			msgs, more, err := tc.page(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(msgs); fmt.Sprint(got) != fmt.Sprint(tc.want) || more != tc.wantMore {
				t.Fatalf("got %v more %v, want %v more %v", got, more, tc.want, tc.wantMore)
			}
		})
	}
}

// TestPageBudgetBoundsReading: a page of limit 60 over large messages
// allocates about the budget's worth, not limit × size.
func TestPageBudgetBoundsReading(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	const n, size = 60, 8 << 10
	gen, _ := bigSalon(t, d, n, size)
	allocated := func(page func() ([]Message, bool, error)) (int, uint64) {
		var got int
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const runs = 3
		for range runs {
			msgs, _, err := page()
			if err != nil {
				t.Fatal(err)
			}
			got = len(msgs)
		}
		runtime.ReadMemStats(&after)
		return got, (after.TotalAlloc - before.TotalAlloc) / runs
	}
	wholeN, whole := allocated(func() ([]Message, bool, error) { return d.Latest(ctx, gen.ID, n) })
	budgetN, budget := allocated(func() ([]Message, bool, error) {
		return d.LatestWithin(ctx, gen.ID, n, Budget{Bytes: 2 * size})
	})
	t.Logf("limit %d of %d-byte messages: whole %d messages, %d bytes allocated; budget %d: %d messages, %d bytes",
		n, size, wholeN, whole, 2*size, budgetN, budget)
	if wholeN != n || whole < n*size {
		t.Fatalf("whole page: %d messages, %d bytes allocated: the measure is broken", wholeN, whole)
	}
	// 3 messages decrypted and one more row read: under 5 messages' worth
	// of what a whole page costs per message.
	if perMessage := whole / n; budgetN != 3 || budget > 5*perMessage {
		t.Fatalf("budgeted page: %d messages, %d bytes allocated, want 3 and at most %d", budgetN, budget, 5*perMessage)
	}
}

// BenchmarkFetchLarge: a fetch of limit 500 over 64 KiB messages, read
// whole (then trimmed by the chat rules) or within the budget of a
// default frame (1024 portions, about 196 KB of body).
func BenchmarkFetchLarge(b *testing.B) {
	ctx := context.Background()
	d := testOpen(b)
	const n, size = 500, 64 << 10
	gen, _ := bigSalon(b, d, n, size)
	for name, budget := range map[string]Budget{"Whole": {}, "Budget": {Bytes: 196_000, PerMessage: 60}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := d.LatestWithin(ctx, gen.ID, n, budget); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUnreadableRowsSkipped: rows that fail to decrypt are passed over by
// every page without shortening it, stalling a cursor or spending the
// budget.
func TestUnreadableRowsSkipped(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	var ids []int64
	for i := range 10 {
		ids = append(ids, send(t, d, gen.ID, alice, fmt.Sprint(i), strings.Repeat("x", 100)).ID)
	}
	raw, err := sql.Open("sqlite", "file:"+d.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// The 3rd to 7th no longer open.
	if _, err := raw.Exec(`UPDATE messages SET at = at - 1 WHERE id BETWEEN ? AND ?`, ids[2], ids[6]); err != nil {
		t.Fatal(err)
	}
	got := func(msgs []Message, more bool, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, m := range msgs {
			for i, id := range ids {
				if id == m.ID {
					s = append(s, fmt.Sprint(i+1))
				}
			}
		}
		return fmt.Sprintf("%s more=%v", strings.Join(s, ","), more)
	}
	for name, tc := range map[string]struct {
		got, want string
	}{
		"After":        {got(d.After(ctx, gen.ID, 0, 3)), "1,2,8 more=true"},
		"AfterRest":    {got(d.After(ctx, gen.ID, ids[7], 3)), "9,10 more=false"},
		"AfterInside":  {got(d.After(ctx, gen.ID, ids[2], 3)), "8,9,10 more=false"},
		"Latest":       {got(d.Latest(ctx, gen.ID, 3)), "8,9,10 more=true"},
		"Before":       {got(d.Before(ctx, gen.ID, ids[7], 3)), "1,2 more=false"},
		"BudgetAfter":  {got(d.AfterWithin(ctx, gen.ID, 0, 10, Budget{Bytes: 150, PerMessage: 10})), "1,2 more=true"},
		"BudgetLatest": {got(d.LatestWithin(ctx, gen.ID, 10, Budget{Bytes: 150, PerMessage: 10})), "9,10 more=true"},
		"BudgetSkips":  {got(d.AfterWithin(ctx, gen.ID, ids[1], 10, Budget{Bytes: 150, PerMessage: 10})), "8,9 more=true"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %s, want %s", tc.got, tc.want)
			}
		})
	}
}
