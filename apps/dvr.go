package apps

import (
	"bytes"
	"net"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// The dvr app (dvr-reference.md 1.3, 1.4): every host routes with the same router
// interface MAC G on each subnet; a routed frame leaves a host with the host's own DVR MAC
// D as source (br-tun DVR_PROCESS), and the receiving host puts the destination subnet's G
// back before delivery (br-int DVR_TO_SRC_MAC), so no fabric or switch ever sees G from two
// places.

// dvrNet computes the dvr app's flows of network netID on bridge st.
func dvrNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	switch st.Bridge {
	case topology.BrInt:
		return dvrIntNet(v, st, netID)
	case topology.BrTun:
		return dvrTunNet(v, st, netID)
	case topology.BrEx:
		return dvrExNet(v, st, netID)
	}
	return nil
}

// physMatch matches a frame of physical network n on the wire: its provider VLAN, or
// untagged for a flat network.
func physMatch(n *topology.NetInfo) ofproto.Field {
	if n.NetworkType == topology.NetworkTypeVLAN {
		return ofproto.VLANVID(uint16(n.SegmentationID))
	}
	return ofproto.VLANNone()
}

// dvrExNet is DVR_PROCESS for VLAN and flat networks (Neutron's br-phys table 1): on the way to
// the physical network, frames from the router's MAC leave with this host's DVR MAC, frames
// for it never leave.
func dvrExNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	self := v.Host(st.Host)
	n := v.Network(netID)
	if self == nil || self.DVRMAC == nil || n == nil || !n.Physical() {
		return nil
	}
	var out []ofproto.Flow
	for _, gw := range gatewayMACs(v, st.Host, netID) {
		out = append(out, dvrProcess(ExDVRProcessPhysical, ExToPhysical, physMatch(n), gw, self.DVRMAC)...)
	}
	return out
}

// gatewayMACs returns the MACs of the interfaces on network netID of the routers running on
// host, each once (an interface port on several subnets has one).
func gatewayMACs(v *topology.View, host, netID string) []net.HardwareAddr {
	var out []net.HardwareAddr
	for _, s := range v.InterfacesOn(host, netID) {
		if s.GatewayMAC != nil && !slices.ContainsFunc(out, func(m net.HardwareAddr) bool { return bytes.Equal(m, s.GatewayMAC) }) {
			out = append(out, s.GatewayMAC)
		}
	}
	return out
}

// dvrIntNet: frames from the DVR MAC of a peer (a host running one of this host's routers: no
// other host routes frames here) go to DVR_TO_SRC_MAC (the dvr app adds these
// classifiers to l2's LOCAL_SWITCHING: only it knows the DVR MACs), which restores the gateway MAC
// of the subnet of each local port they may be for (VMs and the snat ports).
func dvrPeer(v *topology.View, st *BridgeState, peer string) []ofproto.Flow {
	hi := v.Host(peer)
	if st.Bridge != topology.BrInt || hi == nil || hi.DVRMAC == nil || !v.IsDVRPeer(st.Host, peer) {
		return nil
	}
	patchTun, ok := st.Ports[PortPatchTun]
	if !ok {
		return nil
	}
	cookie := Cookie(AppDVR)
	out := []ofproto.Flow{{Table: IntLocalSwitching, Priority: PrioDVRMAC, Cookie: cookie,
		Match: ofproto.Match{ofproto.InPort(patchTun), ofproto.EthSrc(hi.DVRMAC)}, Goto: IntDVRToSrcMAC, HasGoto: true}}
	// From the physical network: frames of the peer's DVR MAC on a VLAN or flat network get
	// the local VLAN and the same treatment.
	if intEx, ok := st.Ports[PortIntBrEx]; ok {
		for _, netID := range st.physicalRouted(v) {
			n := v.Network(netID)
			vlan, ok := v.LocalVLAN(st.Host, netID)
			if !ok {
				continue
			}
			tag := []ofproto.Action{ofproto.PushVLAN{EtherType: ofproto.EthTypeVLAN}, ofproto.SetVLANVID(vlan)}
			if n.NetworkType == topology.NetworkTypeVLAN {
				tag = tag[1:]
			}
			out = append(out, ofproto.Flow{Table: IntLocalSwitching, Priority: PrioDVRMAC, Cookie: cookie,
				Match:   ofproto.Match{ofproto.InPort(intEx), physMatch(n), ofproto.EthSrc(hi.DVRMAC)},
				Actions: tag, Goto: IntDVRToSrcMAC, HasGoto: true})
		}
	}
	return out
}

