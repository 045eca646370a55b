package chat

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"librecord/net/testkit"
)

// gatedCounter is a change counter whose reads can be held, and which
// counts them.
type gatedCounter struct {
	Store
	mu    sync.Mutex
	n     int64
	calls int
	gate  chan struct{} // when set, a read waits for it after taking n
	in    chan struct{}
}

func (s *gatedCounter) Changes(ctx context.Context) (int64, error) {
	s.mu.Lock()
	s.calls++
	n, gate := s.n, s.gate
	s.gate = nil
	s.mu.Unlock()
	if gate != nil {
		s.in <- struct{}{}
		<-gate
	}
	return n, nil
}

// TestChangeReadsShared: callers asking while a read of the change
// counter runs share the next read, which starts after they asked: they
// see a change made while the first read ran, in one read for all.
func TestChangeReadsShared(t *testing.T) {
	s := &gatedCounter{gate: make(chan struct{}), in: make(chan struct{}, 1)}
	gate := s.gate
	h := &Hub{store: s, ctx: context.Background(), log: slog.New(slog.DiscardHandler)}
	first := make(chan int64)
	go func() {
		n, _ := h.readChanges()
		first <- n
	}()
	<-s.in // the first read took the counter and waits
	s.mu.Lock()
	s.n = 1 // a change, after the first read began
	s.mu.Unlock()
	const late = 5
	got := make(chan int64, late)
	for range late {
		go func() {
			n, _ := h.readChanges()
			got <- n
		}()
	}
	// The late callers wait for the first read to end before theirs
	// starts.
	testkit.WaitFor(t, "a late caller waiting", func() bool {
		h.reads.mu.Lock()
		defer h.reads.mu.Unlock()
		return h.reads.next != nil
	})
	close(gate)
	if n := <-first; n != 0 {
		t.Fatalf("first read %d, want 0", n)
	}
	for range late {
		if n := <-got; n != 1 {
			t.Fatalf("a late caller read %d: a read older than its call", n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls > 1+late || s.calls < 2 {
		t.Fatalf("%d reads", s.calls)
	}
	t.Logf("%d reads for %d callers", s.calls, 1+late)
}
