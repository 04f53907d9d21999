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
