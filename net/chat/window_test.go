package chat

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"librecord/db"
	"librecord/net"
	"librecord/net/testkit"
)

// TestWindowSameAnswer: a fetch after a cursor answered from the salon's
// window of recent messages (filled by the group commit) is byte for byte
// the answer the database gives, for every cursor and limit, over texts
// that escape, system messages, duplicates and more messages and bytes
// than the window keeps; a cursor older than the window reads the
// database.
func TestWindowSameAnswer(t *testing.T) {
	ctx := context.Background()
	d, salon, u := devWithAlice(t)
	// Before the hub: the window's floor.
	if _, err := d.InsertMessages(ctx, []db.NewMessage{{SalonID: salon.ID, Text: "before", System: true}}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{MaxBody: 20000, MaxFetch: 500, MaxBatch: 10}
	h := New(d, cfg, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { h.Shutdown(ctx) })
	bare := &Hub{store: d, cfg: h.cfg, ctx: ctx, log: slog.New(slog.DiscardHandler)}

	var ids []int64
	for i := 0; i < 2*windowSize; {
		var batch []job
		for range 7 {
			n := (i * 37) % 4000
			text := strings.Repeat("x", n)
			switch i % 4 {
			case 1:
				text = strings.Repeat(`"`, n)
			case 2:
				text = strings.Repeat("\u2028", n/3+1)
			}
			m := &db.NewMessage{SalonID: salon.ID, UserID: u.ID, Cid: fmt.Sprint(i % (windowSize + 20)), Pseudo: "alice", Text: text, Portions: 1}
			if i%4 == 3 {
				m = &db.NewMessage{SalonID: salon.ID, Text: fmt.Sprintf("bob%d disconnected", i), System: true}
			}
			batch = append(batch, job{msg: m, done: func(st db.Stored, err error) {
				if err != nil {
					t.Errorf("store: %v", err)
				} else if !st.Duplicate {
					ids = append(ids, st.ID)
				}
			}})
			i++
		}
		h.commit(batch)
	}
	gen, err := h.changes(h.reads.mark())
	if err != nil {
		t.Fatal(err)
	}
	h.windows.mu.Lock()
	w := h.windows.m[salon.ID]
	h.windows.mu.Unlock()
	if w == nil || len(w.items) == 0 || w.floor <= ids[0] || w.bytes > windowBytes || len(w.items) > windowSize {
		t.Fatalf("window %+v", w)
	}
	windowed := 0
	for _, limit := range []int{1, 3, 40, 500} {
		cursors := append([]int64{0, w.floor - 1}, ids...)
		for _, after := range cursors {
			req := &net.Request{ID: after + 1, HasAfter: true, After: after}
			if _, _, ok := h.fromWindow(gen, salon.ID, req, limit); ok {
				windowed++
			} else if after >= w.floor {
				t.Fatalf("after %d (floor %d) not answered from the window", after, w.floor)
			}
			p, err := h.query(gen, salon, req, limit)
			if err != nil {
				t.Fatal(err)
			}
			q, err := bare.query(gen, salon, req, limit)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := h.pageBody(req, salon.Name, p), bare.pageBody(req, salon.Name, q); !bytes.Equal(got, want) {
				t.Fatalf("limit %d, after %d:\nwindow   %.300s\ndatabase %.300s", limit, after, got, want)
			}
		}
	}
	if windowed == 0 {
		t.Fatal("no fetch answered from the window")
	}
	// Another counter: the window is not used.
	if _, _, ok := h.fromWindow(gen+1, salon.ID, &net.Request{HasAfter: true, After: ids[len(ids)-1]}, 10); ok {
		t.Fatal("window used at another change counter")
	}
}

// TestWindowForIdleSalon: a long-poll on a salon with no window (nothing
// stored since the hub started) asks the writer for one; the next ones
// find nothing new there without a query, and see what is stored next.
func TestWindowForIdleSalon(t *testing.T) {
	ctx := context.Background()
	d, salon, _ := devWithAlice(t)
	st, err := d.InsertMessages(ctx, []db.NewMessage{{SalonID: salon.ID, Text: "before", System: true}})
	if err != nil {
		t.Fatal(err)
	}
	h := New(d, Config{MaxBody: 20000, MaxFetch: 500}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { h.Shutdown(ctx) })
	gen, err := h.changes(h.reads.mark())
	if err != nil {
		t.Fatal(err)
	}
	req := &net.Request{ID: 1, HasAfter: true, After: st[0].ID}
	if _, _, ok := h.fromWindow(gen, salon.ID, req, 10); ok {
		t.Fatal("a window before anything asked for one")
	}
	testkit.WaitFor(t, "the window", func() bool {
		items, more, ok := h.fromWindow(gen, salon.ID, req, 10)
		return ok && len(items) == 0 && !more
	})
	if _, _, ok := h.fromWindow(gen, salon.ID, &net.Request{ID: 1, HasAfter: true, After: 0}, 10); ok {
		t.Fatal("a cursor older than the window's floor answered from it")
	}
	stored := make(chan db.Stored, 1)
	if err := h.submit(job{msg: &db.NewMessage{SalonID: salon.ID, Text: "next", System: true}, done: func(st db.Stored, err error) {
		if err != nil {
			t.Error(err)
		}
		stored <- st
	}}); err != nil {
		t.Fatal(err)
	}
	next := <-stored
	items, _, ok := h.fromWindow(gen, salon.ID, req, 10)
	if !ok || len(items) != 1 || items[0].id != next.ID {
		t.Fatalf("after the next message: %v %v", items, ok)
	}
}
