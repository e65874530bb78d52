package apps

import (
	"encoding/binary"
	"hash/crc32"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// The l3 app: the namespace plan of each host, as Neutron's L3 agent would build it in DVR
// mode (dvr-reference.md section 4), but decided centrally:
//   - qrouter-<router> on every host with a DVR-serviced port on one of the router's
//     subnets: a qr- link per interface with the gateway IP and the interface MAC (the same
//     on every host), per-subnet SNAT redirect rules to the subnet's snat port, and for the
//     floating IPs of local ports the rfp- link, table 16 and DNAT/SNAT;
//   - fip-<external net> on every host with a floating IP: the fg- link with proxy ARP, one
//     fpr- link per router, /32 routes to the floating IPs and per-router default routes;
//   - snat-<router> on the router's dvr_snat host: qg- with the gateway address and default
//     route, an sg- link per subnet, and the default SNAT rule;
//   - qmeta-<network> on every host with a VM on a network that has a DHCP server: the
//     metadata proxy (dhcp.go, MetadataNamespaces).
// Both router namespaces hold a permanent neighbour entry for every port on each subnet
// they route (Neutron's DVR does the same with its static ARP entries), so a fixed IP
// handed to a new port with a new MAC is never reached through a stale entry the kernel
// had learned (docs/decisions.md). The controller still answers ARP (arp.go) for the rest.

// Neutron's constants (dvr_fip_ns.py).
const (
	fipRouteTable = 16    // qrouter table holding the default route via the fip namespace
	fipRulePrio   = 32768 // FIP_PR_START: every floating-IP rule; their From /32s never overlap
)

// Plan computes host's namespace plan at View v.
func Plan(v *topology.View, host string) plan.Plan {
	p := plan.Plan{Host: host, Revision: v.Revision}
	fipsByRouter := map[string][]*topology.FIPInfo{}
	fipsByExtNet := map[string][]*topology.FIPInfo{}
	for _, f := range v.FloatingIPsOn(host) {
		if !routedByFIPNamespace(f) {
			continue
		}
		fipsByRouter[f.Router.ID] = append(fipsByRouter[f.Router.ID], f)
		fipsByExtNet[f.ExtNet.ID] = append(fipsByExtNet[f.ExtNet.ID], f)
	}
	for _, rid := range v.RoutersOn(host) {
		p.Namespaces = append(p.Namespaces, qrouterNS(v, v.Router(rid), fipsByRouter[rid]))
	}
	for _, extID := range sortedKeys(fipsByExtNet) {
		p.Namespaces = append(p.Namespaces, fipNS(v, extID, fipsByExtNet[extID]))
	}
	for _, rid := range v.SNATRoutersOn(host) {
		if ns, ok := snatNS(v, v.Router(rid)); ok {
			p.Namespaces = append(p.Namespaces, ns)
		}
	}
	p.Namespaces = append(p.Namespaces, MetadataNamespaces(v, host)...)
	return p
}

// Replan is host's plan at View v computed from prev, host's plan at an earlier View, in
// which only the namespaces named in changed may differ (topology.Affected.Plans): those
// are recomputed, the others kept. It equals Plan(v, host), which it falls back to when a
// named namespace appeared or went (the order of the plan's namespaces is Plan's).
func Replan(v *topology.View, host string, prev plan.Plan, changed map[string]bool) plan.Plan {
	if prev.Host != host {
		return Plan(v, host)
	}
	p := plan.Plan{Host: host, Revision: v.Revision, Namespaces: slices.Clone(prev.Namespaces)}
	found := 0
	for i, ns := range p.Namespaces {
		if !changed[ns.Name] {
			continue
		}
		found++
		now, ok := namespace(v, host, ns.Name)
		if !ok {
			return Plan(v, host)
		}
		p.Namespaces[i] = now
	}
	if found != len(changed) {
		for name := range changed {
			if _, ok := namespace(v, host, name); ok && !slices.ContainsFunc(p.Namespaces, func(ns plan.Namespace) bool { return ns.Name == name }) {
				return Plan(v, host)
			}
		}
	}
	return p
}

// namespace computes the qrouter-, snat- or qmeta- namespace name of host's plan at View v,
// and reports whether the plan has it.
func namespace(v *topology.View, host, name string) (plan.Namespace, bool) {
	if rid, ok := strings.CutPrefix(name, plan.PrefixQRouter); ok {
		if !slices.Contains(v.RoutersOn(host), rid) {
			return plan.Namespace{}, false
		}
		var fips []*topology.FIPInfo
		for _, f := range v.FloatingIPsOn(host) {
			if routedByFIPNamespace(f) && f.Router.ID == rid {
				fips = append(fips, f)
			}
		}
		return qrouterNS(v, v.Router(rid), fips), true
	}
	if rid, ok := strings.CutPrefix(name, plan.PrefixSNAT); ok {
		if !slices.Contains(v.SNATRoutersOn(host), rid) {
			return plan.Namespace{}, false
		}
		return snatNS(v, v.Router(rid))
	}
	if netID, ok := strings.CutPrefix(name, plan.PrefixMeta); ok {
		return metadataNS(v, netID, metadataClients(v, host, netID)[netID])
	}
	return plan.Namespace{}, false
}

// routedByFIPNamespace reports whether floating IP f is realized through its host's fip-
// namespace: the host has an agent gateway port on f's external network, and f's router
// its rfp/fpr link-local pair.
func routedByFIPNamespace(f *topology.FIPInfo) bool {
	return f.AgentGW != nil && f.Router.LinkLocal.IsValid()
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func baseSysctls() map[string]string {
	return map[string]string{
		"net.ipv4.ip_forward":                  "1",
		"net.ipv4.conf.all.arp_ignore":         "1",
		"net.ipv4.conf.all.arp_announce":       "2",
		"net.ipv4.conf.all.send_redirects":     "0",
		"net.ipv4.conf.default.send_redirects": "0",
	}
}

// snatIndex is Neutron's _get_snat_idx of a router interface address a/bits, the table
// and the priority of the subnet's SNAT redirect rule, above every FIP rule: for IPv4 the
// address as an integer; for IPv6 the CRC-32 of the CIDR text folded to 30 bits, moved
// above the FIP rules' range when it falls below it.
func snatIndex(a netip.Addr, bits int) int64 {
	if a.Is4() {
		return addrIndex(a)
	}
	h := crc32.ChecksumIEEE([]byte(prefixOf(a, bits)))
	idx := int64(h>>30) ^ int64(h&0x3fffffff)
	if idx < fipRulePrio {
		idx += 0x3fffffff
	}
	return idx
}

// addrIndex is the IPv4 address a as an integer.
func addrIndex(a netip.Addr) int64 {
	b := a.As4()
	return int64(binary.BigEndian.Uint32(b[:]))
}

func prefixOf(a netip.Addr, bits int) string {
	return netip.PrefixFrom(a, bits).String()
}

func rfpName(routerID string) string { return "rfp-" + cut(routerID, 10) }
func fprName(routerID string) string { return "fpr-" + cut(routerID, 10) }

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// linkLocalPair returns the rfp (even) and fpr (odd) addresses of a router's /31.
func linkLocalPair(p netip.Prefix) (rfp, fpr netip.Addr) {
	rfp = p.Masked().Addr()
	return rfp, rfp.Next()
}

// llMAC derives the MAC of each end of a router's rfp/fpr veth pair from its address in
// the /31, so that they are stable across helper restarts (locally administered, 0x02).
func llMAC(a netip.Addr) string {
	b := a.As4()
	return "02:dc:" + hex2(b[0]) + ":" + hex2(b[1]) + ":" + hex2(b[2]) + ":" + hex2(b[3])
}

func hex2(b byte) string {
	s := strconv.FormatUint(uint64(b), 16)
	if len(s) == 1 {
		return "0" + s
	}
	return s
}

func qrouterNS(v *topology.View, r *topology.RouterInfo, fips []*topology.FIPInfo) plan.Namespace {
	ns := plan.Namespace{Name: plan.PrefixQRouter + r.ID, Sysctls: baseSysctls()}
	// One qr- link per interface port: a port on an IPv4 subnet and IPv6 subnets holds
	// the gateway address of each.
	for _, g := range byPort(r.Interfaces, func(s *topology.SubnetInfo) *topology.PortInfo { return s.RouterIf }) {
		rif := g[0].RouterIf
		dev := DeviceName(rif.Port)
		link := brIntLink(v, rif)
		for _, s := range g {
			if !s.Gateway.IsValid() {
				continue
			}
			link.Addresses = append(link.Addresses, prefixOf(s.Gateway, s.Prefix.Bits()))
			ns.Neighbors = append(ns.Neighbors, subnetNeighbors(v, s, dev, rif)...)
			if s.Gateway.Is6() {
				ipv6Sysctls(ns.Sysctls, dev)
			} else {
				// The kernel sends redirects when either "all" or the device asks for it:
				// the qrouter hairpins SNAT-bound traffic out of the qr- it came in by,
				// and must not tell the VM to go to the snat port directly.
				ns.Sysctls["net.ipv4.conf."+dev+".send_redirects"] = "0"
			}
			// SNAT redirect: traffic from this subnet that matches no FIP rule leaves
			// through the subnet's snat port on the dvr_snat host: translated there for
			// IPv4 (when the gateway does SNAT), routed as it is for IPv6.
			if r.Gateway == nil || (s.Gateway.Is4() && !r.Gateway.EnableSNAT) {
				continue
			}
			if sg, ok := addrOn(s.SNATPort, s.ID); ok {
				idx := snatIndex(s.Gateway, s.Prefix.Bits())
				ns.Routes = append(ns.Routes, plan.Route{Dst: "default", Via: sg.String(), Dev: dev, Table: int(idx)})
				ns.Rules = append(ns.Rules, plan.Rule{Priority: idx, From: s.Prefix.Masked().String(), Table: int(idx)})
			}
		}
		if len(link.Addresses) > 0 {
			ns.Links = append(ns.Links, link)
		}
	}
	if len(fips) > 0 {
		rfpIP, fprIP := linkLocalPair(r.LinkLocal)
		ext := v.Network(fips[0].ExtNet.ID)
		ns.Links = append(ns.Links, plan.Link{Name: rfpName(r.ID), PeerNamespace: plan.PrefixFIP + ext.ID,
			PeerName: fprName(r.ID), MAC: llMAC(rfpIP), MTU: ext.MTU, Addresses: []string{prefixOf(rfpIP, 31)}})
		ns.Routes = append(ns.Routes, plan.Route{Dst: "default", Via: fprIP.String(), Dev: rfpName(r.ID), Table: fipRouteTable})
		for _, f := range fips {
			ns.Rules = append(ns.Rules, plan.Rule{Priority: fipRulePrio, From: prefixOf(f.Fixed, 32), Table: fipRouteTable})
			ns.NAT = append(ns.NAT,
				plan.NATRule{Kind: plan.NATDNAT, Match: plan.NATMatch{Daddr: f.Addr.String(), IIF: rfpName(r.ID)}, To: f.Fixed.String()},
				plan.NATRule{Kind: plan.NATSNAT, Match: plan.NATMatch{Saddr: f.Fixed.String(), OIF: rfpName(r.ID)}, To: f.Addr.String()})
		}
	}
	return ns
}

func fipNS(v *topology.View, extID string, fips []*topology.FIPInfo) plan.Namespace {
	ext := v.Network(extID)
	gw := fips[0].AgentGW
	ns := plan.Namespace{Name: plan.PrefixFIP + extID, Sysctls: baseSysctls()}
	fg := DeviceName(gw.Port)
	ns.Sysctls["net.ipv4.conf."+fg+".proxy_arp"] = "1"
	ns.Sysctls["net.ipv4.ip_nonlocal_bind"] = "1"
	fgAddrs, extGWs := portAddrs(v, gw) // IPv4 only: the view keeps no IPv6 address of an fg- port
	ns.Links = append(ns.Links, plan.Link{Name: fg, Bridge: string(topology.BrInt), IfaceID: gw.ID, MAC: gw.MAC.String(),
		MTU: ext.MTU, Addresses: fgAddrs})
	routers := map[string]*topology.RouterInfo{}
	for _, f := range fips {
		routers[f.Router.ID] = f.Router
		rfpIP, _ := linkLocalPair(f.Router.LinkLocal)
		ns.Routes = append(ns.Routes, plan.Route{Dst: prefixOf(f.Addr, 32), Via: rfpIP.String(), Dev: fprName(f.Router.ID)})
	}
	for _, rid := range sortedKeys(routers) {
		_, fprIP := linkLocalPair(routers[rid].LinkLocal)
		ns.Links = append(ns.Links, plan.Link{Name: fprName(rid), PeerNamespace: plan.PrefixQRouter + rid,
			PeerName: rfpName(rid), MAC: llMAC(fprIP), MTU: ext.MTU, Addresses: []string{prefixOf(fprIP, 31)}})
		if len(extGWs) > 0 {
			tbl := addrIndex(fprIP)
			ns.Routes = append(ns.Routes, plan.Route{Dst: "default", Via: extGWs[0].String(), Dev: fg, Table: int(tbl)})
			ns.Rules = append(ns.Rules, plan.Rule{Priority: tbl, IIF: fprName(rid), Table: int(tbl)})
		}
	}
	return ns
}

func snatNS(v *topology.View, r *topology.RouterInfo) (plan.Namespace, bool) {
	gw := r.GatewayPort
	if gw == nil || len(gw.IPs) == 0 {
		return plan.Namespace{}, false
	}
	ns := plan.Namespace{Name: plan.PrefixSNAT + r.ID, Sysctls: baseSysctls()}
	qg := DeviceName(gw.Port)
	addrs, extGWs := portAddrs(v, gw)
	link := brIntLink(v, gw)
	link.Addresses = addrs
	ns.Links = append(ns.Links, link)
	for _, extGW := range extGWs {
		ns.Routes = append(ns.Routes, plan.Route{Dst: "default", Via: extGW.String(), Dev: qg})
		if extGW.Is6() {
			ipv6Sysctls(ns.Sysctls, qg)
		}
	}
	// One sg- link per snat port: Neutron gives each IPv4 subnet its own and a network's
	// IPv6 subnets one together.
	for _, g := range byPort(r.Interfaces, func(s *topology.SubnetInfo) *topology.PortInfo { return s.SNATPort }) {
		sp := g[0].SNATPort
		dev := DeviceName(sp.Port)
		link := brIntLink(v, sp)
		for _, s := range g {
			a, ok := addrOn(sp, s.ID)
			if !ok {
				continue
			}
			link.Addresses = append(link.Addresses, prefixOf(a, s.Prefix.Bits()))
			ns.Neighbors = append(ns.Neighbors, subnetNeighbors(v, s, dev, sp, s.RouterIf)...)
			if a.Is6() {
				ipv6Sysctls(ns.Sysctls, dev)
			}
		}
		if len(link.Addresses) > 0 {
			ns.Links = append(ns.Links, link)
		}
	}
	if a, ok := firstIPv4(gw); ok && r.Gateway.EnableSNAT {
		ns.NAT = append(ns.NAT, plan.NATRule{Kind: plan.NATSNAT, Match: plan.NATMatch{OIF: qg}, To: a.String()})
	}
	return ns, true
}

// brIntLink is the link of port p plugged into br-int, with its network's MTU.
func brIntLink(v *topology.View, p *topology.PortInfo) plan.Link {
	return plan.Link{Name: DeviceName(p.Port), Bridge: string(topology.BrInt), IfaceID: p.ID, MAC: p.MAC.String(),
		MTU: v.Network(p.NetworkID).MTU}
}

// byPort groups subnets by the port portOf gives for each (subnets without one are
// left out), in the order of each port's first subnet.
func byPort(subnets []*topology.SubnetInfo, portOf func(*topology.SubnetInfo) *topology.PortInfo) [][]*topology.SubnetInfo {
	var out [][]*topology.SubnetInfo
	for _, s := range subnets {
		p := portOf(s)
		if p == nil {
			continue
		}
		if i := slices.IndexFunc(out, func(g []*topology.SubnetInfo) bool { return portOf(g[0]) == p }); i >= 0 {
			out[i] = append(out[i], s)
		} else {
			out = append(out, []*topology.SubnetInfo{s})
		}
	}
	return out
}

// addrOn returns port p's address on subnet subnetID.
func addrOn(p *topology.PortInfo, subnetID string) (netip.Addr, bool) {
	if p == nil {
		return netip.Addr{}, false
	}
	for _, ip := range p.IPs {
		if ip.SubnetID == subnetID {
			return ip.Addr, true
		}
	}
	return netip.Addr{}, false
}

func firstIPv4(p *topology.PortInfo) (netip.Addr, bool) {
	for _, ip := range p.IPs {
		if ip.Addr.Is4() {
			return ip.Addr, true
		}
	}
	return netip.Addr{}, false
}

// ipv6Sysctls are those of a namespace routing IPv6 on link dev, as Neutron's namespaces
// have them, and no duplicate address detection (on dev, and on the link-local address of
// every link made after) nor router advertisements accepted on dev:
// a router interface has the same address and MAC on every host running the router.
func ipv6Sysctls(sysctls map[string]string, dev string) {
	sysctls["net.ipv6.conf.all.forwarding"] = "1"
	sysctls["net.ipv6.conf.default.accept_dad"] = "0"
	sysctls["net.ipv6.conf."+dev+".accept_dad"] = "0"
	sysctls["net.ipv6.conf."+dev+".accept_ra"] = "0"
}

// subnetNeighbors are the permanent neighbours on dev for every port with a fixed IP on
// subnet s, but the router's own ports on it (skip), sorted by address.
func subnetNeighbors(v *topology.View, s *topology.SubnetInfo, dev string, skip ...*topology.PortInfo) []plan.Neighbor {
	type entry struct {
		ip  netip.Addr
		mac string
	}
	var es []entry
	for _, p := range v.PortsOnNetwork(s.NetworkID) {
		if len(p.MAC) == 0 || slices.Contains(skip, p) {
			continue
		}
		for _, ip := range p.IPs {
			if ip.SubnetID == s.ID && ip.Addr != s.Gateway {
				es = append(es, entry{ip.Addr, p.MAC.String()})
			}
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return a.ip.Compare(b.ip) })
	out := make([]plan.Neighbor, 0, len(es))
	for _, e := range es {
		out = append(out, plan.Neighbor{IP: e.ip.String(), MAC: e.mac, Dev: dev})
	}
	return out
}

// portAddrs returns a port's addresses with their subnets' prefix lengths, and the gateway
// of its first subnet of each IP version (the next hops towards the external network for
// fg- and qg- ports), IPv4 first.
func portAddrs(v *topology.View, p *topology.PortInfo) (addrs []string, gateways []netip.Addr) {
	var gw4, gw6 netip.Addr
	for _, ip := range p.IPs {
		s := v.Subnet(ip.SubnetID)
		if s == nil {
			continue
		}
		addrs = append(addrs, prefixOf(ip.Addr, s.Prefix.Bits()))
		switch {
		case s.Gateway.Is4() && !gw4.IsValid():
			gw4 = s.Gateway
		case s.Gateway.Is6() && !gw6.IsValid():
			gw6 = s.Gateway
		}
	}
	for _, gw := range []netip.Addr{gw4, gw6} {
		if gw.IsValid() {
			gateways = append(gateways, gw)
		}
	}
	return addrs, gateways
}
