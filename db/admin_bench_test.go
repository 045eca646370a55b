package db

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkPruneWhileSending measures what a prune costs the sends that
// run beside it: a salon holds 30000 expired messages (100-byte texts);
// Prune deletes them in batches of b.N-independent size while one writer
// stores single messages (one commit and sync each, as a lone send does)
// back to back. It reports the sends' latency while the prune ran, and the
// prune's duration, for the default batch and for one transaction of all.
func BenchmarkPruneWhileSending(b *testing.B) {
	for _, batch := range []int{DefaultPruneBatch, 30000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchPrune(b, batch)
			}
		})
	}
}

func benchPrune(b *testing.B, batch int) {
	b.StopTimer()
	ctx := context.Background()
	d := testOpen(b)
	u := mustUser(b, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, _ := d.AddSalon(ctx, "dev")
	text := string(make([]byte, 100))
	for k := 0; k < 30; k++ {
		msgs := make([]NewMessage, 1000)
		for j := range msgs {
			msgs[j] = NewMessage{SalonID: gen.ID, UserID: u.ID, Cid: fmt.Sprint(k, "-", j), Pseudo: "alice", Text: text, Portions: 1}
		}
		if _, err := d.InsertMessages(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := d.SetRetention(ctx, "general", time.Hour); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		if n, err := d.Prune(ctx, time.Now().Add(2*time.Hour), batch); err != nil || n != 30000 {
			b.Errorf("prune: %d %v", n, err)
		}
		done <- time.Since(start)
	}()
	var lat []time.Duration
	var took time.Duration
	for i := 0; ; i++ {
		select {
		case took = <-done:
		default:
			start := time.Now()
			send(b, d, dev.ID, u, fmt.Sprint("s", len(lat)), "hello")
			lat = append(lat, time.Since(start))
			continue
		}
		break
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "send-p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "send-p99-µs")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "send-max-µs")
	}
	b.ReportMetric(float64(len(lat)), "sends-during")
	b.ReportMetric(float64(took.Milliseconds()), "prune-ms")
	d.Close()
}
