package apps

import (
	"net"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// The l2 app: local switching on br-int with per-host local VLANs, VNI <-> local VLAN on
// br-tun, exact unicast to the VTEP of the host that holds each known MAC (l2population:
// the controller knows every port, so nothing is learned), flooding of broadcast and
// multicast only to the hosts with ports on the network, all through one flow-based VXLAN
// port; flat and VLAN external networks through br-ex.
//
// There are no MAC-learning tables (Neutron's br-tun 9 DVR_NOT_LEARN and 10 LEARN_FROM_TUN,
// br-int NORMAL): every MAC that may appear on a network is a port the API created, so
// unicast flows are exact and unknown unicast is counted by the controller instead of
// flooded.

var (
	macUnicast  = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	macGroupBit = net.HardwareAddr{1, 0, 0, 0, 0, 0} // also the value that marks multicast under that mask
)

// l2Bridge computes the l2 app's bridge-wide flows of bridge st.
func l2Bridge(st *BridgeState) []ofproto.Flow {
	cookie := Cookie(AppL2)
	switch st.Bridge {
	case topology.BrInt:
		if patchTun, ok := st.Ports[PortPatchTun]; ok {
			return []ofproto.Flow{{Table: IntLocalSwitching, Priority: PrioBase, Cookie: cookie,
				Match: ofproto.Match{ofproto.InPort(patchTun)}, Goto: IntTransient, HasGoto: true}}
		}
	case topology.BrTun:
		patchInt, ok1 := st.Ports[PortPatchInt]
		vxlan, ok2 := st.Ports[PortVXLAN]
		if !ok1 || !ok2 {
			return nil
		}
		return []ofproto.Flow{
			{Table: TunClassifier, Priority: PrioBase, Cookie: cookie,
				Match: ofproto.Match{ofproto.InPort(patchInt)}, Goto: TunDVRProcess, HasGoto: true},
			{Table: TunClassifier, Priority: PrioBase, Cookie: cookie,
				Match: ofproto.Match{ofproto.InPort(vxlan)}, Goto: TunVXLANToLV, HasGoto: true},
			{Table: TunPatchLVToTun, Priority: PrioBase, Cookie: cookie,
				Match: ofproto.Match{ofproto.EthDstMasked(macUnicast, macGroupBit)}, Goto: TunUcastToTun, HasGoto: true},
			{Table: TunPatchLVToTun, Priority: PrioBase, Cookie: cookie,
				Match: ofproto.Match{ofproto.EthDstMasked(macGroupBit, macGroupBit)}, Goto: TunFloodToTun, HasGoto: true},
		}
	case topology.BrEx:
		return l2Ex(st)
	}
	return nil
}

// l2Net computes the l2 app's flows of network netID on bridge st.
func l2Net(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	switch st.Bridge {
	case topology.BrInt:
		return l2IntNet(v, st, netID)
	case topology.BrTun:
		return l2TunNet(v, st, netID)
	}
	return nil
}

// uplinkActions turns a frame tagged with the local VLAN into what the physical network
// carries: untagged for flat networks, the provider VLAN for VLAN networks.
func uplinkActions(n *topology.NetInfo) []ofproto.Action {
	if n.NetworkType == topology.NetworkTypeVLAN {
		return []ofproto.Action{ofproto.SetVLANVID(uint16(n.SegmentationID))}
	}
	return []ofproto.Action{ofproto.PopVLAN{}}
}

func l2IntNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	var out []ofproto.Flow
	cookie := Cookie(AppL2)
	patchTun, hasTun := st.Ports[PortPatchTun]
	intEx, hasEx := st.Ports[PortIntBrEx]
	n := v.Network(netID)
	vlan, ok := v.LocalVLAN(st.Host, netID)
	if n == nil || !ok {
		return nil // not realizable until the controller allocated its local VLAN
	}
	tunnel := n.Tunneled() && hasTun
	physical := n.Physical() && hasEx
	var local []uint32
	for _, ep := range v.Endpoints(netID) {
		if ep.Port.MAC == nil {
			continue
		}
		if slices.Contains(ep.Hosts, st.Host) {
			ofport, ok := st.Ports[OVSPortName(ep.Port.Port)]
			if !ok {
				continue // not plugged yet: its flows come with its port-status
			}
			local = append(local, ofport)
			egress := ofproto.Flow{Table: IntLocalSwitching, Priority: PrioLocal, Cookie: cookie,
				Match:   ofproto.Match{ofproto.InPort(ofport), ofproto.VLANNone()},
				Actions: []ofproto.Action{ofproto.PushVLAN{EtherType: ofproto.EthTypeVLAN}, ofproto.SetVLANVID(vlan)},
				Goto:    IntARPResponder, HasGoto: true}
			ingress := ofproto.Flow{Table: IntTransient, Priority: PrioLocal, Cookie: cookie,
				Match:   ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthDst(ep.Port.MAC)},
				Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.Output{Port: ofport}}}
			if topology.Firewalled(ep.Port.Port) {
				// Through the firewall (firewall.go) both ways.
				entry := fwEntry(v, ep.Port.Port, ofport, vlan)
				egress.Actions = append(egress.Actions, entry...)
				egress.Goto = IntBaseEgress
				ingress.Actions, ingress.Goto, ingress.HasGoto = entry, IntBaseIngress, true
			}
			out = append(out, egress, ingress)
			continue
		}
		if tunnel && ep.Port.DeviceOwner != topology.OwnerRouterInterfaceDistributed {
			out = append(out, ofproto.Flow{Table: IntTransient, Priority: PrioRemote, Cookie: cookie,
				Match:   ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthDst(ep.Port.MAC)},
				Actions: []ofproto.Action{ofproto.Output{Port: patchTun}}})
		}
	}
	// Broadcast and multicast: the tunnels first (still tagged), then every local port.
	var flood []ofproto.Action
	if tunnel && v.HostCount(netID) > 1 {
		flood = append(flood, ofproto.Output{Port: patchTun})
	}
	if physical {
		flood = append(flood, uplinkActions(n)...)
		flood = append(flood, ofproto.Output{Port: intEx})
	}
	if !physical || n.NetworkType == topology.NetworkTypeVLAN {
		flood = append(flood, ofproto.PopVLAN{})
	}
	for _, p := range local {
		flood = append(flood, ofproto.Output{Port: p})
	}
	out = append(out, ofproto.Flow{Table: IntTransient, Priority: PrioFlood, Cookie: cookie,
		Match:   ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthDstMasked(macGroupBit, macGroupBit)},
		Actions: flood})
	if physical {
		// Frames from the physical network: tag with the local VLAN, forward in TRANSIENT.
		// Unicast to MACs that are not ours (an upstream router) leaves by the uplink.
		in := ofproto.Match{ofproto.InPort(intEx), ofproto.VLANNone()}
		tag := []ofproto.Action{ofproto.PushVLAN{EtherType: ofproto.EthTypeVLAN}, ofproto.SetVLANVID(vlan)}
		if n.NetworkType == topology.NetworkTypeVLAN {
			in = ofproto.Match{ofproto.InPort(intEx), ofproto.VLANVID(uint16(n.SegmentationID))}
			tag = []ofproto.Action{ofproto.SetVLANVID(vlan)}
		}
		out = append(out,
			ofproto.Flow{Table: IntLocalSwitching, Priority: PrioRemote, Cookie: cookie,
				Match: in, Actions: tag, Goto: IntTransient, HasGoto: true},
			ofproto.Flow{Table: IntTransient, Priority: PrioBase, Cookie: cookie,
				Match:   ofproto.Match{ofproto.VLANVID(vlan)},
				Actions: append(uplinkActions(n), ofproto.Output{Port: intEx})})
	}
	return out
}

