package db

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"librecord/crypto"
)

// BenchmarkInsertMessages: messages per second with one sync per batch
// (group commit) against one sync per message; synchronous=FULL.
func BenchmarkInsertMessages(b *testing.B) {
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			// Cancellable, as the server's context is.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			d := testOpen(b)
			u := mustUser(b, d, "alice", "general")
			gen, _ := d.Salon(ctx, "general")
			msgs := make([]NewMessage, batch)
			n := 0
			b.ResetTimer()
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				for j := range msgs {
					n++
					msgs[j] = NewMessage{SalonID: gen.ID, UserID: u.ID, Cid: fmt.Sprint(n), Pseudo: "alice", Text: "a message of about two hundred bytes, which is what people type in a chat most of the time, give or take a few words here and there, with an emoji or two and a link", Portions: 1}
				}
				if _, err := d.InsertMessages(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
			// The wall time is mostly the fsync; this is the CPU it costs.
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*batch), "cpu-µs/msg")
		})
	}
}

// BenchmarkPages: latest, before and after pages of 50 in a salon of
// 20000 messages spread over two salons.
func BenchmarkPages(b *testing.B) {
	ctx := context.Background()
	d := testOpen(b)
	u := mustUser(b, d, "alice", "general")
	gen, _ := d.Salon(ctx, "general")
	dev, _ := d.AddSalon(ctx, "dev")
	for i := 0; i < 40; i++ {
		msgs := make([]NewMessage, 500)
		for j := range msgs {
			s := gen.ID
			if j%2 == 1 {
				s = dev.ID
			}
			msgs[j] = NewMessage{SalonID: s, UserID: u.ID, Cid: fmt.Sprint(i, "-", j), Pseudo: "alice", Text: "hello there", Portions: 1}
		}
		if _, err := d.InsertMessages(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
	last, _ := d.Salon(ctx, "general")
	mid := last.Last / 2
	for name, f := range map[string]func() error{
		"Latest": func() error { _, _, err := d.Latest(ctx, gen.ID, 50); return err },
		"Before": func() error { _, _, err := d.Before(ctx, gen.ID, mid, 50); return err },
		"After":  func() error { _, _, err := d.After(ctx, gen.ID, mid, 50); return err },
	} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuthenticate at the production password cost: what one login
// costs the server (the hash dominates).
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "prod.db")
	pw := crypto.DefaultPasswordKDF()
	// Production password cost, cheap passphrase (it is paid once).
	if err := Create(ctx, path, testPass, CreateOptions{KDF: &testKDF}); err != nil {
		b.Fatal(err)
	}
	d, err := Open(ctx, path, testPass)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	d.pwKDF = pw
	if _, err := d.AddUser(ctx, "alice", "alice's password", nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Authenticate(ctx, "password-of-alice"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchCycle: the queries one long-poll cycle of the chat runs
// against the database, each on its own: the access check, the credential
// check and the page read after the newest id (empty: nothing new, the
// common case) and after the one before it (one new message).
//
// The context can be cancelled, as the server's is (the driver then
// watches it during each query).
func BenchmarkFetchCycle(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := testOpen(b)
	u := mustUser(b, d, "alice", "general")
	cred, err := d.Authenticate(ctx, "password-of-alice")
	if err != nil {
		b.Fatal(err)
	}
	gen, _ := d.Salon(ctx, "general")
	msgs := make([]NewMessage, 1000)
	for j := range msgs {
		msgs[j] = NewMessage{SalonID: gen.ID, UserID: u.ID, Cid: fmt.Sprint(j), Pseudo: "alice", Text: "a chat line of about a hundred bytes, which is what people type most of the time, more or less", Portions: 1}
	}
	stored, err := d.InsertMessages(ctx, msgs)
	if err != nil {
		b.Fatal(err)
	}
	last := stored[len(stored)-1].ID
	for name, f := range map[string]func() error{
		"Access": func() error { _, err := d.Access(ctx, u.ID, "general"); return err },
		"Valid": func() error {
			ok, err := d.Valid(ctx, cred)
			if err == nil && !ok {
				err = fmt.Errorf("credential not valid")
			}
			return err
		},
		"AfterNone": func() error { _, _, err := d.After(ctx, gen.ID, last, 100); return err },
		"AfterOne":  func() error { _, _, err := d.After(ctx, gen.ID, last-1, 100); return err },
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRotateKey: a whole key rotation of a database of 100,000
// messages of ~200 bytes (one salon), per batch size: re-encryption in
// transactions of that many messages, the final swap, VACUUM and the
// truncating checkpoint. Each iteration rotates the same database again.
func BenchmarkRotateKey(b *testing.B) {
	const n = 100_000
	for _, batch := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			// Cancellable, as the server's context is.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			d := testOpen(b)
			u := mustUser(b, d, "alice", "general")
			gen, _ := d.Salon(ctx, "general")
			msgs := make([]NewMessage, 1000)
			for start := 0; start < n; start += len(msgs) {
				for j := range msgs {
					msgs[j] = NewMessage{SalonID: gen.ID, UserID: u.ID, Cid: fmt.Sprint(start + j), Pseudo: "alice", Text: "a message of about two hundred bytes, which is what people type in a chat most of the time, give or take a few words here and there, with an emoji or two and a link", Portions: 1}
				}
				if _, err := d.InsertMessages(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := d.RotateKey(ctx, testPass, RotateOptions{BatchSize: batch})
				if err != nil || res.Reencrypted != n {
					b.Fatalf("%+v %v", res, err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
