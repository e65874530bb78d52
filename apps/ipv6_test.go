package apps

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// withIPv6 adds to the seed topology what the store holds once its networks have IPv6
// subnets too (issue 16, whose data path is IPv4 only so far): a SLAAC subnet on Net1 on
// R1 (an interface port with only its IPv6 gateway, and the SNAT port on it), a stateful
// one on Net2 and one on the external network, the VMs' and gateway's IPv6 addresses.
func withIPv6(t *topology.Topology) *topology.Topology {
	const r1 = "r1-0000000000000"
	t.Subnets = append(t.Subnets,
		topology.Subnet{ID: "sub16-00000000000", NetworkID: "net1-000000000000", IPVersion: 6, CIDR: "2001:db8:1::/64",
			GatewayIP: "2001:db8:1::1", EnableDHCP: true, IPv6RAMode: topology.IPv6SLAAC, IPv6AddressMode: topology.IPv6SLAAC},
		topology.Subnet{ID: "sub26-00000000000", NetworkID: "net2-000000000000", IPVersion: 6, CIDR: "2001:db8:2::/64",
			GatewayIP: "2001:db8:2::1", EnableDHCP: true, IPv6AddressMode: topology.IPv6DHCPStateful},
		topology.Subnet{ID: "subx6-00000000000", NetworkID: "ext-0000000000000", IPVersion: 6, CIDR: "2001:db8:ff::/64",
			GatewayIP: "2001:db8:ff::1"})
	for i := range t.Networks {
		switch t.Networks[i].ID {
		case "net1-000000000000":
			t.Networks[i].Subnets = append(t.Networks[i].Subnets, "sub16-00000000000")
		case "net2-000000000000":
			t.Networks[i].Subnets = append(t.Networks[i].Subnets, "sub26-00000000000")
		}
	}
	v6 := map[string]topology.FixedIP{
		"vm1-000000000000":  {SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::f816:3eff:fe00:105"},
		"vm4-000000000000":  {SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::f816:3eff:fe00:106"},
		"vm2-000000000000":  {SubnetID: "sub26-00000000000", IPAddress: "2001:db8:2::5"},
		"vm3-000000000000":  {SubnetID: "sub26-00000000000", IPAddress: "2001:db8:2::3"},
		"qg1-000000000000":  {SubnetID: "subx6-00000000000", IPAddress: "2001:db8:ff::2"},
		"fg1-000000000000":  {SubnetID: "subx6-00000000000", IPAddress: "2001:db8:ff::3"},
		"dhcp2-00000000000": {SubnetID: "sub26-00000000000", IPAddress: "2001:db8:2::2"},
	}
	for i := range t.Ports {
		if f, ok := v6[t.Ports[i].ID]; ok {
			t.Ports[i].FixedIPs = append(t.Ports[i].FixedIPs, f)
		}
	}
	t.Ports = append(t.Ports,
		topology.Port{ID: "qr16-00000000000", NetworkID: "net1-000000000000", MACAddress: "fa:16:3e:00:16:01",
			DeviceOwner: topology.OwnerRouterInterfaceDistributed, DeviceID: r1,
			FixedIPs: []topology.FixedIP{{SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::1"}}},
		topology.Port{ID: "sg16-00000000000", NetworkID: "net1-000000000000", MACAddress: "fa:16:3e:00:16:02",
			DeviceOwner: topology.OwnerRouterCentralizedSNAT, DeviceID: r1,
			FixedIPs: []topology.FixedIP{{SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::2"}}})
	gw := t.Routers[0].Gateway
	gw.ExternalFixedIPs = append(gw.ExternalFixedIPs, v6["qg1-000000000000"])
	return t
}

// IPv6 subnets and addresses give the same flows and plans whether the view is built with
// them or they come as changes, and every plan validates (the host helper applies none of a
// plan that does not).
func TestIPv6BuiltEqualsApplied(t *testing.T) {
	full := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	applied := topology.NewView(withVLANs(seedTopology()), 7)
	var changes []topology.Change
	six := withIPv6(seedTopology())
	for i := range six.Subnets {
		if six.Subnets[i].IPVersion == 6 {
			changes = append(changes, topology.Change{Kind: topology.KindSubnet, ID: six.Subnets[i].ID, Op: topology.OpCreate, Object: &six.Subnets[i]})
		}
	}
	for i := range six.Networks {
		changes = append(changes, topology.Change{Kind: topology.KindNetwork, ID: six.Networks[i].ID, Op: topology.OpUpdate, Object: &six.Networks[i]})
	}
	for i := range six.Ports {
		changes = append(changes, topology.Change{Kind: topology.KindPort, ID: six.Ports[i].ID, Op: topology.OpUpdate, Object: &six.Ports[i]})
	}
	changes = append(changes, topology.Change{Kind: topology.KindRouter, ID: six.Routers[0].ID, Op: topology.OpUpdate, Object: &six.Routers[0]})
	if _, err := applied.Apply(changes); err != nil {
		t.Fatal(err)
	}
	for _, h := range full.HostNames() {
		if got, want := render(applied, h), render(full, h); got != want {
			t.Errorf("applied with IPv6, host %s:\n%s", h, lineDiff(got, want))
		}
		for name, v := range map[string]*topology.View{"built": full, "applied": applied} {
			if p := Plan(v, h); p.Validate() != nil {
				err := p.Validate()
				t.Errorf("%s with IPv6: plan of %s: %v", name, h, err)
			}
		}
	}
	for name, v := range map[string]*topology.View{"built": full, "applied": applied} {
		checkIPv6View(t, name, v)
	}
}

// checkIPv6View checks what a view of withIPv6 holds of IPv6: ports keep their IPv6
// addresses; the router's interface on the IPv6 subnet routes it, on every host running
// the router; the SNAT and gateway ports keep their IPv6 addresses (IPv6 leaves through
// the snat namespace, routed); a floating IP agent gateway port keeps IPv4 only (fipv4.go).
func checkIPv6View(t *testing.T, name string, v *topology.View) {
	t.Helper()
	vm1 := v.Port("vm1-000000000000")
	if vm1 == nil || len(vm1.IPs) != 2 || !vm1.IPs[1].Addr.Is6() {
		t.Errorf("%s: vm1 in the view: %+v", name, vm1)
	}
	if p := v.PortWithAddr("net1-000000000000", netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:105")); p != vm1 {
		t.Errorf("%s: vm1's IPv6 address finds %v", name, p)
	}
	s := v.Subnet("sub16-00000000000")
	r := v.Router("r1-0000000000000")
	if s == nil || s.RouterID != r.ID || s.RouterIf == nil || s.RouterIf.ID != "qr16-00000000000" ||
		s.GatewayMAC.String() != "fa:16:3e:00:16:01" || s.SNATPort == nil || s.SNATPort.ID != "sg16-00000000000" {
		t.Errorf("%s: IPv6 subnet in the view: %+v", name, s)
	}
	if !slices.Contains(r.Interfaces, s) {
		t.Errorf("%s: router's interfaces %v", name, r.Interfaces)
	}
	if hs, want := v.PortHosts(v.Port("qr16-00000000000")), v.PortHosts(v.Port("qr1-000000000000")); len(hs) == 0 || !slices.Equal(hs, want) {
		t.Errorf("%s: interface on the IPv6 subnet realized on %v, the IPv4 one on %v", name, hs, want)
	}
	if p := v.Port("qg1-000000000000"); p == nil || len(p.IPs) != 2 {
		t.Errorf("%s: gateway port in the view: %+v", name, p)
	}
	if p := v.Port("fg1-000000000000"); p == nil || len(p.IPs) != 1 || !p.IPs[0].Addr.Is4() {
		t.Errorf("%s: agent gateway port in the view: %+v", name, p)
	}
}

// TestDualStackPlansGolden: the plans of every host of the seed with withIPv6's subnets
// (docs/pipeline.md's namespace section quotes the IPv6 parts).
func TestDualStackPlansGolden(t *testing.T) {
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	for _, h := range v.HostNames() {
		p := Plan(v, h)
		p.Revision = 0
		js, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "ipv6", h+"-plan.json"), string(js)+"\n")
	}
}

// TestIPv6RoutedInPlans: what routes IPv6 in the plans of withIPv6, checked by itself:
// the qrouter's qr- link holds the IPv6 gateway with a permanent neighbour for each IPv6
// port of the subnet and no duplicate address detection, traffic from the subnet is sent
// to the subnet's snat port by Neutron's rule (table and priority the CRC-32 index of
// "2001:db8:1::1/64"), and the snat namespace routes it out of qg- to the external
// subnet's IPv6 gateway, without NAT.
func TestIPv6RoutedInPlans(t *testing.T) {
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	host := v.PortHosts(v.Port("vm1-000000000000"))[0]
	qr := findNS(t, Plan(v, host), "qrouter-r1-0000000000000")
	const dev = "qr-qr16-000000"
	link := findLink(t, qr, dev)
	if !slices.Equal(link.Addresses, []string{"2001:db8:1::1/64"}) || link.MAC != "fa:16:3e:00:16:01" {
		t.Errorf("qr- link %+v", link)
	}
	for k, want := range map[string]string{"net.ipv6.conf.all.forwarding": "1", "net.ipv6.conf." + dev + ".accept_dad": "0",
		"net.ipv6.conf." + dev + ".accept_ra": "0"} {
		if qr.Sysctls[k] != want {
			t.Errorf("qrouter sysctl %s = %q, want %q", k, qr.Sysctls[k], want)
		}
	}
	for _, ip := range []string{"2001:db8:1::f816:3eff:fe00:105", "2001:db8:1::f816:3eff:fe00:106", "2001:db8:1::2"} {
		a := netip.MustParseAddr(ip)
		if !slices.ContainsFunc(qr.Neighbors, func(n plan.Neighbor) bool { return n.IP == a.String() && n.Dev == dev }) {
			t.Errorf("qrouter has no neighbour %s on %s: %+v", ip, dev, qr.Neighbors)
		}
	}
	idx := snatIndex(netip.MustParseAddr("2001:db8:1::1"), 64)
	h := crc32.ChecksumIEEE([]byte("2001:db8:1::1/64"))
	if want := int64(h>>30) ^ int64(h&0x3fffffff); idx != want && idx != want+0x3fffffff {
		t.Errorf("snat index %d, crc32 fold %d", idx, want)
	}
	if !slices.Contains(qr.Rules, plan.Rule{Priority: idx, From: "2001:db8:1::/64", Table: int(idx)}) ||
		!slices.Contains(qr.Routes, plan.Route{Dst: "default", Via: "2001:db8:1::2", Dev: dev, Table: int(idx)}) {
		t.Errorf("qrouter's SNAT redirect for the IPv6 subnet missing: rules %+v routes %+v", qr.Rules, qr.Routes)
	}
	snatHost := v.PortHosts(v.Port("sg16-00000000000"))[0]
	sn := findNS(t, Plan(v, snatHost), "snat-r1-0000000000000")
	if l := findLink(t, sn, "sg-sg16-000000"); !slices.Equal(l.Addresses, []string{"2001:db8:1::2/64"}) {
		t.Errorf("sg- link %+v", l)
	}
	qg := findLink(t, sn, "qg-qg1-0000000")
	if !slices.Contains(qg.Addresses, "2001:db8:ff::2/64") {
		t.Errorf("qg- link %+v", qg)
	}
	if !slices.Contains(sn.Routes, plan.Route{Dst: "default", Via: "2001:db8:ff::1", Dev: qg.Name}) {
		t.Errorf("snat namespace has no IPv6 default route: %+v", sn.Routes)
	}
	for _, n := range sn.NAT {
		if strings.Contains(n.To, ":") {
			t.Errorf("IPv6 translated in the snat namespace: %+v", n)
		}
	}
}

func findNS(t *testing.T, p plan.Plan, name string) plan.Namespace {
	t.Helper()
	for _, ns := range p.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	t.Fatalf("plan of %s has no %s", p.Host, name)
	return plan.Namespace{}
}

func findLink(t *testing.T, ns plan.Namespace, name string) plan.Link {
	t.Helper()
	for _, l := range ns.Links {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("%s has no link %s: %+v", ns.Name, name, ns.Links)
	return plan.Link{}
}

// renderNoIPv6 is render's flows without those that match IPv6 (eth_type 0x86dd).
func renderNoIPv6(v *topology.View, host string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "networks %v\n", v.NetworksOn(host))
	if v.Host(host) == nil {
		return sb.String()
	}
	for _, b := range topology.Bridges() {
		flows := slices.DeleteFunc(Flows(v, seedBridge(v, host, b)), matchesIPv6)
		sb.WriteString(renderFlows(b, flows))
	}
	return sb.String()
}

func matchesIPv6(f ofproto.Flow) bool {
	et, ok := f.Match.Get(ofproto.ClassBasic, ofproto.OXMEthType)
	return ok && len(et.Value) == 2 && uint16(et.Value[0])<<8|uint16(et.Value[1]) == ofproto.EthTypeIPv6
}

// TestDualStackFlowsGolden: br-int of every host of the seed with withIPv6's subnets
// (docs/pipeline.md quotes its IPv6 flows).
func TestDualStackFlowsGolden(t *testing.T) {
	v := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	for _, h := range v.HostNames() {
		flows := Flows(v, seedBridge(v, h, topology.BrInt))
		golden(t, filepath.Join("testdata", "ipv6", h+"-br-int.flows"), renderFlows(topology.BrInt, flows))
	}
}

// A dual-stack router interface (one port on the IPv4 and the IPv6 subnet of a network,
// as Neutron attaches a port with both), its IPv6 address first: the port is both subnets'
// interface, one qr- link holds both gateways, br-tun has one DVR_PROCESS pair for its MAC,
// and the flows but IPv6 ones are those of the IPv4 interface alone (without the IPv6
// subnet's SNAT port, which has L2 flows of its own).
func TestDualStackRouterInterface(t *testing.T) {
	base := topology.NewView(withVLANs(seedTopology()), 7)
	top := withIPv6(seedTopology())
	top.Ports = slices.DeleteFunc(top.Ports, func(p topology.Port) bool { return p.ID == "qr16-00000000000" || p.ID == "sg16-00000000000" })
	for i := range top.Ports {
		if top.Ports[i].ID == "qr1-000000000000" {
			top.Ports[i].FixedIPs = append([]topology.FixedIP{{SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::1"}},
				top.Ports[i].FixedIPs...)
		}
	}
	v := topology.NewView(withVLANs(top), 7)
	s4, s6 := v.Subnet("sub1-000000000000"), v.Subnet("sub16-00000000000")
	r := v.Router("r1-0000000000000")
	for _, s := range []*topology.SubnetInfo{s4, s6} {
		if s.RouterIf == nil || s.RouterIf.ID != "qr1-000000000000" || s.RouterID != r.ID || !slices.Contains(r.Interfaces, s) {
			t.Errorf("subnet %s's interface %+v, router's interfaces %v", s.ID, s.RouterIf, r.Interfaces)
		}
	}
	host := v.PortHosts(v.Port("vm1-000000000000"))[0]
	qr := findNS(t, Plan(v, host), "qrouter-r1-0000000000000")
	if l := findLink(t, qr, "qr-qr1-0000000"); !slices.Equal(l.Addresses, []string{"10.0.1.1/24", "2001:db8:1::1/64"}) {
		t.Errorf("dual-stack qr- link %+v", l)
	}
	tun := Flows(v, seedBridge(v, host, topology.BrTun))
	if n := len(slices.DeleteFunc(tun, func(f ofproto.Flow) bool { return f.Table != TunDVRProcess || f.Cookie != Cookie(AppDVR) })); n != 4 {
		t.Errorf("br-tun has %d DVR_PROCESS flows, want 4 (a pair for each of the two networks' interface MACs)", n)
	}
	for _, h := range base.HostNames() {
		if got, want := renderNoIPv6(v, h), renderNoIPv6(base, h); got != want {
			t.Errorf("host %s:\n%s", h, lineDiff(got, want))
		}
		if p := Plan(v, h); p.Validate() != nil {
			t.Errorf("plan of %s: %v", h, p.Validate())
		}
	}
}
