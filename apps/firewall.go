package apps

import (
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// The firewall app: security groups and port security on br-int, after Neutron's
// openvswitch firewall driver. A firewalled port's traffic (topology.Firewalled) leaves
// LOCAL_SWITCHING for BASE_EGRESS with its OpenFlow port in RegPort and its network's
// conntrack zone (the network's local VLAN on this host) in RegZone, with fwStateless set
// for a port whose groups are stateless; traffic to it leaves TRANSIENT for BASE_INGRESS
// the same way. What does not depend on the port is one flow per bridge, found through
// those registers: a port costs one flow per source address and one per rule and state,
// and one to deliver to it. The base tables let through only the port's own addresses
// (anti-spoofing: its MAC and fixed IPs, its allowed address pairs) and ARP, and send IPv4
// and IPv6 into conntrack (DHCP as a client went to DHCP_IPV4 before, dhcp.go; a DHCPv6
// client request that reaches BASE_EGRESS is dropped as a DHCPv4 one, the dhcp app taking
// a port's own in LOCAL_SWITCHING; a VM's DHCP server replies are dropped); the rules tables
// accept what a rule of the port's groups allows, new connections and, rule by rule again, every packet of an
// established one in its original direction; replies and related traffic pass; what
// matches no rule is dropped, and an established connection that no rule allows any more is
// marked in conntrack (ct_mark 1) and dropped from then on, in both directions. Rules with
// a remote group are conjunctions: one flow per member prefix (the group's part,
// topology.RemoteGroupPart, computed once for every host that has it) and one per port and
// rule, not members x rules; a group's member addresses are covered by the
// fewest prefixes that hold exactly them. Stateless groups skip conntrack. Broadcast and
// multicast to the port are delivered by TRANSIENT's flood flow, as Neutron's NORMAL does.
//
// IPv6 is filtered as IPv4 (the same states, zones, commit and cut flows with eth_type
// ipv6), on a network with an IPv6 subnet: a port's IPv6 sources are its fixed IPv6
// addresses, the link-local address of its MAC (Neutron's lla_address) and its IPv6 allowed
// address pairs; its groups' rules of ethertype IPv6 apply ("icmp" in them is ICMPv6, as
// Neutron's driver reads it). The ICMPv6 of neighbour discovery bypasses conntrack and the
// rules, as Neutron's driver lets it through (ICMPV6_ALLOWED_EGRESS_TYPES and
// ICMPV6_RESTRICTED_EGRESS_TYPES, ICMPV6_ALLOWED_INGRESS_TYPES and router advertisements):
// a port may send router and neighbour solicitations and MLD queries from its own IPv6
// sources (on to ARP_RESPONDER, nd.go and ra.go), neighbour advertisements only for them
// (nd_target), and no router advertisement; MLD queries, router advertisements and
// neighbour solicitations and advertisements reach it. Other ICMPv6 (MLD reports, echo)
// is a rule's business, as in Neutron. A port of a network without an IPv6 subnet sends no
// IPv6 and receives only neighbour discovery (Neutron would pass its link-local traffic by
// its rules): its flows stay IPv4's.

// Registers of the firewall, as Neutron's driver uses them.
const (
	RegPort = 5 // the firewalled port's OpenFlow port
	RegZone = 6 // bits 0-15: the conntrack zone of its network, the network's local VLAN; and fwStateless
)

// fwStateless is the bit of RegZone set for a port whose groups are stateless.
const fwStateless uint32 = 1 << 16

// ctMarkCut is the mark of a connection that no rule allows any more (Neutron's
// CT_MARK_INVALID).
const ctMarkCut uint32 = 1

// Priorities in the firewall tables.
const (
	prioFWNotAllow uint16 = 40  // no rule allowed it: drop a new packet, mark an established connection
	prioFWState    uint16 = 50  // invalid or cut: drop; replies and related: accept
	prioFWAddr     uint16 = 65  // the port's own addresses into conntrack
	prioFWRule     uint16 = 70  // a rule
	prioFWConj     uint16 = 71  // a rule with a remote group: its conjunction clauses and conj_id
	prioFWDHCPSrv  uint16 = 70  // DHCP server replies from a port: dropped
	prioFWRA       uint16 = 70  // router advertisements from a port: dropped
	prioFWTracked  uint16 = 80  // ingress already tracked, or stateless
	prioFWDHCP     uint16 = 80  // DHCP client requests that did not go to DHCP_IPV4: dropped
	prioFWTrack    uint16 = 90  // ingress into conntrack
	prioFWCommit   uint16 = 90  // commit a new connection
	prioFWARP      uint16 = 95  // ARP with one of the port's addresses
	prioFWIngDHCP  uint16 = 95  // DHCP offers to the port
	prioFWIngARP   uint16 = 100 // ARP to the port
	prioFWIngND    uint16 = 100 // neighbour discovery to the port
	prioFWND       uint16 = 95  // neighbour discovery from one of the port's addresses
	prioFWDeliver  uint16 = 10  // out to the port
)

// ct_state combinations the firewall matches (Neutron's OF_STATE_*).
var (
	stNewNotEst  = ofproto.CTState(ofproto.CTTrk|ofproto.CTNew, ofproto.CTTrk|ofproto.CTNew|ofproto.CTEst)
	stEstNotRpl  = ofproto.CTState(ofproto.CTEst, ofproto.CTEst|ofproto.CTRel|ofproto.CTRpl)
	stEstReply   = ofproto.CTState(ofproto.CTEst|ofproto.CTRpl, ofproto.CTEst|ofproto.CTRel|ofproto.CTRpl)
	stRelated    = ofproto.CTState(ofproto.CTRel, ofproto.CTNew|ofproto.CTEst|ofproto.CTRel|ofproto.CTInv)
	stInvalid    = ofproto.CTState(ofproto.CTTrk|ofproto.CTInv, ofproto.CTTrk|ofproto.CTInv)
	stNotTracked = ofproto.CTState(0, ofproto.CTTrk)
	stTracked    = ofproto.CTState(ofproto.CTTrk, ofproto.CTTrk)
	stNotEst     = ofproto.CTState(0, ofproto.CTEst)
	stEst        = ofproto.CTState(ofproto.CTEst, ofproto.CTEst)

	regStateful  = ofproto.RegMasked(RegZone, 0, fwStateless)
	regStateless = ofproto.RegMasked(RegZone, fwStateless, fwStateless)
)

// zoneFromReg is the ct zone held in RegZone.
var zoneFromReg = ofproto.FieldRef{Class: ofproto.ClassNXM1, Type: ofproto.NXMReg0 + RegZone, Bytes: 4}

// fwDir is what differs between the two directions of the firewall.
type fwDir struct {
	name     string // topology.DirectionEgress or DirectionIngress
	rules    uint8  // the rules table
	accept   uint8  // where an accepted packet goes
	conjBit  uint32 // low bit of the direction's conjunction IDs
	remoteIP func(netip.Prefix) ofproto.Field
}

var (
	dirEgress  = fwDir{topology.DirectionEgress, IntRulesEgress, IntAcceptedEgress, 0, ipDstMasked}
	dirIngress = fwDir{topology.DirectionIngress, IntRulesIngress, IntAcceptedIngress, 1, ipSrcMasked}
)

// ipDstMasked matches an IPv4 or IPv6 destination prefix.
func ipDstMasked(p netip.Prefix) ofproto.Field {
	if p.Addr().Is4() {
		return ofproto.IPv4DstMasked(p)
	}
	return ofproto.IPv6DstMasked(p)
}

// ipSrcMasked matches an IPv4 or IPv6 source prefix.
func ipSrcMasked(p netip.Prefix) ofproto.Field {
	if p.Addr().Is4() {
		return ofproto.IPv4SrcMasked(p)
	}
	return ofproto.IPv6SrcMasked(p)
}

// conjID is the conjunction of the rules naming group g as remote in direction d.
func (d fwDir) conjID(g *topology.SecurityGroup) uint32 { return g.Tag<<1 | d.conjBit }

// fwEntry is what LOCAL_SWITCHING (egress) and TRANSIENT (ingress) do to a firewalled
// port's packets before going to the firewall: note the port, the zone, and whether the
// port is stateless.
func fwEntry(v *topology.View, p *topology.Port, ofport uint32, zone uint16) []ofproto.Action {
	z := uint32(zone)
	if !v.Stateful(p) {
		z |= fwStateless
	}
	return []ofproto.Action{ofproto.SetReg(RegPort, ofport), ofproto.SetReg(RegZone, z)}
}

// firewallBridge is the firewall's bridge-wide flows of br-int: what does not depend on
// the port, found through RegPort and RegZone.
func firewallBridge() []ofproto.Flow {
	cookie := Cookie(AppFirewall)
	ip := ofproto.EthType(ofproto.EthTypeIPv4)
	ip6 := ofproto.EthType(ofproto.EthTypeIPv6)
	arp := ofproto.EthType(ofproto.EthTypeARP)
	flow := func(table uint8, prio uint16, m ofproto.Match, actions []ofproto.Action, next uint8, hasNext bool) ofproto.Flow {
		return ofproto.Flow{Table: table, Priority: prio, Cookie: cookie, Match: m, Actions: actions, Goto: next, HasGoto: hasNext}
	}
	commit := []ofproto.Action{ofproto.CT{Commit: true, ZoneSrc: zoneFromReg}}
	cut := []ofproto.Action{ofproto.CT{Commit: true, ZoneSrc: zoneFromReg, Actions: []ofproto.Action{ofproto.SetCTMark(ctMarkCut)}}}
	noMark := ofproto.CTMark(0, ^uint32(0))
	out := []ofproto.Flow{
		// BASE_EGRESS: DHCP as a server is dropped; as a client from the port's own MAC it
		// went from LOCAL_SWITCHING to DHCP_IPV4 (dhcp.go), so what reaches this table is
		// spoofed, or on a network with no DHCP server: dropped too, never flooded.
		flow(IntBaseEgress, prioFWDHCP, dhcpv4.match(), nil, 0, false),
		flow(IntBaseEgress, prioFWDHCPSrv, dhcpv4.replies(), nil, 0, false),
		// DHCPv6 the same way: a port's own client requests are the dhcp app's to take in
		// LOCAL_SWITCHING (as DHCPv4 ones to DHCP_IPV4), what reaches this table is
		// dropped; a VM's server replies are dropped (Neutron's driver bans both servers).
		flow(IntBaseEgress, prioFWDHCP, dhcpv6.match(), nil, 0, false),
		flow(IntBaseEgress, prioFWDHCPSrv, dhcpv6.replies(), nil, 0, false),
		// A router advertisement of a port (one of its own addresses' ND did not take it):
		// dropped.
		flow(IntBaseEgress, prioFWRA, icmp6(ofproto.ICMPv6RouterAdvertisement), nil, 0, false),
		// ACCEPTED_EGRESS: commit a new connection, on to TRANSIENT.
		flow(IntAcceptedEgress, prioFWCommit, ofproto.Match{stNewNotEst, ip}, commit, IntTransient, true),
		flow(IntAcceptedEgress, prioFWCommit, ofproto.Match{stNewNotEst, ip6}, commit, IntTransient, true),
		// BASE_INGRESS: ARP, neighbour discovery and DHCP offers are delivered; IPv4 and
		// IPv6 go into conntrack unless tracked on their way out of a port of the same
		// network here, or the port is stateless.
		flow(IntBaseIngress, prioFWIngARP, ofproto.Match{arp}, nil, IntDeliver, true),
		flow(IntBaseIngress, prioFWIngND, icmp6(icmp6MLDQuery), nil, IntDeliver, true),
		flow(IntBaseIngress, prioFWIngND, icmp6(ofproto.ICMPv6RouterAdvertisement), nil, IntDeliver, true),
		flow(IntBaseIngress, prioFWIngND, icmp6(ofproto.ICMPv6NeighborSolicitation), nil, IntDeliver, true),
		flow(IntBaseIngress, prioFWIngND, icmp6(ofproto.ICMPv6NeighborAdvertisement), nil, IntDeliver, true),
		flow(IntBaseIngress, prioFWIngDHCP, dhcpv4.replies(), nil, IntDeliver, true),
		flow(IntBaseIngress, prioFWIngDHCP, dhcpv6.replies(), nil, IntDeliver, true),
	}
	for _, et := range []ofproto.Field{ip, ip6} {
		out = append(out,
			flow(IntBaseIngress, prioFWTrack, ofproto.Match{et, stNotTracked, regStateful},
				[]ofproto.Action{ofproto.CT{ZoneSrc: zoneFromReg, HasTable: true, Table: IntRulesIngress}}, 0, false),
			flow(IntBaseIngress, prioFWTracked, ofproto.Match{et, stTracked}, nil, IntRulesIngress, true),
			flow(IntBaseIngress, prioFWTracked, ofproto.Match{et, regStateless}, nil, IntRulesIngress, true),
			// ACCEPTED_INGRESS: commit a new connection, on to the port.
			flow(IntAcceptedIngress, prioFWCommit, ofproto.Match{stNewNotEst, et}, commit, IntDeliver, true))
	}
	// RULES_EGRESS and RULES_INGRESS: connection states. A stateless port's packets are
	// not tracked: what no rule allowed is dropped by the "-est" flow.
	for _, d := range []fwDir{dirEgress, dirIngress} {
		out = append(out,
			flow(d.rules, prioFWState, ofproto.Match{stInvalid}, nil, 0, false),
			flow(d.rules, prioFWState, ofproto.Match{ofproto.CTMark(ctMarkCut, ^uint32(0))}, nil, 0, false),
			flow(d.rules, prioFWState, ofproto.Match{stEstReply, noMark}, nil, d.accept, true),
			flow(d.rules, prioFWState, ofproto.Match{stRelated, noMark}, nil, d.accept, true),
			flow(d.rules, prioFWNotAllow, ofproto.Match{stNotEst}, nil, 0, false),
			flow(d.rules, prioFWNotAllow, ofproto.Match{ip, stEst}, cut, 0, false),
			flow(d.rules, prioFWNotAllow, ofproto.Match{ip6, stEst}, cut, 0, false))
	}
	return out
}

// firewallNet computes the flows of the firewalled ports of network netID plugged into
// bridge st (br-int).
func firewallNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	if st.Bridge != topology.BrInt {
		return nil
	}
	zone, ok := v.LocalVLAN(st.Host, netID)
	if !ok {
		return nil
	}
	var out []ofproto.Flow
	for _, ep := range v.Endpoints(netID) {
		if ep.Port.MAC == nil || !topology.Firewalled(ep.Port.Port) || !slices.Contains(ep.Hosts, st.Host) {
			continue
		}
		if ofport, ok := st.Ports[OVSPortName(ep.Port.Port)]; ok {
			out = append(out, firewallPort(v, ep.Port, ofport, zone)...)
		}
	}
	return out
}

