package apps

import (
	"bytes"
	"encoding/binary"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/dhcp6"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// The dhcp app: DHCPv4 answered by the controller on the VM's own host, from the topology
// alone — no DHCP agent, no qdhcp namespace, nothing of DHCP across a tunnel. On br-int,
// LOCAL_SWITCHING sends a local port's DHCP client packets (UDP 68 -> 67; with port
// security, only from the port's own MAC) to DHCP_IPV4, which sends them to the controller
// through MeterController. The answer (AnswerDHCP) comes back as a packet-out on the port.
// The server side is the network's network:dhcp port (the API keeps one per network with
// DHCP-enabled subnets): its address on the client's subnet is the server identifier, and
// ARP for it is answered like any port's (arp.go). DHCP from a port of a network without
// that port, or spoofed, never reaches DHCP_IPV4: a firewalled port's is dropped by
// BASE_EGRESS, an unfiltered port's is switched like any broadcast (a DHCP server in a VM
// of a network with DHCP off is Neutron's use case for port security off).

// DHCPConfig is what the DHCP answers take besides the topology.
type DHCPConfig struct {
	// LeaseTime is the lease handed out (Neutron's dhcp_lease_duration); renewal at half,
	// rebinding at seven eighths of it.
	LeaseTime time.Duration
	// Domain is the domain name option (Neutron's dns_domain); empty: none.
	Domain string
}

// DefaultDHCPConfig is Neutron's defaults: 86400 s leases in domain openstacklocal.
func DefaultDHCPConfig() DHCPConfig {
	return DHCPConfig{LeaseTime: 24 * time.Hour, Domain: "openstacklocal"}
}

// dhcpClient reports whether port p gets its address by DHCP from dvrflow: every port but
// the network's own (routers, DHCP, floating IP gateways).
func dhcpClient(p *topology.Port) bool { return !strings.HasPrefix(p.DeviceOwner, "network:") }

// dhcpProto is one DHCP version as br-int sees it: its Ethernet type and UDP ports (what
// matches client messages and server answers), and the table that sends client messages
// to the controller.
type dhcpProto struct {
	ethType        uint16
	client, server uint16
	table          uint8
}

var (
	dhcpv4 = dhcpProto{ofproto.EthTypeIPv4, dhcp4.ClientPort, dhcp4.ServerPort, IntDHCPv4}
	dhcpv6 = dhcpProto{ofproto.EthTypeIPv6, dhcp6.ClientPort, dhcp6.ServerPort, IntDHCPv6}
)

// match matches the version's client messages, replies the server's answers.
func (d dhcpProto) match() ofproto.Match   { return d.udp(d.client, d.server) }
func (d dhcpProto) replies() ofproto.Match { return d.udp(d.server, d.client) }

func (d dhcpProto) udp(src, dst uint16) ofproto.Match {
	return ofproto.Match{ofproto.EthType(d.ethType), ofproto.IPProto(uint8(ofproto.IPProtoUDP)), ofproto.UDPSrc(src), ofproto.UDPDst(dst)}
}

// bridgeFlows are the version's table's one flow (what reaches it goes to the controller),
// and the LOCAL_SWITCHING flow that sends it the requests of a port whose own flows are not
// installed yet: a VM that boots the moment it is plugged races them, and its first request
// is answered instead of waiting for the client's retransmission. A known port's frames
// never reach that flow (its own, at PrioLocal, match them all); the controller answers only
// a port of the host's view, for its own MAC.
func (d dhcpProto) bridgeFlows() []ofproto.Flow {
	return []ofproto.Flow{
		{Table: IntLocalSwitching, Priority: PrioDHCPUnknown, Cookie: Cookie(AppDHCP),
			Match: append(ofproto.Match{ofproto.VLANNone()}, d.match()...), Goto: d.table, HasGoto: true},
		{Table: d.table, Priority: PrioBase, Cookie: Cookie(AppDHCP), Match: d.match(), Meter: MeterController,
			Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}},
	}
}

