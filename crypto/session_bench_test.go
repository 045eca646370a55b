package crypto

import (
	"bytes"
	"testing"
)

var body300 = bytes.Repeat([]byte("a"), 300)

func BenchmarkSeal300(b *testing.B) {
	client, _, _ := pair(b)
	b.ReportAllocs()
	for b.Loop() {
		client.Seal(body300)
	}
}

func BenchmarkOpen300(b *testing.B) {
	client, server, _ := pair(b)
	var envs [][]byte
	b.ReportAllocs()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		if len(envs) == 0 {
			for range 1024 {
				envs = append(envs, client.Seal(body300))
			}
		}
		env := envs[0]
		envs = envs[1:]
		b.StartTimer()
		if _, err := server.Open(env); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
	}
}

// BenchmarkSealOpen300 is one 300-byte body sealed by one side and opened
// by the other: the per-message cost of a request.
func BenchmarkSealOpen300(b *testing.B) {
	client, server, _ := pair(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := server.Open(client.Seal(body300)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshake is a full hello exchange plus both channels (the box
// key precomputation included): the per-session cost.
func BenchmarkHandshake(b *testing.B) {
	identity := NewIdentity()
	b.ReportAllocs()
	for b.Loop() {
		ck := NewSessionKeys()
		sk := NewSessionKeys()
		ch := ck.ClientHello()
		cp, err := ParseClientHello(ch)
		if err != nil {
			b.Fatal(err)
		}
		sp, _, err := ParseServerHello(sk.ServerHello(identity, ch), ch)
		if err != nil {
			b.Fatal(err)
		}
		NewChannel(ck, sp)
		NewChannel(sk, cp)
	}
}