// firewallPort computes the flows of one firewalled port p, plugged as ofport, on a network
// whose zone (local VLAN) is zone: its sources, its rules, its delivery.
func firewallPort(v *topology.View, p *topology.PortInfo, ofport uint32, zone uint16) []ofproto.Flow {
	cookie := Cookie(AppFirewall)
	reg := ofproto.Reg(RegPort, ofport)
	ip := ofproto.EthType(ofproto.EthTypeIPv4)
	arp := ofproto.EthType(ofproto.EthTypeARP)
	stateful := v.Stateful(p.Port)
	var out []ofproto.Flow
	// BASE_EGRESS: only the port's own addresses; anything else it sends is dropped by
	// the table's miss flow, whose counters count it.
	for _, a := range sourcesOf(p) {
		out = append(out, ofproto.Flow{Table: IntBaseEgress, Priority: prioFWARP, Cookie: cookie,
			Match: ofproto.Match{reg, arp, ofproto.EthSrc(a.mac), ofproto.ARPSPAMasked(a.prefix)}, Goto: IntARPResponder, HasGoto: true})
		f := ofproto.Flow{Table: IntBaseEgress, Priority: prioFWAddr, Cookie: cookie,
			Match: ofproto.Match{reg, ip, ofproto.EthSrc(a.mac), ofproto.IPv4SrcMasked(a.prefix)}, Goto: IntRulesEgress, HasGoto: true}
		if stateful {
			f.Actions, f.HasGoto = []ofproto.Action{ofproto.CT{ZoneSrc: zoneFromReg, HasTable: true, Table: IntRulesEgress}}, false
		}
		out = append(out, f)
	}
	// Neighbour discovery from its IPv6 addresses (Neutron's ICMPV6_ALLOWED_EGRESS_TYPES and
	// ICMPV6_RESTRICTED_EGRESS_TYPES), on to ARP_RESPONDER without conntrack, and IPv6 from
	// them into conntrack as IPv4, on a network with an IPv6 subnet (a port of an IPv4
	// network costs no more flows than before, and sends no IPv6).
	v6 := hasIPv6Subnet(v, p.NetworkID)
	var sources6 []portAddr
	if v6 {
		sources6 = sources6Of(p)
	}
	for _, a := range sources6 {
		for _, t := range []uint8{icmp6MLDQuery, ofproto.ICMPv6RouterSolicitation, ofproto.ICMPv6NeighborSolicitation} {
			out = append(out, ofproto.Flow{Table: IntBaseEgress, Priority: prioFWND, Cookie: cookie,
				Match: append(ofproto.Match{reg}, append(icmp6(t), ofproto.EthSrc(a.mac), ofproto.IPv6SrcMasked(a.prefix))...),
				Goto:  IntARPResponder, HasGoto: true})
		}
		out = append(out, ofproto.Flow{Table: IntBaseEgress, Priority: prioFWND, Cookie: cookie,
			Match: append(ofproto.Match{reg}, append(icmp6(ofproto.ICMPv6NeighborAdvertisement), ofproto.NDTargetMasked(a.prefix))...),
			Goto:  IntARPResponder, HasGoto: true})
		f := ofproto.Flow{Table: IntBaseEgress, Priority: prioFWAddr, Cookie: cookie,
			Match: ofproto.Match{reg, ofproto.EthType(ofproto.EthTypeIPv6), ofproto.EthSrc(a.mac), ofproto.IPv6SrcMasked(a.prefix)}, Goto: IntRulesEgress, HasGoto: true}
		if stateful {
			f.Actions, f.HasGoto = []ofproto.Action{ofproto.CT{ZoneSrc: zoneFromReg, HasTable: true, Table: IntRulesEgress}}, false
		}
		out = append(out, f)
	}
	for _, d := range []fwDir{dirEgress, dirIngress} {
		out = append(out, ruleFlows(v, p, reg, d, stateful, v6)...)
	}
	// DELIVER: out to the port, untagged.
	return append(out, ofproto.Flow{Table: IntDeliver, Priority: prioFWDeliver, Cookie: cookie,
		Match: ofproto.Match{reg, ofproto.VLANVID(zone)}, Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.Output{Port: ofport}}})
}