// portFlows are the LOCAL_SWITCHING flows that send the requests of network netID's ports
// local to st to the version's table (with port security, only from the port's own MAC).
func (d dhcpProto) portFlows(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	var out []ofproto.Flow
	for _, ep := range v.Endpoints(netID) {
		p := ep.Port
		if p.MAC == nil || !dhcpClient(p.Port) || !slices.Contains(ep.Hosts, st.Host) {
			continue
		}
		ofport, ok := st.Ports[OVSPortName(p.Port)]
		if !ok {
			continue
		}
		m := append(ofproto.Match{ofproto.InPort(ofport), ofproto.VLANNone()}, d.match()...)
		if topology.Firewalled(p.Port) {
			m = append(m, ofproto.EthSrc(p.MAC))
		}
		out = append(out, ofproto.Flow{Table: IntLocalSwitching, Priority: PrioDHCP, Cookie: Cookie(AppDHCP),
			Match: m, Goto: d.table, HasGoto: true})
	}
	return out
}

// dhcpNet computes the LOCAL_SWITCHING flows that send the DHCP client packets of network
// netID's local ports to DHCP_IPV4, on a network that has a DHCP server, and switches the
// DHCP port's tap in the host's qmeta- namespace (the metadata proxy) when it is plugged.
func dhcpNet(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	srv := v.DHCPServer(netID)
	if st.Bridge != topology.BrInt || srv == nil {
		return nil
	}
	if n := v.Network(netID); n == nil || n.External {
		return nil
	}
	var out []ofproto.Flow
	if ofport, ok := st.Ports[OVSPortName(srv.Port)]; ok && srv.MAC != nil {
		if vlan, ok := v.LocalVLAN(st.Host, netID); ok {
			// Only this host's VMs talk to it: its MAC is on every host that has a qmeta-
			// namespace of the network, so no flow ever sends it to a tunnel.
			out = append(out,
				ofproto.Flow{Table: IntLocalSwitching, Priority: PrioLocal, Cookie: Cookie(AppDHCP),
					Match:   ofproto.Match{ofproto.InPort(ofport), ofproto.VLANNone()},
					Actions: []ofproto.Action{ofproto.PushVLAN{EtherType: ofproto.EthTypeVLAN}, ofproto.SetVLANVID(vlan)},
					Goto:    IntARPResponder, HasGoto: true},
				ofproto.Flow{Table: IntTransient, Priority: PrioLocal, Cookie: Cookie(AppDHCP),
					Match:   ofproto.Match{ofproto.VLANVID(vlan), ofproto.EthDst(srv.MAC)},
					Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.Output{Port: ofport}}})
		}
	}
	return append(out, dhcpv4.portFlows(v, st, netID)...)
}

// dhcpServed yields the DHCP server port srv's IPv4 addresses on DHCP-enabled subnets, each
// with its subnet: the addresses it answers DHCP and ARP for (none when srv is nil).
func dhcpServed(v *topology.View, srv *topology.PortInfo) iter.Seq2[netip.Addr, *topology.SubnetInfo] {
	return func(yield func(netip.Addr, *topology.SubnetInfo) bool) {
		if srv == nil || srv.MAC == nil {
			return
		}
		for _, ip := range srv.IPs {
			if s := v.Subnet(ip.SubnetID); ip.Addr.Is4() && s != nil && s.EnableDHCP && !yield(ip.Addr, s) {
				return
			}
		}
	}
}

// DHCP outcomes, for counters and logs: what the server did with a client's message.
const (
	DHCPOffered   = "offer"
	DHCPAcked     = "ack"
	DHCPNaked     = "nak"
	DHCPInformed  = "inform"
	DHCPReleased  = "release"
	DHCPDeclined  = "decline"
	DHCPOtherSrv  = "other-server" // a REQUEST for another server's offer
	DHCPNoServer  = "no-server"    // the network has no DHCP server, or none on the port's subnet
	DHCPNoAddress = "no-address"   // the port has no address on a DHCP-enabled subnet
	DHCPNotPort   = "not-port"     // chaddr is not the port's MAC
	DHCPBadType   = "bad-type"     // a message type no client sends
)

// DHCPOutcomes are the outcomes, in the order counters list them.
var DHCPOutcomes = [...]string{DHCPOffered, DHCPAcked, DHCPNaked, DHCPInformed, DHCPReleased, DHCPDeclined,
	DHCPOtherSrv, DHCPNoServer, DHCPNoAddress, DHCPNotPort, DHCPBadType}

