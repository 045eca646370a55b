package net

import (
	stdnet "net"
	"net/netip"
	"testing"
)

func TestSourceOf(t *testing.T) {
	tests := []struct {
		name string
		a, b string // addresses
		same bool   // same source
	}{
		{"IPv4Same", "192.0.2.1", "192.0.2.1", true},
		{"IPv4Neighbours", "192.0.2.1", "192.0.2.2", false},
		{"IPv4Mapped", "::ffff:192.0.2.1", "192.0.2.1", true},
		{"IPv6Same64", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"IPv6Other64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"IPv6Zone", "fe80::1%eth0", "fe80::2", true},
		{"IPv4NotIPv6", "0.0.0.1", "::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := SourceOf(netip.MustParseAddr(tt.a))
			b := SourceOf(netip.MustParseAddr(tt.b))
			if (a == b) != tt.same {
				t.Fatalf("%s (%v) and %s (%v): same=%v, want %v", tt.a, a, tt.b, b, a == b, tt.same)
			}
		})
	}
}

func TestSourceBlock(t *testing.T) {
	a := SourceOf(netip.MustParseAddr("2001:db8:1:2::1"))
	b := SourceOf(netip.MustParseAddr("2001:db8:1:ffff::1"))
	c := SourceOf(netip.MustParseAddr("2001:db8:2:2::1"))
	ba, ok := a.Block()
	if !ok {
		t.Fatal("an IPv6 source has a block")
	}
	bb, _ := b.Block()
	bc, _ := c.Block()
	if a == b || ba != bb {
		t.Fatalf("two /64s of one /48: sources %v %v, blocks %v %v", a, b, ba, bb)
	}
	if ba == bc {
		t.Fatalf("two /48s share a block: %v", ba)
	}
	if ba.String() != "2001:db8:1::/48" || a.String() != "2001:db8:1:2::/64" {
		t.Fatalf("strings: %s %s", a, ba)
	}
	if _, ok := SourceOf(netip.MustParseAddr("::ffff:10.0.0.1")).Block(); ok {
		t.Fatal("an IPv4 source has no block")
	}
}

func TestSourceOfAddr(t *testing.T) {
	v4 := SourceOf(netip.MustParseAddr("127.0.0.2"))
	tests := []struct {
		name string
		addr stdnet.Addr
		want Source
	}{
		{"TCP", &stdnet.TCPAddr{IP: stdnet.ParseIP("127.0.0.2"), Port: 9}, v4},
		{"TCPMapped", &stdnet.TCPAddr{IP: stdnet.ParseIP("::ffff:127.0.0.2"), Port: 9}, v4},
		{"OtherWithPort", &stdnet.UDPAddr{IP: stdnet.ParseIP("127.0.0.2"), Port: 9}, v4},
		{"Pipe", pipeAddr{}, Source{}},
		{"Nil", nil, Source{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SourceOfAddr(tt.addr); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if (Source{}).String() != "unknown" || v4.String() != "127.0.0.2" {
		t.Fatal("strings")
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