// ruleFlows computes the rules of port p's groups in direction d: a flow per rule and
// connection state, and for rules with a remote group the port's clause of the group's
// conjunction. Flows of equal match are merged (their conjunction actions joined). IPv6
// rules count only with v6 (the port's network has an IPv6 subnet).
func ruleFlows(v *topology.View, p *topology.PortInfo, reg ofproto.Field, d fwDir, stateful, v6 bool) []ofproto.Flow {
	cookie := Cookie(AppFirewall)
	states := []ofproto.Field{stNewNotEst, stEstNotRpl}
	if !stateful {
		states = []ofproto.Field{{}}
	}
	var out []ofproto.Flow
	byMatch := map[ofproto.FlowKey]int{}
	put := func(f ofproto.Flow) {
		f.Match = f.Match.Canonical()
		k := f.Key()
		i, ok := byMatch[k]
		if !ok {
			byMatch[k] = len(out)
			out = append(out, f)
			return
		}
		if merged, ok := ofproto.MergeConjunctions(&out[i], &f); ok {
			out[i] = merged
		} else if !f.Conjunctive() {
			// A rule accepting by itself covers a remote group's rule of the same match.
			out[i] = f
		}
	}
	for _, g := range p.SecurityGroups {
		for _, r := range v.GroupRules(g) {
			is6 := r.EtherType == topology.EtherTypeIPv6
			if r.Direction != d.name || (r.EtherType != topology.EtherTypeIPv4 && !(is6 && v6)) {
				continue
			}
			l4, ok := ruleL4(r)
			if !ok {
				continue
			}
			ethType := ofproto.EthType(ofproto.EthTypeIPv4)
			if is6 {
				ethType = ofproto.EthType(ofproto.EthTypeIPv6)
			}
			var remote ofproto.Match
			if r.RemoteIPPrefix != "" {
				pfx, err := netip.ParsePrefix(r.RemoteIPPrefix)
				if err != nil || pfx.Addr().Is6() != is6 {
					continue
				}
				pfx = pfx.Masked()
				if pfx.Bits() > 0 {
					remote = ofproto.Match{d.remoteIP(pfx)}
				}
			}
			var rg *topology.SecurityGroup
			if r.RemoteGroupID != "" {
				if rg = v.SecurityGroup(r.RemoteGroupID); rg == nil {
					continue
				}
			}
			for _, st := range states {
				for _, m4 := range l4 {
					m := ofproto.Match{reg, ethType}
					if st.Mask != nil {
						m = append(m, st)
					}
					m = append(m, remote...)
					m = append(m, m4...)
					f := ofproto.Flow{Table: d.rules, Priority: prioFWRule, Cookie: cookie, Match: m, Goto: d.accept, HasGoto: true}
					if rg != nil {
						f.Priority, f.Goto, f.HasGoto = prioFWConj, 0, false
						f.Actions = []ofproto.Action{ofproto.Conjunction{ID: d.conjID(rg), Clause: 1, NClauses: 2}}
					}
					put(f)
				}
			}
		}
	}
	return out
}