// AnswerDHCP decides the answer to client message m received from port p, at View v: the
// reply frame to send out on the port (nil when none is due) and the outcome. The port's
// address is its fixed IP on its first DHCP-enabled IPv4 subnet; a REQUEST for any other
// is NAKed, a RELEASE or DECLINE changes nothing (the address stays the port's: it is
// reserved in the API, not leased).
func AnswerDHCP(v *topology.View, cfg DHCPConfig, p *topology.PortInfo, m *dhcp4.Message) (*dhcp4.Frame, string) {
	if !bytes.Equal(m.CHAddr, p.MAC) {
		return nil, DHCPNotPort
	}
	srv := v.DHCPServer(p.NetworkID)
	if srv == nil || srv.MAC == nil {
		return nil, DHCPNoServer
	}
	var addr netip.Addr
	var sub *topology.SubnetInfo
	for _, ip := range p.IPs {
		if s := v.Subnet(ip.SubnetID); ip.Addr.Is4() && s != nil && s.EnableDHCP {
			addr, sub = ip.Addr, s
			break
		}
	}
	if sub == nil {
		return nil, DHCPNoAddress
	}
	var serverIP netip.Addr
	for a, s := range dhcpServed(v, srv) {
		if s == sub {
			serverIP = a
		}
	}
	if !serverIP.Is4() {
		return nil, DHCPNoServer
	}
	r := &dhcp4.Reply{XID: m.XID, Flags: m.Flags, GIAddr: m.GIAddr, CHAddr: m.CHAddr, ServerID: serverIP,
		MaxSize: max(m.MaxSize, 576) - 28}
	outcome := ""
	switch m.Type {
	case dhcp4.Discover:
		r.Type, r.YIAddr, outcome = dhcp4.Offer, addr, DHCPOffered
	case dhcp4.Request:
		var asked netip.Addr
		switch {
		case m.ServerID.IsValid(): // SELECTING: the answer to an offer
			if m.ServerID != serverIP {
				return nil, DHCPOtherSrv
			}
			asked = m.RequestedIP
		case m.RequestedIP.IsValid(): // INIT-REBOOT
			asked = m.RequestedIP
		default: // RENEWING or REBINDING
			asked = m.CIAddr
			r.CIAddr = m.CIAddr
		}
		if asked != addr {
			r.Type, r.CIAddr = dhcp4.Nak, netip.Addr{}
			r.Options.Set(dhcp4.OptMessage, []byte("address not available"))
			return dhcpFrame(srv, r, m), DHCPNaked
		}
		r.Type, r.YIAddr, outcome = dhcp4.Ack, addr, DHCPAcked
	case dhcp4.Inform:
		r.Type, r.CIAddr, outcome = dhcp4.Ack, m.CIAddr, DHCPInformed
	case dhcp4.Release:
		return nil, DHCPReleased
	case dhcp4.Decline:
		return nil, DHCPDeclined
	default:
		return nil, DHCPBadType
	}
	dhcpOptions(v, cfg, p, sub, addr, serverIP, r, m.Type != dhcp4.Inform)
	return dhcpFrame(srv, r, m), outcome
}