// dvrIntNet: DVR_TO_SRC_MAC restores the gateway MAC of the subnet of each local port of
// network netID that a routed frame may be for (VMs and the snat ports).
func dvrIntNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	if _, ok := st.Ports[PortPatchTun]; !ok {
		return nil
	}
	vlan, ok := v.LocalVLAN(st.Host, netID)
	if !ok {
		return nil
	}
	cookie := Cookie(AppDVR)
	var out []ofproto.Flow
	for _, ep := range v.Endpoints(netID) {
		p := ep.Port
		if !slices.Contains(ep.Hosts, st.Host) || p.MAC == nil ||
			!(topology.IsDVRServiced(p.DeviceOwner) || p.DeviceOwner == topology.OwnerRouterCentralizedSNAT) {
			continue
		}
		// The first fixed IP on a routed subnet of each version decides its gateway MAC:
		// one flow per (VLAN, MAC) key, and one for IPv6 alone when an IPv6 subnet is
		// routed by another interface port than the IPv4 one (Neutron's
		// DVR_TO_SRC_MAC_IPV6).
		gw4, gw6 := routedGatewayMACs(v, p)
		match := ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthDst(p.MAC)}
		if gw := gw4; gw != nil || gw6 != nil {
			if gw == nil {
				gw = gw6
			}
			out = append(out, ofproto.Flow{Table: IntDVRToSrcMAC, Priority: PrioLocal, Cookie: cookie, Match: match,
				Actions: []ofproto.Action{ofproto.SetEthSrc(gw)}, Goto: IntTransient, HasGoto: true})
		}
		if gw4 != nil && gw6 != nil && !bytes.Equal(gw4, gw6) {
			out = append(out, ofproto.Flow{Table: IntDVRToSrcMAC, Priority: PrioLocal + 1, Cookie: cookie,
				Match:   append(slices.Clip(match), ofproto.EthType(ofproto.EthTypeIPv6)),
				Actions: []ofproto.Action{ofproto.SetEthSrc(gw6)}, Goto: IntTransient, HasGoto: true})
		}
	}
	return out
}

// routedGatewayMACs returns the gateway MACs of port p's first IPv4 and first IPv6 address
// on a routed subnet (nil when it has none).
func routedGatewayMACs(v *topology.View, p *topology.PortInfo) (gw4, gw6 net.HardwareAddr) {
	for _, ip := range p.IPs {
		s := v.Subnet(ip.SubnetID)
		if s == nil || s.RouterID == "" || s.GatewayMAC == nil {
			continue
		}
		if ip.Addr.Is4() && gw4 == nil {
			gw4 = s.GatewayMAC
		} else if ip.Addr.Is6() && gw6 == nil {
			gw6 = s.GatewayMAC
		}
	}
	return gw4, gw6
}

// dvrTunNet: on every host running a router, frames for the router's MAC never leave, and frames
// from it leave with the host's DVR MAC.
func dvrTunNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	self := v.Host(st.Host)
	n := v.Network(netID)
	vlan, ok := v.LocalVLAN(st.Host, netID)
	if self == nil || self.DVRMAC == nil || n == nil || !ok || !n.Tunneled() {
		return nil
	}
	var out []ofproto.Flow
	for _, gw := range gatewayMACs(v, st.Host, netID) {
		out = append(out, dvrProcess(TunDVRProcess, TunPatchLVToTun, ofproto.VLANVID(vlan), gw, self.DVRMAC)...)
	}
	return out
}

// dvrProcess is the pair of flows of a DVR_PROCESS table (br-tun 1, br-ex 1) for one router
// interface with MAC gw on the network selected by onNet: frames for gw never leave the host;
// frames from gw leave with the host's DVR MAC, continuing in table next.
func dvrProcess(table, next uint8, onNet ofproto.Field, gw, dvrMAC net.HardwareAddr) []ofproto.Flow {
	cookie := Cookie(AppDVR)
	return []ofproto.Flow{
		{Table: table, Priority: PrioDropDVR, Cookie: cookie, Match: ofproto.Match{onNet, ofproto.EthDst(gw)}},
		{Table: table, Priority: PrioDVRMAC, Cookie: cookie, Match: ofproto.Match{onNet, ofproto.EthSrc(gw)},
			Actions: []ofproto.Action{ofproto.SetEthSrc(dvrMAC)}, Goto: next, HasGoto: true},
	}
}
