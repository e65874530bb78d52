package topology

import "strings"

// The data path serves IPv4 only (issue 16). The view drops IPv6 subnets, and the IPv6
// addresses of ports and router gateways, as it takes records in, so that nothing derived
// from it (flows, plans) sees them: the host helper refuses a plan holding an IPv6
// address. A router's port left without an address (an interface on an IPv6 subnet) is
// left out whole. Ports keep their IPv4 addresses and their L2 place.

// ipv4Subnet returns s, or nil (absent) for an IPv6 subnet.
func ipv4Subnet(s *Subnet) *Subnet {
	if s != nil && !s.IsIPv4() {
		return nil
	}
	return s
}

// ipv4Port returns p without its IPv6 addresses (a copy when it has some), or nil for a
// router port that has only IPv6 ones.
func ipv4Port(p *Port) *Port {
	if p == nil || !hasIPv6(p.FixedIPs) {
		return p
	}
	cp := *p
	cp.FixedIPs = ipv4FixedIPs(p.FixedIPs)
	if len(cp.FixedIPs) == 0 && IsRouterPort(p.DeviceOwner) {
		return nil
	}
	return &cp
}

// ipv4Router returns r with only the IPv4 addresses of its gateway (a copy when it had
// others).
func ipv4Router(r *Router) *Router {
	if r == nil || r.Gateway == nil || !hasIPv6(r.Gateway.ExternalFixedIPs) {
		return r
	}
	cp, gw := *r, *r.Gateway
	gw.ExternalFixedIPs = ipv4FixedIPs(gw.ExternalFixedIPs)
	cp.Gateway = &gw
	return &cp
}

func isIPv6Text(ip string) bool { return strings.Contains(ip, ":") }

func hasIPv6(xs []FixedIP) bool {
	for _, x := range xs {
		if isIPv6Text(x.IPAddress) {
			return true
		}
	}
	return false
}

func ipv4FixedIPs(xs []FixedIP) []FixedIP {
	out := make([]FixedIP, 0, len(xs))
	for _, x := range xs {
		if !isIPv6Text(x.IPAddress) {
			out = append(out, x)
		}
	}
	return out
}
