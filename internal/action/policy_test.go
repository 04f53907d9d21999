package action

import (
	"net/netip"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"fd00::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"100.64.0.1", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::a00:1", false},
		{"64:ff9b::808:808", false},
		{"fd00:ec2::254", false},
		{"100.100.100.200", false},
		{"168.63.129.16", false},
		{"::a9fe:a9fe", false},                          // IPv4-compatible 169.254.169.254
		{"::808:808", false},                            // IPv4-compatible, deprecated
		{"2002:a9fe:a9fe::1", false},                    // 6to4 of 169.254.169.254
		{"2001:0:4136:e378:8000:63bf:5601:5601", false}, // Teredo
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := publicAddr(netip.MustParseAddr(tt.addr)); got != tt.public {
				t.Errorf("publicAddr(%s) = %v, want %v", tt.addr, got, tt.public)
			}
		})
	}
}

func TestHostAllowed(t *testing.T) {
	globs := []string{"hooks.example.com", "*.ci.example.org"}
	tests := []struct {
		host string
		want bool
	}{
		{"hooks.example.com", true},
		{"HOOKS.example.com", true},
		{"a.ci.example.org", true},
		{"ci.example.org", false},
		{"evil.com", false},
		{"hooks.example.com.evil.com", false},
	}
	for _, tt := range tests {
		if got := hostAllowed(tt.host, globs); got != tt.want {
			t.Errorf("hostAllowed(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

// With an allow-list, link-local and metadata addresses are never dialled,
// in any form; loopback and private ones only when an entry names the host
// without a wildcard or is an address pattern matching them.
func TestAllowListed(t *testing.T) {
	tests := []struct {
		name  string
		host  string
		addr  string
		globs []string
		want  bool
	}{
		{"public address of an allowed name", "hooks.example.com", "8.8.8.8", []string{"*.example.com"}, true},
		{"metadata by name", "hooks.example.com", "169.254.169.254", []string{"hooks.example.com"}, false},
		{"metadata named as an address", "169.254.169.254", "169.254.169.254", []string{"169.254.169.254"}, false},
		{"link-local", "hooks.example.com", "169.254.1.1", []string{"hooks.example.com", "169.254.*"}, false},
		{"link-local IPv6", "hooks.example.com", "fe80::1", []string{"hooks.example.com"}, false},
		{"AWS metadata IPv6", "hooks.example.com", "fd00:ec2::254", []string{"hooks.example.com", "fd00:*"}, false},
		{"Alibaba metadata", "hooks.example.com", "100.100.100.200", []string{"hooks.example.com", "100.*"}, false},
		{"IPv4-mapped metadata", "hooks.example.com", "::ffff:169.254.169.254", []string{"hooks.example.com"}, false},
		{"IPv4-compatible metadata", "hooks.example.com", "::a9fe:a9fe", []string{"hooks.example.com"}, false},
		{"NAT64 metadata", "hooks.example.com", "64:ff9b::a9fe:a9fe", []string{"hooks.example.com"}, false},
		{"6to4 metadata", "hooks.example.com", "2002:a9fe:a9fe::1", []string{"hooks.example.com"}, false},
		{"Teredo server metadata", "hooks.example.com", "2001:0:a9fe:a9fe::1", []string{"hooks.example.com"}, false},
		{"Teredo client metadata", "hooks.example.com", "2001:0:808:808::5601:5601", []string{"hooks.example.com"}, false},
		{"NAT64 of a public address", "hooks.example.com", "64:ff9b::808:808", []string{"*.example.com"}, true},
		{"unspecified", "hooks.example.com", "0.0.0.0", []string{"hooks.example.com"}, false},
		{"loopback named exactly", "127.0.0.1", "127.0.0.1", []string{"127.0.0.1"}, true},
		{"loopback by an address pattern", "127.0.0.1", "127.0.0.1", []string{"127.0.0.*"}, true},
		{"private name named exactly", "hooks.corp.internal", "10.1.2.3", []string{"hooks.corp.internal"}, true},
		{"private name by a wildcard", "hooks.corp.internal", "10.1.2.3", []string{"*.corp.internal"}, false},
		{"private name by a wildcard and an address pattern", "hooks.corp.internal", "10.1.2.3", []string{"*.corp.internal", "10.*"}, true},
		{"loopback through a catch-all", "localtest.me", "127.0.0.1", []string{"*"}, false},
		{"loopback address through a catch-all", "127.0.0.1", "127.0.0.1", []string{"*"}, false},
		{"private IPv6 by a name pattern", "f.example.com", "fd12::1", []string{"f*"}, false},
		{"private IPv6 by an address pattern", "hooks.example.com", "fd12::1", []string{"hooks.example.com", "fd12:*"}, true},
		{"NAT64 of a private address named by pattern", "hooks.example.com", "64:ff9b::a00:1", []string{"*.example.com", "10.*"}, true},
		{"NAT64 of a private address", "hooks.example.com", "64:ff9b::a00:1", []string{"*.example.com"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allowListed(tt.host, netip.MustParseAddr(tt.addr), tt.globs); got != tt.want {
				t.Errorf("allowListed(%s, %s, %v) = %v, want %v", tt.host, tt.addr, tt.globs, got, tt.want)
			}
		})
	}
}
