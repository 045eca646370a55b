// Package workers runs short tasks on goroutines that stay a while after
// their task ends, so that the next task starts on a stack that has grown
// already.
//
// The server runs every request, every connection's writer and every
// woken long-poll on a goroutine of its own, so that a connection idle in
// a read keeps a small stack (issue 9: memory per session). A new
// goroutine starts with a small stack, and the Ed25519 and SQLite calls
// each task makes grow it by copying, every time: about 5% of the
// server's CPU under load. A Pool keeps the goroutines that finished a
// task idle for Linger, most recently idle first, and hands them the next
// tasks; the idle ones beyond what the load needs end.
package workers

import (
	"slices"
	"sync"
	"time"
)

// Pool runs tasks on goroutines it keeps for a while. The zero Pool is
// not usable; a nil *Pool runs each task on a new goroutine.
type Pool struct {
	linger time.Duration
	mu     sync.Mutex
	idle   []*worker // most recently idle last
}

type worker struct {
	tasks chan func() // holds at most the one task handed to it
}

// New returns a pool whose goroutines end after linger with no task.
func New(linger time.Duration) *Pool {
	return &Pool{linger: linger}
}

// Go runs f on an idle goroutine of the pool, or on a new one. It never
// blocks.
func (p *Pool) Go(f func()) {
	if p == nil {
		go f()
		return
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.tasks <- f // off the idle list: nobody else sends to it
		return
	}
	p.mu.Unlock()
	go p.run(&worker{tasks: make(chan func(), 1)}, f)
}

// Idle reports how many goroutines wait for a task.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// run runs f, then the tasks handed to w, until w has waited linger.
func (p *Pool) run(w *worker, f func()) {
	t := time.NewTimer(p.linger)
	defer t.Stop()
	for {
		f()
		f = nil
		p.mu.Lock()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		t.Reset(p.linger)
		select {
		case f = <-w.tasks:
		case <-t.C:
			p.mu.Lock()
			i := slices.Index(p.idle, w)
			if i >= 0 {
				p.idle = slices.Delete(p.idle, i, i+1)
			}
			p.mu.Unlock()
			if i >= 0 {
				return
			}
			f = <-w.tasks // taken off the list as the wait ended: its task comes
		}
	}
}
