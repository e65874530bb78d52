package apps

import (
	"bytes"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// The ra app: router advertisements for every IPv6 subnet with an ipv6_ra_mode that is on a
// router's interface, sent by the controller on each host that has ports on the subnet's
// network: in answer to a router solicitation of a local port (br-int ARP_RESPONDER sends
// those to the controller, through MeterController; they are never flooded), and
// unsolicited to every local port of the network now and then and as soon as a port is
// plugged (engine/ra.go). One advertisement per router interface, from the interface's MAC
// and the link-local address EUI-64 derives from it, with the flags its subnets' modes ask
// for as Neutron's radvd configuration sets them: M for dhcpv6-stateful, O for
// dhcpv6-stateless, a prefix information option per subnet with L set and A for slaac and
// dhcpv6-stateless, the source link-layer address option, the network's MTU and a router
// lifetime.
//
// The controller sends them, not a radvd in each qrouter namespace as Neutron's L3 agent
// runs: that would be a daemon per router per host, with its configuration files, to start,
// watch and restart; the controller already answers ARP and DHCP from the topology with a
// packet-out on the asking port, and router advertisements take that one code path; and
// they follow the topology at once (a subnet attached or its mode changed is advertised by
// the next packet-out, with no daemon to reconfigure). A router advertisement that a VM
// sends is dropped by the firewall (firewall.go), as Neutron's drops it: VMs are no routers.

// Router advertisement timing and lifetimes: radvd's defaults as Neutron's L3 agent leaves
// them, but the interval, which is the engine's (every 10-30 s).
const (
	RARouterLifetime    = 1800  // seconds
	RAValidLifetime     = 86400 // seconds, of each prefix
	RAPreferredLifetime = 14400
	raCurHopLimit       = 64
)

// advertised returns the IPv6 subnets of network netID that the controller advertises,
// grouped by router interface port (sorted by subnet ID within).
func advertised(v *topology.View, netID string) [][]*topology.SubnetInfo {
	n := v.Network(netID)
	if n == nil || n.External {
		return nil
	}
	var out [][]*topology.SubnetInfo
	for _, sid := range n.SubnetIDs {
		s := v.Subnet(sid)
		if s == nil || s.IsIPv4() || s.IPv6RAMode == "" || s.RouterIf == nil || s.RouterIf.MAC == nil || !s.Prefix.IsValid() {
			continue
		}
		i := slices.IndexFunc(out, func(g []*topology.SubnetInfo) bool { return g[0].RouterIf == s.RouterIf })
		if i < 0 {
			out = append(out, []*topology.SubnetInfo{s})
		} else {
			out[i] = append(out[i], s)
		}
	}
	return out
}

// RouterAdverts returns the router advertisements of network netID, to all nodes (none
// when it has no advertised subnet).
func RouterAdverts(v *topology.View, netID string) []ofproto.RouterAdvert {
	groups := advertised(v, netID)
	if len(groups) == 0 {
		return nil
	}
	mtu := uint32(max(v.Network(netID).MTU, 0))
	out := make([]ofproto.RouterAdvert, 0, len(groups))
	for _, g := range groups {
		mac := g[0].RouterIf.MAC
		ra := ofproto.RouterAdvert{EthSrc: mac, EthDst: ofproto.MulticastMAC(ofproto.AllNodes()),
			Src: ofproto.LinkLocal(mac), Dst: ofproto.AllNodes(), CurHopLimit: raCurHopLimit,
			RouterLifetime: RARouterLifetime, MTU: mtu}
		for _, s := range g {
			switch s.IPv6RAMode {
			case topology.IPv6DHCPStateful:
				ra.Managed = true
			case topology.IPv6DHCPStateless:
				ra.Other = true
			}
			ra.Prefixes = append(ra.Prefixes, ofproto.RAPrefix{Prefix: s.Prefix.Masked(), OnLink: true,
				Autonomous: s.IPv6RAMode == topology.IPv6SLAAC || s.IPv6RAMode == topology.IPv6DHCPStateless,
				Valid:      RAValidLifetime, Preferred: RAPreferredLifetime})
		}
		out = append(out, ra)
	}
	return out
}

// SolicitedAdverts returns the answers to router solicitation rs, received on host's
// br-int at View v: the advertisements of its network, to the asker (to all nodes when it
// asked from ::). Only a VM or another DVR-serviced port of the network on host is
// answered: a router's own ports (a qr- in its qrouter namespace soliciting as the
// kernel does while it does not forward IPv6) must not configure themselves from it.
func SolicitedAdverts(v *topology.View, host string, rs ofproto.NDMessage) []ofproto.RouterAdvert {
	netID, ok := v.NetworkOfVLAN(host, rs.VLAN)
	if !ok || rs.Type != ofproto.ICMPv6RouterSolicitation {
		return nil
	}
	asker := false
	for _, ep := range v.Endpoints(netID) {
		if bytes.Equal(ep.Port.MAC, rs.EthSrc) && topology.IsDVRServiced(ep.Port.DeviceOwner) && slices.Contains(ep.Hosts, host) {
			asker = true
			break
		}
	}
	if !asker {
		return nil
	}
	ras := RouterAdverts(v, netID)
	if rs.Src.IsValid() && !rs.Src.IsUnspecified() {
		for i := range ras {
			ras[i].Dst, ras[i].EthDst = rs.Src, rs.EthSrc
		}
	}
	return ras
}

// raNet computes the ra app's flow of network netID on bridge st: its router solicitations
// to the controller, when it has advertised subnets.
func raNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	if st.Bridge != topology.BrInt || len(advertised(v, netID)) == 0 {
		return nil
	}
	vlan, ok := v.LocalVLAN(st.Host, netID)
	if !ok {
		return nil
	}
	return []ofproto.Flow{{Table: IntARPResponder, Priority: PrioARP, Cookie: Cookie(AppRA),
		Match: ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthType(ofproto.EthTypeIPv6),
			ofproto.IPProto(ofproto.IPProtoICMPv6), ofproto.ICMPv6Type(ofproto.ICMPv6RouterSolicitation)},
		Meter:   MeterController,
		Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}}}
}

// RAListener is a local port that unsolicited router advertisements go to, on its OpenFlow
// port.
type RAListener struct {
	Port   *topology.PortInfo
	OFPort uint32
}

// RAListeners returns, per network of host with advertisements, the plugged local ports
// of bridge st (host's br-int) that hear them: VMs and other DVR-serviced ports, by
// network ID and then port ID.
func RAListeners(v *topology.View, st *BridgeState) map[string][]RAListener {
	out := map[string][]RAListener{}
	for _, netID := range v.NetworksOn(st.Host) {
		if len(advertised(v, netID)) == 0 {
			continue
		}
		for _, ep := range v.Endpoints(netID) {
			p := ep.Port
			if !topology.IsDVRServiced(p.DeviceOwner) || !slices.Contains(ep.Hosts, st.Host) {
				continue
			}
			if no, ok := st.Ports[OVSPortName(p.Port)]; ok {
				out[netID] = append(out[netID], RAListener{Port: p, OFPort: no})
			}
		}
	}
	return out
}
