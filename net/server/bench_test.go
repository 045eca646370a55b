package server_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"librecord/net/server"
)

// BenchmarkSend measures end-to-end send throughput over loopback: real
// TCP, frames, sealed envelopes, the real SQLite file (synchronous=FULL)
// and an ack only once the message is durable. Each client sends 100-byte
// messages to "general", keeping `window` sends outstanding (1 is the
// chat's shape: type, wait for the ack). b.N is the total across clients.
func BenchmarkSend(b *testing.B) {
	for _, shape := range []struct{ clients, window int }{
		{1, 1}, {8, 1}, {32, 1}, {1, 32}, {32, 8},
	} {
		b.Run(fmt.Sprintf("clients=%d/window=%d", shape.clients, shape.window), func(b *testing.B) {
			f := newFixture(b, func(c *server.Config) { c.Chat.SendRate = 0 })
			pseudos := []string{"alice", "bob", "carol"}
			clients := make([]*client, shape.clients)
			for i := range clients {
				clients[i] = login(b, f.addr, pseudos[i%len(pseudos)])
			}
			text := strings.Repeat("x", 100)
			errs := make(chan error, shape.clients)
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, c := range clients {
				count := b.N / shape.clients
				if i < b.N%shape.clients {
					count++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.t = goT{TB: b, errs: errs}
					var pending []int64
					for j := range count {
						pending = append(pending, c.request("send", map[string]any{
							"salon": "general", "text": text, "cid": fmt.Sprintf("b%d-%d-%d", b.N, i, j)}))
						if len(pending) == shape.window || j == count-1 {
							for _, id := range pending {
								if a := c.await(id); a.str("op") != "ack" {
									c.t.Fatalf("send: %v", a)
								}
							}
							pending = pending[:0]
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			select {
			case err := <-errs:
				b.Fatal(err)
			default:
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			f.store.mu.Lock()
			b.ReportMetric(float64(f.store.stored)/float64(max(f.store.commits, 1)), "msgs/commit")
			f.store.mu.Unlock()
		})
	}
}