// dhcpOptions sets the options of a reply for address addr of subnet sub, as Neutron's
// dnsmasq configuration has them, then the port's extra_dhcp_opts over them.
func dhcpOptions(v *topology.View, cfg DHCPConfig, p *topology.PortInfo, sub *topology.SubnetInfo, addr, serverIP netip.Addr,
	r *dhcp4.Reply, lease bool) {
	r.Options = make(dhcp4.Options, 0, 16)
	w := optWriter{o: &r.Options, a: make([]byte, 0, 256)}
	if lease {
		secs := uint32(cfg.LeaseTime / time.Second)
		w.u32(dhcp4.OptLeaseTime, secs)
		w.u32(dhcp4.OptRenewalTime, secs/2)
		w.u32(dhcp4.OptRebindingTime, uint32(uint64(secs)*7/8))
	}
	mask := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if pfx := sub.Prefix; pfx.IsValid() {
		mask = pfx
	}
	w.addr(dhcp4.OptSubnetMask, prefixMask(mask.Bits()))
	w.addr(dhcp4.OptBroadcast, lastAddr(mask))
	gateway := sub.Gateway
	if sub.GatewayIP == "" {
		gateway = netip.Addr{}
	}
	// Static routes (option 121): the subnet's host routes, the network's other IPv4
	// subnets on-link; with any, the default route too (a client that takes 121 ignores
	// option 3, RFC 3442).
	var routesBuf [8]dhcp4.Route
	routes := routesBuf[:0]
	for _, hr := range sub.HostRoutes {
		d, err1 := netip.ParsePrefix(hr.Destination)
		nh, err2 := netip.ParseAddr(hr.NextHop)
		if err1 != nil || err2 != nil || !d.Addr().Is4() || !nh.Is4() {
			continue
		}
		if d.Bits() == 0 {
			if !gateway.IsValid() {
				gateway = nh
			}
			continue
		}
		routes = append(routes, dhcp4.Route{Dest: d, Router: nh})
	}
	// The metadata address through the DHCP port, whose tap in the host's qmeta- namespace
	// proxies it (Neutron's force_metadata): the same with or without a router.
	routes = append(routes, dhcp4.Route{Dest: netip.PrefixFrom(metadataAddr, 32), Router: serverIP})
	if n := v.Network(p.NetworkID); n != nil {
		for _, sid := range n.SubnetIDs {
			if s := v.Subnet(sid); s != nil && s.ID != sub.ID && s.Prefix.Addr().Is4() {
				routes = append(routes, dhcp4.Route{Dest: s.Prefix})
			}
		}
		if n.MTU > 0 {
			w.u16(dhcp4.OptMTU, uint16(n.MTU))
		}
	}
	if gateway.IsValid() {
		w.addr(dhcp4.OptRouter, gateway)
		routes = append(routes, dhcp4.Route{Dest: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Router: gateway})
	}
	w.routes(dhcp4.OptClasslessRoutes, routes)
	start := len(w.a)
	for _, s := range sub.DNSNameservers {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			w.a = dhcp4.AppendIPs(w.a, a)
		}
	}
	if len(w.a) > start {
		w.set(dhcp4.OptDNSServers, start)
	}
	start = len(w.a)
	w.a = appendHostname(w.a, addr)
	w.set(dhcp4.OptHostname, start)
	if cfg.Domain != "" {
		w.str(dhcp4.OptDomainName, cfg.Domain)
	}
	for _, x := range p.ExtraDHCPOpts {
		if x.IPVersion != 0 && x.IPVersion != 4 {
			continue
		}
		code, data, err := dhcp4.ParseOption(x.OptName, x.OptValue)
		if err != nil {
			continue // accepted by the API as Neutron accepts it; dnsmasq too would skip it
		}
		if code == dhcp4.ServerIPAddress {
			r.SIAddr = netip.AddrFrom4([4]byte(data[:4]))
			continue
		}
		if code == dhcp4.OptLeaseTime && !lease {
			continue
		}
		r.Options.Set(code, data)
	}
}

// optWriter encodes a reply's option values into one buffer: each option's value is its
// own full slice of it (earlier values stay valid when the buffer grows).
type optWriter struct {
	o *dhcp4.Options
	a []byte
}

// set sets option code to what was appended since start.
func (w *optWriter) set(code uint8, start int) { w.o.Set(code, w.a[start:len(w.a):len(w.a)]) }

func (w *optWriter) u32(code uint8, v uint32) {
	start := len(w.a)
	w.a = binary.BigEndian.AppendUint32(w.a, v)
	w.set(code, start)
}

func (w *optWriter) u16(code uint8, v uint16) {
	start := len(w.a)
	w.a = binary.BigEndian.AppendUint16(w.a, v)
	w.set(code, start)
}

func (w *optWriter) addr(code uint8, a netip.Addr) {
	start := len(w.a)
	w.a = dhcp4.AppendIPs(w.a, a)
	w.set(code, start)
}

func (w *optWriter) str(code uint8, s string) {
	start := len(w.a)
	w.a = append(w.a, s...)
	w.set(code, start)
}

func (w *optWriter) routes(code uint8, routes []dhcp4.Route) {
	start := len(w.a)
	w.a = dhcp4.AppendClasslessRoutes(w.a, routes)
	w.set(code, start)
}

var metadataAddr = netip.MustParseAddr(plan.MetadataAddr)

// MetadataNamespaces returns the qmeta- namespaces of host at View v: one per network with a
// DHCP server and a DHCP client port bound to the host, holding the DHCP port's tap with its
// addresses and the metadata address, and the proxy's table of the host's instances.
func MetadataNamespaces(v *topology.View, host string) []plan.Namespace {
	byNet := metadataClients(v, host, "")
	var out []plan.Namespace
	for _, netID := range sortedKeys(byNet) {
		if ns, ok := metadataNS(v, netID, byNet[netID]); ok {
			out = append(out, ns)
		}
	}
	return out
}

