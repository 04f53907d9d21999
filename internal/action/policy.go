package action

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrHostRefused is wrapped by the errors of HTTP actions whose host the
// policy refuses.
var ErrHostRefused = errors.New("refused by policy")

// nonPublic lists ranges that are not reachable on the public internet, in
// addition to what netip.Addr classifies (loopback, link-local, private,
// multicast, unspecified). An action aimed at them could reach the cluster's
// own network or the cloud metadata service.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 could reach any IPv4, private ones included
	netip.MustParsePrefix("2002::/16"),      // 6to4 embeds arbitrary IPv4
	netip.MustParsePrefix("100::/64"),       // discard
}

// publicAddr reports whether addr is a global unicast address outside every
// non-public range.
func publicAddr(addr netip.Addr) bool {
	// An IPv4-mapped IPv6 address reaches the IPv4 host: judge that host.
	addr = addr.Unmap()
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// refuseNonPublic is a net.Dialer Control function: it runs after name
// resolution, on the very address about to be connected, and refuses it
// unless it is public.
func refuseNonPublic(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("address %q: %w", address, ErrHostRefused)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !publicAddr(addr) {
		return fmt.Errorf("address %s is not public: %w", host, ErrHostRefused)
	}
	return nil
}
