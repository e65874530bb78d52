package apps

import (
	"bytes"
	"net"
	"net/netip"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// The arp app: every ARP request that a local port (VM, qr-, sg-, qg-, fg-) sends for an
// address the topology knows is sent to the controller (br-int ARP_RESPONDER, through
// MeterController), which answers with a packet-out on the asking port. Such a request is
// therefore never flooded and never encapsulated into a tunnel, and the qrouter namespaces
// need no static neighbour entries. Requests for unknown addresses (an upstream router on
// the external network) continue to TRANSIENT and are flooded, as is every request on an
// external network but those of the router itself.

func arpNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	if st.Bridge != topology.BrInt {
		return nil
	}
	cookie := Cookie(AppARP)
	var out []ofproto.Flow
	vlan, ok := v.LocalVLAN(st.Host, netID)
	if !ok {
		return nil
	}
	// No per-address flows on an external network: it is present on every host with a
	// floating IP, and one flow per gateway port of the whole cloud on each of them is
	// what would not scale. Its owners answer on the wire (only fg- and qg- ports ask
	// there, for the upstream router and floating IPs, which no port holds).
	perAddr := v.Network(netID) != nil && !v.Network(netID).External
	seen := map[netip.Addr]bool{}
	arpFor := func(a netip.Addr) {
		seen[a] = true
		out = append(out, ofproto.Flow{Table: IntARPResponder, Priority: PrioARP, Cookie: cookie,
			Match: ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthType(ofproto.EthTypeARP),
				ofproto.ARPOp(ofproto.ARPOpRequest), ofproto.ARPTPA(a)},
			Meter:   MeterController,
			Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}})
	}
	if perAddr {
		// The DHCP server (dhcp.go) is realized nowhere but answers everywhere: a client
		// renewing by unicast asks for its address.
		for a := range dhcpServed(v, v.DHCPServer(netID)) {
			arpFor(a)
		}
	}
	for _, ep := range v.Endpoints(netID) {
		if ep.Port.MAC == nil {
			continue
		}
		if ep.Port.DeviceOwner == topology.OwnerRouterInterfaceDistributed && slices.Contains(ep.Hosts, st.Host) {
			// Every ARP request of the distributed router goes to the controller, also for
			// an address whose flow is not installed yet: a reply from the wire would be
			// addressed to the router MAC, which every host owns, and be lost.
			out = append(out, ofproto.Flow{Table: IntARPResponder, Priority: PrioARPAll, Cookie: cookie,
				Match: ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthSrc(ep.Port.MAC),
					ofproto.EthType(ofproto.EthTypeARP), ofproto.ARPOp(ofproto.ARPOpRequest)},
				Meter:   MeterController,
				Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}})
		}
		if !perAddr {
			continue
		}
		for _, ip := range ep.Port.IPs {
			if !ip.Addr.Is4() || seen[ip.Addr] {
				continue
			}
			arpFor(ip.Addr)
		}
	}
	return out
}

// ResolveARP answers req, received on host's br-int at View v: the MAC of the port of the request's
// network that holds the target address. It reports false for addresses it does not know,
// for gratuitous ARP and for duplicate-address probes of the sender's own address (those
// must not be answered).
func ResolveARP(v *topology.View, host string, req ofproto.ARPRequest) (net.HardwareAddr, bool) {
	netID, ok := v.NetworkOfVLAN(host, req.VLAN)
	if !ok || req.SPA == req.TPA {
		return nil, false
	}
	p := v.PortWithAddr(netID, req.TPA)
	if p == nil {
		srv := v.DHCPServer(netID)
		for a := range dhcpServed(v, srv) {
			if a == req.TPA {
				p = srv
			}
		}
	}
	if p == nil {
		return nil, false
	}
	if bytes.Equal(p.MAC, req.SHA) {
		return nil, false // a probe for its own address
	}
	return p.MAC, true
}
