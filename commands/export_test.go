package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"librecord/db"
)

// fill stores n messages of textLen bytes in salon, in batches.
func fill(t testing.TB, d *db.DB, salon string, n, textLen int) {
	t.Helper()
	ctx := context.Background()
	s, err := d.Salon(ctx, salon)
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.User(ctx, "filler")
	if errors.Is(err, db.ErrNotFound) {
		u, err = d.AddUser(ctx, "filler", "the filler's password", []string{salon})
	}
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", textLen)
	base := s.Last
	for done := 0; done < n; {
		batch := make([]db.NewMessage, 0, 500)
		for ; done < n && len(batch) < 500; done++ {
			batch = append(batch, db.NewMessage{SalonID: s.ID, UserID: u.ID, Cid: fmt.Sprint(base, "-", done), Pseudo: u.Pseudo, Text: text, Portions: 1})
		}
		if _, err := d.InsertMessages(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExport(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		ctx := context.Background()
		e := newInitEnv(t)
		d, gen, alice := e.aliceInGeneral(after)
		if _, err := d.InsertMessages(ctx, []db.NewMessage{
			{SalonID: gen.ID, UserID: alice.UserID, Cid: "1", Pseudo: "alice", Text: "bonjour", Portions: 1},
			{SalonID: gen.ID, Text: "bob disconnected", System: true},
			{SalonID: gen.ID, UserID: alice.UserID, Cid: "2", Pseudo: "alice", Text: "a <b> & \"c\"\nline two", Portions: 1},
		}); err != nil {
			t.Fatal(err)
		}
		text := e.mustRun("", after, "export", "--salon", "GENERAL")
		want := "PSEUDO : alice\nMESSAGE : bonjour ;\nPSEUDO : alice\nMESSAGE : a <b> & \"c\"\nline two ;\n"
		if text != want {
			t.Fatalf("text export:\n%q\nwant\n%q", text, want)
		}

		out := filepath.Join(e.dir, "general.jsonl")
		if got := e.mustRun("", after, "export", "--salon", "general", "--format", "json", "--out", out); got != "" {
			t.Fatalf("stdout with --out: %q", got)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != 3 || !strings.Contains(lines[2], `"text":"a <b> & \"c\"\nline two"`) {
			t.Fatalf("json export:\n%s", b)
		}
		var m messageJSON
		if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || !m.System || m.Text != "bob disconnected" || m.Salon != "general" || !strings.HasSuffix(m.At, "Z") {
			t.Fatalf("system line %q: %+v %v", lines[1], m, err)
		}
		if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
			t.Fatalf("export file mode %v", fi.Mode())
		}

		// --out never overwrites.
		_, _, err = e.run("", after, "export", "--salon", "general", "--out", out)
		if !errors.Is(err, db.ErrTargetExists) {
			t.Fatalf("existing --out: %v", err)
		}
		if b2, _ := os.ReadFile(out); string(b2) != string(b) {
			t.Fatal("--out file changed")
		}
		for name, args := range map[string][]string{
			"UnknownSalon": {"export", "--salon", "nope"},
			"NoSalon":      {"export"},
			"BadFormat":    {"export", "--salon", "general", "--format", "xml"},
		} {
			if _, _, err := e.run("", after, args...); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		// A failed export to --out leaves no file behind.
		missing := filepath.Join(e.dir, "missing.txt")
		if _, _, err := e.run("", after, "export", "--salon", "nope", "--out", missing); err == nil {
			t.Fatal("unknown salon accepted")
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatal("file left by a failed export")
		}
	})
}

// heapSampler is an io.Writer that, every so many writes, measures the live
// heap (after a GC) and keeps the peak.
type heapSampler struct {
	writes, every int
	peak          uint64
}

func (h *heapSampler) Write(p []byte) (int, error) {
	h.writes++
	if h.writes%h.every == 0 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.peak = max(h.peak, ms.HeapAlloc)
	}
	return len(p), nil
}

// TestExportStreams shows export's memory stays flat as the salon grows:
// exporting 4x more messages (12 MB more of text than the first run)
// peaks at about the same live heap. Were the salon loaded at once, the
// second peak would be at least 12 MB higher.
func TestExportStreams(t *testing.T) {
	const textLen, n = 8192, 500
	e := newInitEnv(t)
	d := e.open()
	peak := func() uint64 {
		h := &heapSampler{every: 8}
		if err := Export(context.Background(), d, h, ExportConfig{Salon: "general", Format: "text"}); err != nil {
			t.Fatal(err)
		}
		return h.peak
	}
	fill(t, d, "general", n, textLen)
	small := peak()
	fill(t, d, "general", 3*n, textLen)
	large := peak()
	t.Logf("peak live heap: %d messages %.1f MB, %d messages %.1f MB", n, float64(small)/1e6, 4*n, float64(large)/1e6)
	if grown := int64(large) - int64(small); grown > 4<<20 {
		t.Fatalf("live heap grew by %.1f MB for 3x more messages: export is not streaming", float64(grown)/1e6)
	}
}

// BenchmarkExport reports bytes allocated per exported message; with the
// peak-heap test above it shows memory is per message, not per salon.
func BenchmarkExport(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := newInitEnv(b)
			d, err := db.Open(context.Background(), e.db, []byte(testPassphrase))
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			fill(b, d, "general", n, 200)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := Export(context.Background(), d, io.Discard, ExportConfig{Salon: "general", Format: "json"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
		})
	}
}
