package apps

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

const (
	net1 = "net1-000000000000"
	net2 = "net2-000000000000"
)

var (
	vm1v6 = netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:105")
	vm4v6 = netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:106")
	qr16  = mustMAC("fa:16:3e:00:16:01")
)

// flowsOf renders the flows of one part of host's br-int whose cookie is app's.
func flowsOf(v *topology.View, host, part string, app App) []string {
	var out []string
	st := seedBridge(v, host, topology.BrInt)
	for _, f := range FlowsOf(v, st, part) {
		if a, _ := CookieApp(f.Cookie); a == app {
			out = append(out, f.Format(TableNames(topology.BrInt)))
		}
	}
	return out
}

// Neighbour solicitations for every known IPv6 address of a network with an IPv6 subnet
// (its ports', their link-local ones, the router interface's) go to the controller; on
// a network without an IPv6 subnet, nothing changes.
func TestNDFlows(t *testing.T) {
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	got := flowsOf(v, "compute1", net1, AppND)
	vlan, _ := v.LocalVLAN("compute1", net1)
	var want []string
	for _, a := range []string{"2001:db8:1::1", "fe80::f816:3eff:fe00:1601", // the router interface
		"2001:db8:1::2", "fe80::f816:3eff:fe00:1602", // the IPv6 subnet's SNAT port
		"fe80::f816:3eff:fe00:101", "fe80::f816:3eff:fe00:102", "fe80::f816:3eff:fe00:103", // qr1, the SNAT port (sg1), the DHCP port
		"2001:db8:1::f816:3eff:fe00:105", "fe80::f816:3eff:fe00:105", "2001:db8:1::f816:3eff:fe00:106", "fe80::f816:3eff:fe00:106"} {
		want = append(want, "cookie=0xd707000000000000, table=ARP_RESPONDER, priority=100,icmp6,dl_vlan="+
			itoa(vlan)+",icmp_type=135,nd_target="+netip.MustParseAddr(a).String()+" actions=meter:1,CONTROLLER:65535")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ND flows of net1 on compute1:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st := seedBridge(v, "compute1", topology.BrInt)
	for _, f := range Flows(v, st) {
		if err := Check(topology.BrInt, &f); err != nil {
			t.Error(err)
		}
		if err := f.Validate(); err != nil {
			t.Errorf("%s: %v", f.String(), err)
		}
	}
	base := topology.NewView(withVLANs(seedTopology()), 7)
	for _, h := range base.HostNames() {
		for _, n := range base.NetworksOn(h) {
			if fs := flowsOf(base, h, n, AppND); len(fs) > 0 {
				t.Errorf("ND flows on IPv4 network %s of %s: %v", n, h, fs)
			}
		}
	}
	if fs := flowsOf(v, "compute1", "ext-0000000000000", AppND); len(fs) > 0 {
		t.Errorf("ND flows on the external network: %v", fs)
	}
}

func itoa(v uint16) string { return strconv.Itoa(int(v)) }

func TestResolveND(t *testing.T) {
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	vlan, _ := v.LocalVLAN("compute1", net1)
	ns := func(from net.HardwareAddr, src, target netip.Addr) ofproto.NDMessage {
		m, err := ofproto.ParseND(ofproto.AppendNeighborSolicit(nil, vlan, from, src, target))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ll1 := ofproto.LinkLocal(vm1MAC)
	for _, c := range []struct {
		name  string
		ns    ofproto.NDMessage
		mac   net.HardwareAddr
		flags ofproto.NAFlags
		ok    bool
	}{
		{"a VM's address", ns(vm1MAC, vm1v6, vm4v6), vm4MAC, ofproto.NASolicited | ofproto.NAOverride, true},
		{"a VM's link-local address", ns(vm1MAC, ll1, ofproto.LinkLocal(vm4MAC)), vm4MAC, ofproto.NASolicited | ofproto.NAOverride, true},
		{"the router's address", ns(vm1MAC, ll1, netip.MustParseAddr("2001:db8:1::1")), qr16,
			ofproto.NARouter | ofproto.NASolicited | ofproto.NAOverride, true},
		{"the router's link-local address", ns(vm1MAC, ll1, ofproto.LinkLocal(qr16)), qr16,
			ofproto.NARouter | ofproto.NASolicited | ofproto.NAOverride, true},
		{"the DHCP port's link-local address", ns(vm1MAC, ll1, ofproto.LinkLocal(mustMAC("fa:16:3e:00:01:03"))), mustMAC("fa:16:3e:00:01:03"),
			ofproto.NASolicited | ofproto.NAOverride, true},
		{"the DHCP port's own DAD (a qmeta- tap)", ns(mustMAC("fa:16:3e:00:01:03"), netip.IPv6Unspecified(),
			ofproto.LinkLocal(mustMAC("fa:16:3e:00:01:03"))), nil, 0, false},
		{"an unknown address", ns(vm1MAC, vm1v6, netip.MustParseAddr("2001:db8:1::99")), nil, 0, false},
		{"its own address (DAD)", ns(vm1MAC, netip.IPv6Unspecified(), vm1v6), nil, 0, false},
		{"another network's address", ns(vm1MAC, vm1v6, netip.MustParseAddr("2001:db8:2::5")), nil, 0, false},
	} {
		mac, flags, ok := ResolveND(v, "compute1", c.ns)
		if ok != c.ok || !bytes.Equal(mac, c.mac) || flags != c.flags {
			t.Errorf("%s: %s %#02x %v, want %s %#02x %v", c.name, mac, flags, ok, c.mac, c.flags, c.ok)
		}
	}
}

// withRAModes gives net2's IPv6 subnet an RA mode and a router interface, and a second
// IPv6 subnet on net1 on the same interface (Neutron puts a router's IPv6 subnets of one
// network on one port).
func withRAModes(t *topology.Topology, net2Mode string) *topology.Topology {
	for i := range t.Subnets {
		if t.Subnets[i].ID == "sub26-00000000000" {
			t.Subnets[i].IPv6RAMode, t.Subnets[i].IPv6AddressMode = net2Mode, net2Mode
		}
	}
	t.Subnets = append(t.Subnets, topology.Subnet{ID: "sub17-00000000000", NetworkID: net1, IPVersion: 6, CIDR: "2001:db8:11::/64",
		GatewayIP: "2001:db8:11::1", IPv6RAMode: topology.IPv6DHCPStateless, IPv6AddressMode: topology.IPv6DHCPStateless})
	for i := range t.Ports {
		if t.Ports[i].ID == "qr16-00000000000" {
			t.Ports[i].FixedIPs = append(t.Ports[i].FixedIPs, topology.FixedIP{SubnetID: "sub17-00000000000", IPAddress: "2001:db8:11::1"})
		}
	}
	t.Ports = append(t.Ports, topology.Port{ID: "qr26-00000000000", NetworkID: net2, MACAddress: "fa:16:3e:00:26:01",
		DeviceOwner: topology.OwnerRouterInterfaceDistributed, DeviceID: "r1-0000000000000",
		FixedIPs: []topology.FixedIP{{SubnetID: "sub26-00000000000", IPAddress: "2001:db8:2::1"}}})
	return t
}

func TestRouterAdverts(t *testing.T) {
	// Only subnets with an RA mode on a router interface are advertised.
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	if ras := RouterAdverts(v, net2); len(ras) != 0 {
		t.Errorf("net2 (no RA mode, no router interface) advertised: %+v", ras)
	}
	if fs := flowsOf(v, "compute1", net2, AppRA); len(fs) != 0 {
		t.Errorf("router solicitations of net2 to the controller: %v", fs)
	}
	for _, c := range []struct {
		mode            string
		managed, other  bool
		autonomous      bool
		net1Other       bool // net1: slaac + dhcpv6-stateless on one interface
		net1Autonomous2 bool
	}{
		{topology.IPv6SLAAC, false, false, true, true, true},
		{topology.IPv6DHCPStateful, true, false, false, true, true},
		{topology.IPv6DHCPStateless, false, true, true, true, true},
	} {
		v := topology.NewView(withVLANs(withRAModes(withIPv6(seedTopology()), c.mode)), 7)
		ras := RouterAdverts(v, net2)
		if len(ras) != 1 {
			t.Fatalf("%s: %d advertisements on net2", c.mode, len(ras))
		}
		ra := ras[0]
		gw := mustMAC("fa:16:3e:00:26:01")
		if !bytes.Equal(ra.EthSrc, gw) || ra.Src != ofproto.LinkLocal(gw) || ra.Dst != ofproto.AllNodes() ||
			!bytes.Equal(ra.EthDst, ofproto.MulticastMAC(ofproto.AllNodes())) {
			t.Errorf("%s: from %s %s to %s %s", c.mode, ra.EthSrc, ra.Src, ra.EthDst, ra.Dst)
		}
		if ra.Managed != c.managed || ra.Other != c.other || ra.MTU != 1450 || ra.RouterLifetime != RARouterLifetime || ra.CurHopLimit != 64 {
			t.Errorf("%s: M %v O %v MTU %d lifetime %d hop limit %d", c.mode, ra.Managed, ra.Other, ra.MTU, ra.RouterLifetime, ra.CurHopLimit)
		}
		want := []ofproto.RAPrefix{{Prefix: netip.MustParsePrefix("2001:db8:2::/64"), OnLink: true, Autonomous: c.autonomous,
			Valid: RAValidLifetime, Preferred: RAPreferredLifetime}}
		if !slices.Equal(ra.Prefixes, want) {
			t.Errorf("%s: prefixes %+v, want %+v", c.mode, ra.Prefixes, want)
		}
		// net1: one interface with a slaac and a dhcpv6-stateless subnet: one
		// advertisement, O set, both prefixes autonomous.
		ras = RouterAdverts(v, net1)
		if len(ras) != 1 || ras[0].Managed || !ras[0].Other || len(ras[0].Prefixes) != 2 ||
			!ras[0].Prefixes[0].Autonomous || !ras[0].Prefixes[1].Autonomous || !bytes.Equal(ras[0].EthSrc, qr16) {
			t.Errorf("%s: net1's advertisements %+v", c.mode, ras)
		}
		// Solicited: to the asker.
		vlan, _ := v.LocalVLAN("compute1", net2)
		vm3 := mustMAC("fa:16:3e:00:02:03")
		src := ofproto.LinkLocal(vm3)
		rs, err := ofproto.ParseND(ofproto.AppendRouterSolicit(nil, vlan, vm3, src))
		if err != nil {
			t.Fatal(err)
		}
		sol := SolicitedAdverts(v, "compute1", rs)
		if len(sol) != 1 || sol[0].Dst != src || !bytes.Equal(sol[0].EthDst, vm3) || sol[0].Managed != c.managed {
			t.Errorf("%s: answer to a solicitation %+v", c.mode, sol)
		}
		// Not to the router's own interface (qr2), nor to a VM of another host (VM2).
		for _, mac := range []string{"fa:16:3e:00:02:01", "fa:16:3e:00:02:05"} {
			rs.EthSrc = mustMAC(mac)
			if sol := SolicitedAdverts(v, "compute1", rs); len(sol) != 0 {
				t.Errorf("%s: solicitation of %s answered: %+v", c.mode, mac, sol)
			}
		}
		// Router solicitations of the network's ports go to the controller.
		if fs := flowsOf(v, "compute1", net2, AppRA); len(fs) != 1 ||
			fs[0] != "cookie=0xd708000000000000, table=ARP_RESPONDER, priority=100,icmp6,dl_vlan="+itoa(vlan)+
				",icmp_type=133 actions=meter:1,CONTROLLER:65535" {
			t.Errorf("%s: RA flows of net2 %v", c.mode, fs)
		}
	}
}

// Unsolicited advertisements go to the plugged VM ports of the advertised networks.
func TestRAListeners(t *testing.T) {
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	for host, want := range map[string]string{"compute1": "vm1-000000000000", "compute2": "vm4-000000000000", "network": ""} {
		st := seedBridge(v, host, topology.BrInt)
		ls := RAListeners(v, st)
		var got []string
		for n, l := range ls {
			if n != net1 {
				t.Errorf("%s: listeners on %s", host, n)
			}
			for _, x := range l {
				got = append(got, x.Port.ID)
				if st.Ports[OVSPortName(x.Port.Port)] != x.OFPort {
					t.Errorf("%s: %s on OpenFlow port %d", host, x.Port.ID, x.OFPort)
				}
			}
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: listeners %v, want %s", host, got, want)
		}
	}
}

// A firewalled port on a network with an IPv6 subnet may send neighbour discovery from its
// own addresses and its link-local one, advertise only its own addresses, and no router
// advertisement; neighbour discovery and router advertisements reach it.
func TestFirewallIPv6ND(t *testing.T) {
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	st := seedBridge(v, "compute1", topology.BrInt)
	reg := fmt.Sprintf("reg5=%#x", st.Ports[VMPortName("vm1-000000000000")])
	var got []string
	for _, f := range FlowsOf(v, st, net1) {
		if a, _ := CookieApp(f.Cookie); a == AppFirewall && matchesIPv6(f) && f.Table == IntBaseEgress && f.Priority == prioFWND {
			got = append(got, f.Format(TableNames(topology.BrInt)))
		}
	}
	var want []string // the IPv6 that passes conntrack and the rules is TestFirewallIPv6's
	for _, a := range []string{"fe80::f816:3eff:fe00:105", vm1v6.String()} {
		for _, typ := range []string{"130", "133", "135"} {
			want = append(want, "cookie=0xd705000000000000, table=BASE_EGRESS, priority=95,icmp6,"+reg+
				",dl_src=fa:16:3e:00:01:05,ipv6_src="+a+",icmp_type="+typ+" actions=goto_table:21")
		}
		want = append(want, "cookie=0xd705000000000000, table=BASE_EGRESS, priority=95,icmp6,"+reg+
			",icmp_type=136,nd_target="+a+" actions=goto_table:21")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("vm1's IPv6 firewall flows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	bridge := renderFlows(topology.BrInt, FlowsOf(v, st, topology.PartBridge))
	for _, l := range []string{
		"table=BASE_EGRESS, priority=70,icmp6,icmp_type=134 actions=drop",
		"table=BASE_INGRESS, priority=100,icmp6,icmp_type=130 actions=goto_table:95",
		"table=BASE_INGRESS, priority=100,icmp6,icmp_type=134 actions=goto_table:95",
		"table=BASE_INGRESS, priority=100,icmp6,icmp_type=135 actions=goto_table:95",
		"table=BASE_INGRESS, priority=100,icmp6,icmp_type=136 actions=goto_table:95",
	} {
		if !strings.Contains(bridge, l) {
			t.Errorf("no %q in the bridge's flows", l)
		}
	}
	// On a network without an IPv6 subnet, none.
	base := topology.NewView(withVLANs(seedTopology()), 7)
	for _, f := range FlowsOf(base, seedBridge(base, "compute1", topology.BrInt), net1) {
		if matchesIPv6(f) {
			t.Errorf("IPv6 flow on an IPv4 network: %s", f.String())
		}
	}
}
