package web

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzSourceOf: whatever the headers, the source is the peer or one of
// the addresses they name, never a panic, and an untrusted peer's headers
// are never read.
func FuzzSourceOf(f *testing.F) {
	f.Add("127.0.0.1:5000", "203.0.113.7", "")
	f.Add("127.0.0.1:5000", "198.51.100.1, 203.0.113.7", "10.1.2.3")
	f.Add("[::1]:80", "2001:db8::1,::ffff:1.2.3.4", "garbage")
	f.Add("192.0.2.1:1", "1.2.3.4", "")
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		trustedNet := netip.MustParsePrefix("127.0.0.0/8")
		trusted := func(a netip.Addr) bool { return trustedNet.Contains(a) || a == netip.IPv6Loopback() }
		got := sourceOf(remote, []string{xff1, xff2}, trusted)
		peer, err := netip.ParseAddrPort(remote)
		if err != nil {
			if got.IP != nil {
				t.Fatalf("unparsable peer %q gave %v", remote, got)
			}
			return
		}
		ga := got.AddrPort().Addr().Unmap()
		if ga == peer.Addr().Unmap() {
			return
		}
		if !trusted(peer.Addr().Unmap()) {
			t.Fatalf("untrusted peer %q: source %v taken from its headers", remote, got)
		}
		found := false
		for _, h := range strings.Split(xff1+","+xff2, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(h)); err == nil && a.Unmap() == ga {
				found = true
			}
		}
		if !found {
			t.Fatalf("source %v is neither the peer %q nor in %q, %q", got, remote, xff1, xff2)
		}
	})
}
