package action

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"
	"syscall"
)

// ErrHostRefused is wrapped by the errors of HTTP actions whose host the
// policy refuses.
var ErrHostRefused = errors.New("refused by policy")

// The address policy of HTTP actions, checked on the address about to be
// dialled (after name resolution, so DNS rebinding gains nothing):
//
//   - never dialled, whatever --allowed-action-hosts says: link-local
//     addresses (169.254.0.0/16, fe80::/10), the cloud metadata services
//     (metadataAddrs), unspecified, multicast and broadcast addresses;
//   - without an allow-list: only public addresses; an IPv4-mapped IPv6
//     address is judged as its IPv4 address, every other form that embeds
//     an IPv4 address (IPv4-compatible, NAT64, 6to4, Teredo) is refused;
//   - with an allow-list: loopback, private and the other non-public
//     addresses only when the allow-list names them explicitly (see
//     explicitlyAllowed); an address embedding IPv4 addresses is judged as
//     each of them, so a NAT64 or 6to4 form of the metadata address is
//     refused as the address itself is.

// metadataAddrs are the instance metadata endpoints of the clouds: they hand
// out the node's credentials, so no HTTP action may reach them. Those in
// 169.254.0.0/16 are covered by the link-local rule as well.
var metadataAddrs = []netip.Prefix{
	netip.MustParsePrefix("169.254.169.254/32"), // AWS, GCP, Azure, OpenStack, Oracle
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IMDS over IPv6
	netip.MustParsePrefix("fd20:ce::254/128"),   // GCP metadata over IPv6
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("192.0.0.192/32"),     // Oracle Cloud (legacy)
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure WireServer
}

// nonPublic lists ranges that are not reachable on the public internet, in
// addition to what netip.Addr classifies (loopback, link-local, private,
// multicast, unspecified). An action aimed at them could reach the cluster's
// own network.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("100::/64"),       // discard
}

// The IPv6 ranges that embed IPv4 addresses, besides IPv4-mapped ones.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")        // deprecated, ::a.b.c.d
	nat64          = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64 prefix
	sixToFour      = netip.MustParsePrefix("2002::/16")    // 6to4, 2002:aabb:ccdd::/48
	teredo         = netip.MustParsePrefix("2001::/32")    // Teredo, server and client
)

// embeddedIPv4 returns the IPv4 addresses that addr reaches through a
// translation or a tunnel, and whether it is such an address at all.
// Teredo embeds two: its server's, and its client's with every bit flipped.
func embeddedIPv4(addr netip.Addr) ([]netip.Addr, bool) {
	if !addr.Is6() || addr.Is4In6() {
		return nil, false
	}
	b := addr.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte(b[i : i+4])) }
	switch {
	case ipv4Compatible.Contains(addr) && !addr.IsUnspecified() && !addr.IsLoopback():
		return []netip.Addr{v4(12)}, true
	case nat64.Contains(addr):
		return []netip.Addr{v4(12)}, true
	case sixToFour.Contains(addr):
		return []netip.Addr{v4(2)}, true
	case teredo.Contains(addr):
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		return []netip.Addr{v4(4), netip.AddrFrom4(client)}, true
	}
	return nil, false
}

// neverDialled reports whether addr is refused in every mode.
func neverDialled(addr netip.Addr) bool {
	if addr.IsLinkLocalUnicast() || addr.IsUnspecified() || addr.IsMulticast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() ||
		addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	return slices.ContainsFunc(metadataAddrs, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// publicAddr reports whether addr is a global unicast address outside every
// non-public range, the only addresses dialled without an allow-list.
func publicAddr(addr netip.Addr) bool {
	// An IPv4-mapped IPv6 address reaches the IPv4 host: judge that host.
	addr = addr.Unmap()
	if neverDialled(addr) || !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return false
	}
	if _, embeds := embeddedIPv4(addr); embeds {
		return false
	}
	return !slices.ContainsFunc(nonPublic, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// allowListed reports whether addr, dialled for host, passes the policy of
// an allow-list that host matches.
func allowListed(host string, addr netip.Addr, globs []string) bool {
	addr = addr.Unmap()
	if embedded, ok := embeddedIPv4(addr); ok {
		return !slices.ContainsFunc(embedded, func(v4 netip.Addr) bool { return !allowListed(host, v4, globs) })
	}
	if neverDialled(addr) {
		return false
	}
	return publicAddr(addr) || explicitlyAllowed(host, addr, globs)
}

// explicitlyAllowed reports whether the allow-list names host or addr
// explicitly, which lets a loopback or private address be dialled: an entry
// without wildcards equal to host (e.g. `hooks.corp.internal`,
// `127.0.0.1`), or an address pattern matching addr (e.g. `10.0.*`,
// `fd12:*`). A wildcard entry such as `*.example.com` or `*` lets no name
// resolve into the cluster's network: it would let a tenant who controls
// one such name (or its DNS) reach the controller's own network.
func explicitlyAllowed(host string, addr netip.Addr, globs []string) bool {
	host = strings.ToLower(host)
	return slices.ContainsFunc(globs, func(glob string) bool {
		glob = strings.ToLower(glob)
		literal, hasWildcard := literalPrefix(glob)
		if !hasWildcard {
			return glob == host || glob == addr.String()
		}
		ok, err := path.Match(glob, addr.String())
		return err == nil && ok && isAddressPrefix(literal)
	})
}

// literalPrefix returns the part of glob before its first metacharacter, and
// whether it has one.
func literalPrefix(glob string) (string, bool) {
	if i := strings.IndexAny(glob, `*?[\`); i >= 0 {
		return glob[:i], true
	}
	return glob, false
}

// isAddressPrefix reports whether s reads as the start of an IP address: hex
// digits with at least one dot or colon, as in `10.0.` or `fd12:`.
func isAddressPrefix(s string) bool {
	if !strings.ContainsAny(s, ".:") {
		return false
	}
	return strings.Trim(s, "0123456789abcdef.:") == ""
}

// hostAllowed reports whether host matches one of the globs.
func hostAllowed(host string, globs []string) bool {
	host = strings.ToLower(host)
	return slices.ContainsFunc(globs, func(glob string) bool {
		ok, err := path.Match(strings.ToLower(glob), host)
		return err == nil && ok
	})
}

// dialControl returns a net.Dialer Control function for a connection to
// host: it runs after name resolution, on the very address about to be
// connected, and refuses it unless the policy (globs, or public addresses
// only when there are none) allows it.
func dialControl(host string, globs []string) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ip, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("address %q: %w", address, ErrHostRefused)
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("address %q: %w", ip, ErrHostRefused)
		}
		addr = addr.WithZone("")
		switch {
		case len(globs) == 0 && !publicAddr(addr):
			return fmt.Errorf("address %s is not public: %w", ip, ErrHostRefused)
		case len(globs) > 0 && !allowListed(host, addr, globs):
			return fmt.Errorf("address %s of %q: %w: link-local and metadata addresses never are allowed, loopback and private ones only when named by the allowed action hosts", ip, host, ErrHostRefused)
		}
		return nil
	}
}
