package net

import (
	stdnet "net"
	"net/netip"
)

// Source is what the per-source limits of PROTOCOL.md section 4 count
// together: an IPv4 address, or an IPv6 /64 (an IPv4-mapped IPv6
// address is its IPv4 source). Every per-source table of the server is
// keyed by a Source, so that the grouping rule lives here only. The
// zero Source stands for every peer whose address is not an IP address
// (an in-memory pipe): they are one source together.
type Source struct{ p netip.Prefix }

// SourceOf returns the source of an IP address.
func SourceOf(a netip.Addr) Source {
	a = a.Unmap().WithZone("")
	bits := 64
	switch {
	case a.Is4():
		bits = 32
	case !a.Is6():
		return Source{}
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return Source{}
	}
	return Source{p}
}

// SourceOfAddr returns the source of a peer address (a connection's
// RemoteAddr): its IP part, or the zero Source if it has none.
func SourceOfAddr(addr stdnet.Addr) Source {
	switch a := addr.(type) {
	case nil:
		return Source{}
	case *stdnet.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return Source{}
		}
		return SourceOf(ip)
	}
	if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		return SourceOf(ap.Addr())
	}
	if ip, err := netip.ParseAddr(addr.String()); err == nil {
		return SourceOf(ip)
	}
	return Source{}
}

// Block returns the wider group that failed logins are also counted in,
// with a larger budget: the /48 of an IPv6 source. An IPv4 source (or
// the zero Source) has none.
func (s Source) Block() (Source, bool) {
	if !s.p.IsValid() || s.p.Addr().Is4() {
		return Source{}, false
	}
	p, err := s.p.Addr().Prefix(48)
	if err != nil {
		return Source{}, false
	}
	return Source{p}, true
}

// String is the source for logs: "192.0.2.1", "2001:db8:1:2::/64",
// "unknown" for the zero Source.
func (s Source) String() string {
	switch {
	case !s.p.IsValid():
		return "unknown"
	case s.p.Addr().Is4():
		return s.p.Addr().String()
	}
	return s.p.String()
}
