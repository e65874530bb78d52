package topology

import "strings"

// Floating IPs are IPv4 only, as in Neutron's DVR (dvr-reference.md 5.1: IPv6 is never
// routed through the fip namespace; IPv6 north-south goes through the router's snat
// namespace, routed, not translated). A floating IP agent gateway port (fg-) therefore
// keeps only its IPv4 addresses in the view, so that no fip- namespace plan holds an IPv6
// address; one left without an address is left out whole.

// fipGatewayV4 returns p without the IPv6 addresses of a floating IP agent gateway port (a
// copy when it has some), or nil for such a port that has only IPv6 ones. Other ports are
// kept as they are.
func fipGatewayV4(p *Port) *Port {
	if p == nil || p.DeviceOwner != OwnerFloatingIPAgentGateway || !hasIPv6(p.FixedIPs) {
		return p
	}
	cp := *p
	cp.FixedIPs = ipv4FixedIPs(p.FixedIPs)
	if len(cp.FixedIPs) == 0 {
		return nil
	}
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
