package topology

import "strings"

// The data path serves IPv6 at L2 so far (issue 16): switching, neighbour discovery and
// router advertisements. The view therefore holds IPv6 subnets, the IPv6 addresses of
// ports, and a router's interface on an IPv6 subnet as that subnet's RouterIf and
// GatewayMAC (its RA source), but such a subnet has no RouterID and is not among the
// router's Interfaces: no host runs a router for it, no plan holds it, no flow routes it.
//
// What is not built yet stays out, so that plans keep IPv4 only (the host helper refuses a
// plan holding an IPv6 address) until DVR IPv6 routing: the IPv6 addresses of router
// gateways (Router.Gateway), of the routers' gateway and SNAT ports and of floating IP
// agent gateway ports, which this filter drops as it takes records in. A router port left
// without an address (a SNAT port on IPv6 subnets only) is left out whole.

// ipv4Port returns p without the IPv6 addresses of its gateway, SNAT or agent gateway
// port (a copy when it has some), or nil for such a router port that has only IPv6 ones.
// Other ports are kept as they are.
func ipv4Port(p *Port) *Port {
	if p == nil || !v4OnlyOwner(p.DeviceOwner) || !hasIPv6(p.FixedIPs) {
		return p
	}
	cp := *p
	cp.FixedIPs = ipv4FixedIPs(p.FixedIPs)
	if len(cp.FixedIPs) == 0 && IsRouterPort(p.DeviceOwner) {
		return nil
	}
	return &cp
}

// v4OnlyOwner reports whether ports of this device owner keep only their IPv4 addresses in
// the view: they serve the SNAT and floating IP paths, IPv4 only so far.
func v4OnlyOwner(owner string) bool {
	return owner == OwnerRouterGateway || owner == OwnerRouterCentralizedSNAT || owner == OwnerFloatingIPAgentGateway
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
