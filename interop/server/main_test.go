package main

import (
	"net/netip"
	"slices"
	"testing"
)

// -trusted-proxy takes prefixes and bare addresses, IPv4 mapped into IPv6
// as IPv4.
func TestPrefixList(t *testing.T) {
	var l prefixList
	for _, v := range []string{"10.0.0.0/8", "192.0.2.7", "::ffff:198.51.100.1", "2001:db8::/32"} {
		if err := l.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("198.51.100.1/32"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if !slices.Equal(l, want) {
		t.Errorf("got %v, want %v", l, want)
	}
	if err := l.Set("proxy.example"); err == nil {
		t.Error(`Set("proxy.example"): got nil, want an error`)
	}
}
