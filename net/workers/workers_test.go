package workers

import (
	"sync"
	"testing"
	"time"

	"librecord/net/testkit"
)

// TestReuse: a task started after another ended runs on the same,
// idle goroutine, and tasks running at once each get a goroutine.
func TestReuse(t *testing.T) {
	p := New(time.Hour)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	testkit.WaitFor(t, "the goroutine idle", func() bool { return p.Idle() == 1 })

	// Three tasks at once: the idle goroutine and two new ones.
	var started, release sync.WaitGroup
	started.Add(3)
	release.Add(1)
	for range 3 {
		p.Go(func() {
			started.Done()
			release.Wait()
		})
	}
	started.Wait() // would hang if a task waited for another's goroutine
	if n := p.Idle(); n != 0 {
		t.Fatalf("%d idle while three tasks run", n)
	}
	release.Done()
	testkit.WaitFor(t, "three goroutines idle", func() bool { return p.Idle() == 3 })
}

// TestLinger: idle goroutines end after the linger time; a pool under a
// light load keeps only what it uses (the most recently idle first).
func TestLinger(t *testing.T) {
	p := New(50 * time.Millisecond)
	var release sync.WaitGroup
	release.Add(1)
	var started sync.WaitGroup
	started.Add(4)
	for range 4 {
		p.Go(func() {
			started.Done()
			release.Wait()
		})
	}
	started.Wait()
	release.Done()
	testkit.WaitFor(t, "four idle", func() bool { return p.Idle() == 4 })
	testkit.WaitFor(t, "all ended", func() bool { return p.Idle() == 0 })
	// Still usable after its goroutines ended.
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
}

// TestNil: a nil pool runs each task on a new goroutine.
func TestNil(t *testing.T) {
	var p *Pool
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
}

// BenchmarkGo compares handing a task that grows its stack to the pool
// with starting a goroutine for it.
func BenchmarkGo(b *testing.B) {
	task := func(done chan struct{}) func() {
		return func() {
			deep(64)
			done <- struct{}{}
		}
	}
	b.Run("pool", func(b *testing.B) {
		p := New(time.Minute)
		done := make(chan struct{})
		for b.Loop() {
			p.Go(task(done))
			<-done
		}
	})
	b.Run("go", func(b *testing.B) {
		done := make(chan struct{})
		for b.Loop() {
			go task(done)()
			<-done
		}
	})
}

// deep uses about n KiB of stack.
//
//go:noinline
func deep(n int) byte {
	var buf [1024]byte
	buf[n%1024] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n%1024]
}
