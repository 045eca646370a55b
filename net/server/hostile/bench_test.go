package hostile

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLoginUnderAttack measures a well-behaved client's login (dial,
// hello, login, bye) against the real binary with production Argon2id
// costs (password identifiers: t=2, 19 MiB), on a quiet server and under
// attack:
//
//   - Quiet: nothing else runs.
//   - HoldAndGuess: one source holds every connection not logged in it
//     may (--max-pending-per-source 16) and floods wrong passwords on
//     them (the per-source limit answers all but 5 a minute unchecked).
//   - GuessFlood: 32 attackers guess from ever new sources
//     (127.1.x.y), 5 guesses each, so that every guess is checked: the
//     worst case for the hash slots, which no per-source limit prevents.
//
// Each reports ns/op for the good login and the guesses checked meanwhile.
func BenchmarkLoginUnderAttack(b *testing.B) {
	db := newDB(b, false, "alice")
	srv := serve(b, db, "--login-limit", "5", "--max-pending-per-source", "16")
	var holders atomic.Int64
	attacks := []struct {
		name string
		run  func(ctx context.Context, c *tally)
	}{
		{"Quiet", nil},
		{"HoldAndGuess", func(ctx context.Context, c *tally) {
			// A fresh holding source each run: the last one is still limited.
			holdPending(ctx, srv.addr, fmt.Sprintf("127.0.0.%d", 2+holders.Add(1)), 32, c)
		}},
		{"GuessFlood", func(ctx context.Context, c *tally) { guessFlood(ctx, srv.addr, 32, c) }},
	}
	var next atomic.Int64 // good sources: one per login, so the good client is never limited
	for _, at := range attacks {
		b.Run(at.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			c := &tally{}
			var wg sync.WaitGroup
			if at.run != nil {
				wg.Add(1)
				go func() { defer wg.Done(); at.run(ctx, c) }()
				time.Sleep(2 * time.Second) // let the attack reach its steady state
			}
			b.ResetTimer()
			for range b.N {
				n := next.Add(1)
				if err := goodLogin(srv.addr, fmt.Sprintf("127.0.%d.%d", 200+n/250, 1+n%250)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			b.ReportMetric(float64(c.auth.Load()), "guesses-checked")
		})
	}
}

// goodLogin is one well-behaved login from local: dial, hello, login, bye.
func goodLogin(addr, local string) error {
	p, err := dialFrom(addr, local)
	if err != nil {
		return err
	}
	defer p.close()
	if err := p.hello(); err != nil {
		return err
	}
	a, err := p.login(password("alice"))
	if err != nil || a.str("op") != "connected" {
		return fmt.Errorf("login: %v %v", a, err)
	}
	_, err = p.call("bye", nil)
	return err
}

// guessFlood runs n attackers that guess from ever new sources.
func guessFlood(ctx context.Context, addr string, n int, c *tally) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1)
				local := fmt.Sprintf("127.1.%d.%d", (i/250)%250, 1+i%250)
				p, err := dialFrom(addr, local)
				if err != nil {
					continue
				}
				stop := context.AfterFunc(ctx, p.close)
				if p.hello() == nil {
					for g := range 5 {
						a, err := p.login(fmt.Sprintf("flood-%d-%d", i, g))
						if err != nil {
							break
						}
						c.note(a)
					}
				}
				stop()
				p.close()
			}
		}()
	}
	wg.Wait()
}
