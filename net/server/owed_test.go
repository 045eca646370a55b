package server_test

import (
	"bufio"
	"errors"
	stdnet "net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/net"
	"librecord/net/server"
)

// pipeListener hands the server the ends of in-memory pipes, which buffer
// nothing: a server write blocks until the client reads it, and a client
// write until the server reads it. That makes "the server stopped reading"
// observable.
type pipeListener struct {
	conns chan stdnet.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (stdnet.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errors.New("listener closed")
	}
}

func (l *pipeListener) Close() error      { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() stdnet.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dialPipe serves a new pipe on f's server and returns a client logged in
// as pseudo on its other end.
func (f *fixture) dialPipe(t *testing.T, pseudo string) *client {
	t.Helper()
	l := &pipeListener{conns: make(chan stdnet.Conn, 1), done: make(chan struct{})}
	go f.srv.Serve(l)
	cl, sv := stdnet.Pipe()
	l.conns <- sv
	t.Cleanup(func() { cl.Close() })
	c := &client{t: t, nc: cl, fr: net.NewFrameReader(bufio.NewReader(cl), 0), stash: map[int64]answer{}}
	c.hello()
	if a := c.call("login", map[string]any{"password": passwords[pseudo]}); a.str("op") != "connected" {
		t.Fatalf("login %s: %v", pseudo, a)
	}
	return c
}

// owedBound is the most a connection may owe its peer: the queue's byte
// budget, plus one answer the reader builds and one a parked fetch builds.
func owedBound(cfg server.Config) int {
	return server.QueueBytes + 2*(net.MaxPayload(cfg.MaxPortions)-crypto.SealedOverhead)
}

// A peer that asks for large answers and reads none is not read further
// once it owes about QueueBytes: the server's memory for it stays bounded
// (before, it queued up to 256 answers of up to ~190 KB each).
func TestOwedAnswersStopReading(t *testing.T) {
	// The peer does not read for a while on purpose: do not drop it.
	f := newFixture(t, func(c *server.Config) { c.WriteTimeout = time.Minute })
	c := f.dialPipe(t, "alice")
	for range 3 {
		c.send("dev", strings.Repeat("x", 60000))
	}
	const n = 40 // answers of ~180 KB each: ~7 MB in all
	frames := make([][]byte, n)
	ids := make([]int64, n)
	for i := range frames {
		c.nextID++
		ids[i] = c.nextID
		env := c.sealRaw(`{"op":"fetch","id":` + itoa(c.nextID) + `,"salon":"dev","limit":3}`)
		frames[i] = net.AppendFrame(nil, env)
	}
	wrote := make(chan int, n)
	var writeErr error // set before wrote closes
	c.nc.SetWriteDeadline(time.Time{})
	go func() {
		defer close(wrote)
		for i, fr := range frames {
			if _, err := c.nc.Write(fr); err != nil {
				writeErr = err
				return
			}
			wrote <- i
		}
	}()
	written := 0
	for stalled := false; !stalled; {
		select {
		case _, ok := <-wrote:
			if !ok && writeErr != nil {
				t.Fatalf("write request: %v", writeErr)
			}
			if !ok {
				t.Fatalf("the server read all %d requests of a peer that reads nothing (it owes %d bytes, bound %d)",
					n, f.srv.Owed(), owedBound(f.cfg))
			}
			written++
		case <-time.After(time.Second):
			stalled = true // the server stopped reading
		}
	}
	if owed := f.srv.Owed(); owed > owedBound(f.cfg) {
		t.Fatalf("owes %d bytes, bound %d", owed, owedBound(f.cfg))
	}
	// Once the peer reads, the server reads on and answers everything.
	for _, id := range ids {
		if ms := messages(t, c.await(id)); len(ms) != 3 {
			t.Fatalf("fetch %d: %d messages", id, len(ms))
		}
	}
	for range wrote {
	}
	if writeErr != nil {
		t.Fatalf("write request: %v", writeErr)
	}
	if written >= n {
		t.Fatalf("all requests were read before the peer read anything")
	}
}

// Parked fetches that all wake at once on a large message do not queue
// their answers past the bound either.
func TestOwedParkedAnswersBounded(t *testing.T) {
	// The peer does not read for a while on purpose: do not drop it.
	f := newFixture(t, func(c *server.Config) {
		c.WriteTimeout = time.Minute
		c.Chat.MaxParked = 0 // more parked fetches than the default bound
	})
	c := f.dialPipe(t, "alice")
	last := c.send("dev", "start")
	const n = 40
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = c.request("fetch", map[string]any{"salon": "dev", "after": last, "wait_ms": 20000})
	}
	bob := login(t, f.addr, "bob")
	bob.send("dev", strings.Repeat("y", 60000)) // each woken answer is ~60 KB: ~2.4 MB in all
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if owed := f.srv.Owed(); owed > owedBound(f.cfg) {
			t.Fatalf("woken parked fetches queued %d bytes, bound %d", owed, owedBound(f.cfg))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, id := range ids {
		if ms := messages(t, c.await(id)); len(ms) != 1 {
			t.Fatalf("fetch %d: %d messages", id, len(ms))
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