// ruleL4 is the protocol part of a rule's matches (several for a port range that is not one
// prefix). It reports false for a rule the data path cannot express exactly (a port range
// of a protocol without port fields here, ICMP of the other IP version): such a rule allows
// nothing rather than more.
func ruleL4(r *topology.SecurityGroupRule) ([]ofproto.Match, bool) {
	num := topology.ProtocolNumber(r.Protocol)
	is6 := r.EtherType == topology.EtherTypeIPv6
	if is6 && r.Protocol == "icmp" {
		num = ofproto.IPProtoICMPv6 // as Neutron's driver reads "icmp" in an IPv6 rule
	}
	if num < 0 {
		return []ofproto.Match{nil}, true
	}
	proto := ofproto.IPProto(uint8(num))
	switch num {
	case ofproto.IPProtoTCP, ofproto.IPProtoUDP:
		if r.PortRangeMin == nil {
			return []ofproto.Match{{proto}}, true
		}
		hi := *r.PortRangeMin
		if r.PortRangeMax != nil {
			hi = *r.PortRangeMax
		}
		var out []ofproto.Match
		for _, pm := range portMasks(uint16(*r.PortRangeMin), uint16(hi)) {
			f := ofproto.TCPDstMasked(pm.value, pm.mask)
			if num == ofproto.IPProtoUDP {
				f = ofproto.UDPDstMasked(pm.value, pm.mask)
			}
			out = append(out, ofproto.Match{proto, f})
		}
		return out, true
	case ofproto.IPProtoICMP, ofproto.IPProtoICMPv6:
		m := ofproto.Match{proto}
		if r.PortRangeMin == nil {
			return []ofproto.Match{m}, true
		}
		if is6 != (num == ofproto.IPProtoICMPv6) {
			return nil, false // ICMP type and code in the other IP version's packets
		}
		icmpType, icmpCode := ofproto.ICMPv4Type, ofproto.ICMPv4Code
		if is6 {
			icmpType, icmpCode = ofproto.ICMPv6Type, ofproto.ICMPv6Code
		}
		m = append(m, icmpType(uint8(*r.PortRangeMin)))
		if r.PortRangeMax != nil {
			m = append(m, icmpCode(uint8(*r.PortRangeMax)))
		}
		return []ofproto.Match{m}, true
	}
	if r.PortRangeMin != nil {
		return nil, false
	}
	return []ofproto.Match{{proto}}, true
}

