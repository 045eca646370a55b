package chat

import (
	"context"
	"sync"
	"testing"
	"time"

	"librecord/net"
	"librecord/net/testkit"
)

// closingConn is a connection, as the replies of its requests see it,
// that the test closes: what was arranged with AfterClose then runs, each
// in its own goroutine, as context.AfterFunc does for the server's.
type closingConn struct {
	mu     sync.Mutex
	closed chan struct{}
	after  map[int]func()
	next   int
}

func newClosingConn() *closingConn {
	return &closingConn{closed: make(chan struct{}), after: map[int]func(){}}
}

func (c *closingConn) close() {
	c.mu.Lock()
	close(c.closed)
	fs := c.after
	c.after = nil
	c.mu.Unlock()
	for _, f := range fs {
		go f()
	}
}

func (c *closingConn) afterClose(f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.after == nil {
		go f()
		return func() bool { return false }
	}
	id := c.next
	c.next++
	c.after[id] = f
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.after[id]
		delete(c.after, id)
		return ok
	}
}

// countingReply is the Reply of one request on a closingConn: it counts
// what the hub does with it, and nothing it does panics.
type countingReply struct {
	conn     *closingConn
	mu       sync.Mutex
	sends    int
	drops    int
	answered chan struct{} // closed at the first Send or Drop
}

func newCountingReply(c *closingConn) *countingReply {
	return &countingReply{conn: c, answered: make(chan struct{})}
}

func (r *countingReply) note(send bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sends+r.drops == 0 {
		close(r.answered)
	}
	if send {
		r.sends++
	} else {
		r.drops++
	}
}

func (r *countingReply) Send([]byte)                     { r.note(true) }
func (r *countingReply) SendClose([]byte)                { r.note(true) }
func (r *countingReply) Drop()                           { r.note(false) }
func (r *countingReply) Done() <-chan struct{}           { return r.conn.closed }
func (r *countingReply) AfterClose(f func()) func() bool { return r.conn.afterClose(f) }

func (r *countingReply) Room() func() {
	select {
	case <-r.conn.closed:
		return nil
	default:
		return func() {}
	}
}

func (r *countingReply) counts() (sends, drops int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sends, r.drops
}

// TestParkedFetchDroppedOnClose (PROTOCOL.md 3.3): the parked fetches of
// a connection that closes are dropped, each exactly once and without an
// answer, even when a message arrives afterwards; and they give back what
// they held: the session's clock runs again (it times out), and Shutdown
// does not wait for them. A fetch parked on a connection still open is
// answered by the same message, so the silence of the others means
// something.
func TestParkedFetchDroppedOnClose(t *testing.T) {
	h, _, general := sessionHubWith(t, func(c *Config) { c.MaxParked = 0 })
	s := loginOn(t, h, nopConn{}, general)
	// Waits of an hour (the wire allows 25 s; the hub takes what the
	// parser let through): no deadline answers or drops anything here.
	fetch := func(id int64, r Reply) {
		h.Handle(s, &net.Request{Op: net.OpFetch, ID: id, Salon: general.Name,
			HasAfter: true, After: 0, WaitMS: 3600 * 1000}, 1, r)
	}
	closing, open := newClosingConn(), newClosingConn()
	var dropped []*countingReply
	for i := range 4 {
		r := newCountingReply(closing)
		fetch(int64(10+i), r)
		dropped = append(dropped, r)
	}
	control := newCountingReply(open)
	fetch(20, control)
	for _, r := range append(dropped, control) {
		if sends, drops := r.counts(); sends+drops != 0 {
			t.Fatalf("a fetch answered before any message: %d sends, %d drops", sends, drops)
		}
	}

	closing.close()
	for i, r := range dropped {
		select {
		case <-r.answered:
		case <-time.After(testkit.WaitTimeout):
			t.Fatalf("parked fetch %d not dropped after its connection closed", i)
		}
	}

	send := newReply()
	h.Handle(s, &net.Request{Op: net.OpSend, ID: 30, Salon: general.Name, Text: "after the close", Cid: "c30"}, 1, send)
	if a := send.wait(t); a.Op != net.OpAck {
		t.Fatalf("send: %+v", a)
	}
	select {
	case <-control.answered:
	case <-time.After(testkit.WaitTimeout):
		t.Fatal("the fetch parked on an open connection was not woken")
	}
	if sends, drops := control.counts(); sends != 1 || drops != 0 {
		t.Fatalf("the fetch on the open connection: %d sends, %d drops", sends, drops)
	}

	// Nothing is parked any more: the session's clock runs out.
	testkit.WaitFor(t, "the session to time out once its fetches are dropped", func() bool {
		expire(s)
		h.idle(s)
		return h.Sessions() == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown waited for dropped fetches: %v", err)
	}
	for i, r := range dropped {
		if sends, drops := r.counts(); sends != 0 || drops != 1 {
			t.Errorf("parked fetch %d of the closed connection: %d answers, %d drops; want no answer, one drop", i, sends, drops)
		}
	}
}
