package apps

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// The nd app is the arp app's IPv6 counterpart: every neighbour solicitation that a local
// port sends for an address the topology knows on its network is sent to the controller
// (br-int ARP_RESPONDER, through MeterController), which answers with a neighbour
// advertisement on the asking port (solicited and override flags, the router flag for a
// router's addresses, the target link-layer address option). Such a solicitation is never
// flooded and never encapsulated into a tunnel. The known addresses of a network with an
// IPv6 subnet are those of its realized ports, the link-local address each of them derives
// from its MAC (EUI-64: Linux's default, and what Neutron's firewall lets a port send
// from), and the addresses of the routers' interfaces on its IPv6 subnets and of its DHCP
// server port, with their link-local addresses. Solicitations for other addresses continue to TRANSIENT and are
// flooded, as before. A solicitation of a port for its own address (duplicate address
// detection) reaches the controller too and is not answered.

// ndTarget is what answers for one known address.
type ndTarget struct {
	mac    net.HardwareAddr
	router bool
}

// hasIPv6Subnet reports whether network netID has an IPv6 subnet.
func hasIPv6Subnet(v *topology.View, netID string) bool {
	n := v.Network(netID)
	if n == nil {
		return false
	}
	for _, sid := range n.SubnetIDs {
		if s := v.Subnet(sid); s != nil && !s.IsIPv4() {
			return true
		}
	}
	return false
}

// ndTargets calls yield with every address the controller answers neighbour
// solicitations for on network netID (none on an external network, as for ARP, nor on a
// network without an IPv6 subnet), until it returns false.
func ndTargets(v *topology.View, netID string, yield func(netip.Addr, ndTarget) bool) {
	n := v.Network(netID)
	if n == nil || n.External || !hasIPv6Subnet(v, netID) {
		return
	}
	for _, sid := range n.SubnetIDs {
		s := v.Subnet(sid)
		if s == nil || s.IsIPv4() || s.RouterIf == nil || s.RouterIf.MAC == nil {
			continue
		}
		rif := s.RouterIf
		for _, ip := range rif.IPs {
			if ip.SubnetID == s.ID && !yield(ip.Addr, ndTarget{rif.MAC, true}) {
				return
			}
		}
		if !yield(ofproto.LinkLocal(rif.MAC), ndTarget{rif.MAC, true}) {
			return
		}
	}
	// The DHCP server's port is realized nowhere but plugged with its MAC into the qmeta-
	// namespace of every host with a VM on the network (dhcp.go), as a router interface
	// is into every qrouter: its link-local address is answered for (and its own duplicate
	// address detection kept off the tunnels, where every other host's copy would see it).
	if srv := v.DHCPServer(netID); srv != nil && srv.MAC != nil {
		for _, ip := range srv.IPs {
			if ip.Addr.Is6() && !yield(ip.Addr, ndTarget{srv.MAC, false}) {
				return
			}
		}
		if !yield(ofproto.LinkLocal(srv.MAC), ndTarget{srv.MAC, false}) {
			return
		}
	}
	for _, ep := range v.Endpoints(netID) {
		p := ep.Port
		if p.MAC == nil {
			continue
		}
		router := p.DeviceOwner == topology.OwnerRouterInterfaceDistributed
		for _, ip := range p.IPs {
			if ip.Addr.Is6() && !yield(ip.Addr, ndTarget{p.MAC, router}) {
				return
			}
		}
		if !yield(ofproto.LinkLocal(p.MAC), ndTarget{p.MAC, router}) {
			return
		}
	}
}

// ndNet computes the nd app's flows of network netID on bridge st: one per known address.
func ndNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	if st.Bridge != topology.BrInt {
		return nil
	}
	vlan, ok := v.LocalVLAN(st.Host, netID)
	if !ok {
		return nil
	}
	cookie := Cookie(AppND)
	var out []ofproto.Flow
	seen := map[netip.Addr]bool{}
	ndTargets(v, netID, func(a netip.Addr, _ ndTarget) bool {
		if seen[a] {
			return true
		}
		seen[a] = true
		out = append(out, ofproto.Flow{Table: IntARPResponder, Priority: PrioARP, Cookie: cookie,
			Match: ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthType(ofproto.EthTypeIPv6),
				ofproto.IPProto(ofproto.IPProtoICMPv6), ofproto.ICMPv6Type(ofproto.ICMPv6NeighborSolicitation),
				ofproto.NDTarget(a)},
			Meter:   MeterController,
			Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}})
		return true
	})
	return out
}

// ResolveND answers neighbour solicitation ns, received on host's br-int at View v: the
// MAC that holds the target address on the solicitation's network and the advertisement's
// flags. It reports false for addresses it does not know and for a solicitation of the
// target's own port (duplicate address detection of its own address, which must not be
// answered).
func ResolveND(v *topology.View, host string, ns ofproto.NDMessage) (net.HardwareAddr, ofproto.NAFlags, bool) {
	netID, ok := v.NetworkOfVLAN(host, ns.VLAN)
	if !ok || ns.Type != ofproto.ICMPv6NeighborSolicitation {
		return nil, 0, false
	}
	var found *ndTarget
	ndTargets(v, netID, func(a netip.Addr, t ndTarget) bool {
		if a == ns.Target {
			found = &t
			return false
		}
		return true
	})
	if found == nil || bytes.Equal(found.mac, ns.EthSrc) {
		return nil, 0, false
	}
	flags := ofproto.NASolicited | ofproto.NAOverride
	if found.router {
		flags |= ofproto.NARouter
	}
	return found.mac, flags, true
}