func l2TunNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	patchInt, ok1 := st.Ports[PortPatchInt]
	vxlan, ok2 := st.Ports[PortVXLAN]
	if !ok1 || !ok2 {
		return nil
	}
	cookie := Cookie(AppL2)
	var out []ofproto.Flow
	n := v.Network(netID)
	vlan, ok := v.LocalVLAN(st.Host, netID)
	if n == nil || !ok || !n.Tunneled() {
		return nil
	}
	vni := uint64(n.SegmentationID)
	out = append(out, ofproto.Flow{Table: TunVXLANToLV, Priority: PrioBase, Cookie: cookie,
		Match: ofproto.Match{ofproto.TunnelID(vni)},
		Actions: []ofproto.Action{ofproto.PushVLAN{EtherType: ofproto.EthTypeVLAN}, ofproto.SetVLANVID(vlan),
			ofproto.Output{Port: patchInt}}})
	for _, ep := range v.Endpoints(netID) {
		if ep.Port.MAC == nil || ep.Port.DeviceOwner == topology.OwnerRouterInterfaceDistributed || slices.Contains(ep.Hosts, st.Host) {
			continue
		}
		remote := v.Host(ep.Hosts[0])
		if remote == nil || !remote.TunnelIP.IsValid() {
			continue
		}
		out = append(out, ofproto.Flow{Table: TunUcastToTun, Priority: PrioLocal, Cookie: cookie,
			Match: ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthDst(ep.Port.MAC)},
			Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.SetTunnelID(vni),
				ofproto.SetTunDst(remote.TunnelIP), ofproto.Output{Port: vxlan}}})
	}
	flood := []ofproto.Action{ofproto.PopVLAN{}, ofproto.SetTunnelID(vni)}
	for _, h := range v.HostsWithNetwork(netID) {
		if hi := v.Host(h); h != st.Host && hi.TunnelIP.IsValid() {
			flood = append(flood, ofproto.SetTunDst(hi.TunnelIP), ofproto.Output{Port: vxlan})
		}
	}
	if len(flood) > 2 {
		out = append(out, ofproto.Flow{Table: TunFloodToTun, Priority: PrioBase, Cookie: cookie,
			Match: ofproto.Match{ofproto.VLANVID(vlan)}, Actions: flood})
	}
	return out
}

// l2Ex joins br-int's patch with the host's uplinks: every br-ex port other than the patch
// (and the bridge's own LOCAL port) is an uplink to the physical network.
func l2Ex(st *BridgeState) []ofproto.Flow {
	phy, ok := st.Ports[PortPhyBrEx]
	if !ok {
		return nil
	}
	cookie := Cookie(AppL2)
	var uplinks []ofproto.Action
	out := []ofproto.Flow{{Table: ExPhysical, Priority: PrioBase, Cookie: cookie,
		Match: ofproto.Match{ofproto.InPort(phy)}, Goto: ExDVRProcessPhysical, HasGoto: true}}
	for _, name := range sortedPortNames(st.Ports) {
		p := st.Ports[name]
		if name == PortPhyBrEx || p == ofproto.PortLocal || name == string(topology.BrEx) {
			continue
		}
		uplinks = append(uplinks, ofproto.Output{Port: p})
		out = append(out, ofproto.Flow{Table: ExPhysical, Priority: PrioBase, Cookie: cookie,
			Match: ofproto.Match{ofproto.InPort(p)}, Actions: []ofproto.Action{ofproto.Output{Port: phy}}})
	}
	if len(uplinks) > 0 {
		out = append(out, ofproto.Flow{Table: ExToPhysical, Priority: PrioBase, Cookie: cookie, Actions: uplinks})
	}
	return out
}