type portMask struct{ value, mask uint16 }

// portMasks covers the port range [lo, hi] with value/mask pairs, the fewest there are.
func portMasks(lo, hi uint16) []portMask {
	var out []portMask
	for l := uint32(lo); l <= uint32(hi); {
		size := uint32(1)
		for l&(size*2-1) == 0 && l+size*2-1 <= uint32(hi) && size < 1<<16 {
			size *= 2
		}
		out = append(out, portMask{uint16(l), uint16(^(size - 1))})
		l += size
	}
	return out
}

// portAddr is a source a firewalled port may send from.
type portAddr struct {
	mac    net.HardwareAddr
	prefix netip.Prefix
}

// sourcesOf returns port p's IPv4 sources: its MAC with each fixed IP, and each allowed
// address pair, sorted and without duplicates.
func sourcesOf(p *topology.PortInfo) []portAddr { return sourcesOfVersion(p, false) }

// sourcesOfVersion returns port p's sources of one IP version: its MAC with each fixed IP
// of that version, and each allowed address pair of it, sorted and without duplicates;
// for IPv6 also its MAC with the link-local address of the MAC (neighbour discovery uses
// it, Neutron's lla_address).
func sourcesOfVersion(p *topology.PortInfo, v6 bool) []portAddr {
	bits := 32
	var out []portAddr
	if v6 {
		if p.MAC == nil {
			return nil
		}
		bits = 128
		out = append(out, portAddr{p.MAC, netip.PrefixFrom(ofproto.LinkLocal(p.MAC), bits)})
	}
	for _, ip := range p.IPs {
		if ip.Addr.Is6() == v6 {
			out = append(out, portAddr{p.MAC, netip.PrefixFrom(ip.Addr, bits)})
		}
	}
	for _, pair := range p.AllowedAddressPairs {
		pfx, ok := pair.Prefix()
		if !ok || pfx.Addr().Is6() != v6 {
			continue
		}
		mac := p.MAC
		if m, err := net.ParseMAC(pair.MACAddress); err == nil {
			mac = m
		}
		out = append(out, portAddr{mac, pfx})
	}
	slices.SortFunc(out, func(a, b portAddr) int {
		return cmp.Or(bytes.Compare(a.mac, b.mac), a.prefix.Addr().Compare(b.prefix.Addr()), cmp.Compare(a.prefix.Bits(), b.prefix.Bits()))
	})
	return slices.CompactFunc(out, func(a, b portAddr) bool { return bytes.Equal(a.mac, b.mac) && a.prefix == b.prefix })
}

