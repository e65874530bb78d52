package db

import (
	"net/netip"
	"slices"
	"testing"
)

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// TestPrefixSetCIDRs: a set is cut into the fewest CIDRs in address order, as netaddr's
// IPSet compact + iter_cidrs: overlapping and adjacent prefixes merge, host bits go.
func TestPrefixSetCIDRs(t *testing.T) {
	for _, c := range []struct {
		width int
		in    []string
		want  []string
	}{
		{32, []string{"10.11.12.0/24"}, []string{"10.11.12.0/24"}},
		{32, []string{"192.168.1.0/24", "10.10.10.0/24"}, []string{"10.10.10.0/24", "192.168.1.0/24"}},
		{32, []string{"10.10.10.0/24", "10.10.0.0/16"}, []string{"10.10.0.0/16"}},
		{32, []string{"10.0.0.0/24", "10.0.1.0/24"}, []string{"10.0.0.0/23"}},
		{32, []string{"10.0.1.0/24", "10.0.2.0/24"}, []string{"10.0.1.0/24", "10.0.2.0/24"}},
		{32, []string{"10.11.12.13/24"}, []string{"10.11.12.0/24"}},
		{32, []string{"0.0.0.0/1", "128.0.0.0/1"}, []string{"0.0.0.0/0"}},
		{32, []string{"255.255.255.255/32", "255.255.255.254/32"}, []string{"255.255.255.254/31"}},
		{128, []string{"2001:db8:1234::/48", "2001:db8:1234:1111::/64"}, []string{"2001:db8:1234::/48"}},
		{128, []string{"2001:db8:1::/48", "2001:db8::/48"}, []string{"2001:db8::/47"}},
		{128, []string{"::/1", "8000::/1"}, []string{"::/0"}},
	} {
		got := prefixStrings(newPrefixSet(c.width, prefixes(t, c.in...)).cidrs())
		if !slices.Equal(got, c.want) {
			t.Errorf("%v: %v, want %v", c.in, got, c.want)
		}
	}
}

// TestPrefixSetMinusCoversFirstFit: what a pool has free, whether a request fits, and which
// block the first-fit choice takes (the smallest free CIDR that holds it, lowest first).
func TestPrefixSetMinusCoversFirstFit(t *testing.T) {
	pool := newPrefixSet(32, prefixes(t, "10.0.0.0/24", "10.1.0.0/28"))
	used := newPrefixSet(32, prefixes(t, "10.0.0.64/26"))
	free := pool.minus(used)
	if got, want := prefixStrings(free.cidrs()), []string{"10.0.0.0/26", "10.0.0.128/25", "10.1.0.0/28"}; !slices.Equal(got, want) {
		t.Fatalf("free %v, want %v", got, want)
	}
	for _, c := range []struct {
		bits int
		want string
	}{{28, "10.1.0.0/28"}, {27, "10.0.0.0/27"}, {26, "10.0.0.0/26"}, {25, "10.0.0.128/25"}, {24, ""}} {
		got, ok := free.firstFit(c.bits)
		if (c.want == "") == ok || (ok && got.String() != c.want) {
			t.Errorf("first /%d: %v %v, want %q", c.bits, got, ok, c.want)
		}
	}
	for _, c := range []struct {
		p    string
		want bool
	}{{"10.0.0.128/25", true}, {"10.0.0.0/26", true}, {"10.0.0.64/26", false}, {"10.0.0.0/24", false}, {"10.2.0.0/24", false}} {
		if got := free.covers(newPrefixSet(32, prefixes(t, c.p))); got != c.want {
			t.Errorf("covers %s: %v, want %v", c.p, got, c.want)
		}
	}
	if rest := pool.minus(pool); len(rest.spans) != 0 {
		t.Errorf("a set minus itself: %v", rest.cidrs())
	}
	all := newPrefixSet(128, prefixes(t, "::/0"))
	if got := prefixStrings(all.minus(newPrefixSet(128, prefixes(t, "::/1"))).cidrs()); !slices.Equal(got, []string{"8000::/1"}) {
		t.Errorf("::/0 minus ::/1: %v", got)
	}
}