// metadataClients returns the ports bound to host that ask for metadata, by network (only
// those of network netID unless it is "").
func metadataClients(v *topology.View, host, netID string) map[string][]*topology.PortInfo {
	byNet := map[string][]*topology.PortInfo{}
	for _, p := range v.PortsBoundTo(host) {
		if dhcpClient(p.Port) && p.Port.DeviceID != "" && (netID == "" || p.NetworkID == netID) {
			byNet[p.NetworkID] = append(byNet[p.NetworkID], p)
		}
	}
	return byNet
}

// metadataNS is the qmeta- namespace of network netID on a host with ports of it, if the
// network has one there.
func metadataNS(v *topology.View, netID string, ports []*topology.PortInfo) (plan.Namespace, bool) {
	n, srv := v.Network(netID), v.DHCPServer(netID)
	if n == nil || n.External || len(ports) == 0 {
		return plan.Namespace{}, false
	}
	var addrs []string
	for a, s := range dhcpServed(v, srv) {
		if s.Prefix.IsValid() {
			addrs = append(addrs, netip.PrefixFrom(a, s.Prefix.Bits()).String())
		}
	}
	if len(addrs) == 0 {
		return plan.Namespace{}, false
	}
	addrs = append(addrs, plan.MetadataAddr+"/32")
	ports = slices.Clone(ports)
	slices.SortFunc(ports, func(a, b *topology.PortInfo) int { return strings.Compare(a.ID, b.ID) })
	meta := &plan.Metadata{Network: netID, Instances: []plan.Instance{}}
	seen := map[netip.Addr]bool{}
	for _, p := range ports {
		for _, ip := range p.IPs {
			if ip.Addr.Is4() && !seen[ip.Addr] {
				seen[ip.Addr] = true
				meta.Instances = append(meta.Instances, plan.Instance{IP: ip.Addr.String(), DeviceID: p.DeviceID, ProjectID: p.ProjectID})
			}
		}
	}
	// Every host's tap has the DHCP port's MAC, so the same link-local address: no
	// duplicate address detection, whose multicast solicitations would cross the
	// tunnels and find the other hosts' copies.
	return plan.Namespace{Name: plan.PrefixMeta + netID, Metadata: meta,
		Sysctls: map[string]string{"net.ipv6.conf.default.accept_dad": "0"},
		Links: []plan.Link{{Name: DeviceName(srv.Port), Bridge: string(topology.BrInt), IfaceID: srv.ID,
			MAC: srv.MAC.String(), MTU: n.MTU, Addresses: addrs, SoftwareChecksum: true}}}, true
}

// DHCPHostname is the host name of an address, as Neutron's DHCP agent gives it
// ("host-10-0-1-5").
func DHCPHostname(a netip.Addr) string { return string(appendHostname(nil, a)) }

// appendHostname appends DHCPHostname(a) to b.
func appendHostname(b []byte, a netip.Addr) []byte {
	start := len(b)
	b = a.AppendTo(append(b, "host-"...))
	for i := start; i < len(b); i++ {
		if b[i] == '.' {
			b[i] = '-'
		}
	}
	return b
}

// dhcpFrame addresses reply r to the client of m (RFC 2131 4.1): a NAK and a reply to a
// client that asked for broadcast go to the broadcast address; a renewal or INFORM to its
// ciaddr; any other to the offered address at the client's MAC.
func dhcpFrame(srv *topology.PortInfo, r *dhcp4.Reply, m *dhcp4.Message) *dhcp4.Frame {
	f := &dhcp4.Frame{SrcMAC: srv.MAC, SrcIP: r.ServerID, Reply: r, DstMAC: m.CHAddr}
	switch {
	case r.Type == dhcp4.Nak || m.Broadcast() && !(m.CIAddr.Is4() && !m.CIAddr.IsUnspecified()):
		f.DstMAC, f.DstIP = dhcp4.BroadcastMAC, dhcp4.BroadcastIP
	case m.CIAddr.Is4() && !m.CIAddr.IsUnspecified():
		f.DstIP = m.CIAddr
	default:
		f.DstIP = r.YIAddr
	}
	return f
}

func prefixMask(bits int) netip.Addr {
	m := uint32(0)
	if bits > 0 {
		m = ^uint32(0) << (32 - bits)
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := ^uint32(0)
	if p.Bits() > 0 {
		host = ^(^uint32(0) << (32 - p.Bits()))
	}
	for i := 0; i < 4; i++ {
		a[i] |= byte(host >> (24 - 8*i))
	}
	return netip.AddrFrom4(a)
}