// icmp6MLDQuery is the ICMPv6 type of a multicast listener query (RFC 2710).
const icmp6MLDQuery = 130

// icmp6 matches ICMPv6 messages of type t.
func icmp6(t uint8) ofproto.Match {
	return ofproto.Match{ofproto.EthType(ofproto.EthTypeIPv6), ofproto.IPProto(ofproto.IPProtoICMPv6), ofproto.ICMPv6Type(t)}
}

// sources6Of returns port p's IPv6 sources (sourcesOfVersion).
func sources6Of(p *topology.PortInfo) []portAddr { return sourcesOfVersion(p, true) }

// remoteGroupFlows is the part RemoteGroupPart(dir, group), the same on every br-int that
// has it: the accept flow of the group's conjunction in direction dir, and its members'
// clause (one flow per member prefix). A prefix that several groups hold gets one flow
// with the conjunctions of all of them (Flows and the reconciler merge them).
func remoteGroupFlows(v *topology.View, dir, group string) []ofproto.Flow {
	g := v.SecurityGroup(group)
	if g == nil {
		return nil
	}
	d := dirIngress
	if dir == dirEgress.name {
		d = dirEgress
	}
	cookie := Cookie(AppFirewall)
	ip, ip6 := ofproto.EthType(ofproto.EthTypeIPv4), ofproto.EthType(ofproto.EthTypeIPv6)
	conj := d.conjID(g)
	prefixes := v.GroupPrefixes(group)
	out := make([]ofproto.Flow, 0, 2+len(prefixes))
	accept := func(et ofproto.Field) ofproto.Flow {
		return ofproto.Flow{Table: d.rules, Priority: prioFWConj, Cookie: cookie,
			Match: ofproto.Match{et, ofproto.ConjID(conj)}, Goto: d.accept, HasGoto: true}
	}
	out = append(out, accept(ip))
	// IPv4 and IPv6 rules naming the group share its conjunction: a packet completes it
	// only with a member prefix and a port's clause of its own IP version.
	if slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		out = append(out, accept(ip6))
	}
	for _, a := range prefixes {
		et := ip
		if a.Addr().Is6() {
			et = ip6
		}
		out = append(out, ofproto.Flow{Table: d.rules, Priority: prioFWConj, Cookie: cookie,
			Match: ofproto.Match{et, d.remoteIP(a)}, Actions: []ofproto.Action{ofproto.Conjunction{ID: conj, Clause: 0, NClauses: 2}}})
	}
	return out
}
