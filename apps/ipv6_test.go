package apps

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"

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

// IPv6 subnets and addresses change no plan and no flow but IPv6 ones (neighbour
// discovery, router advertisements, IPv6 anti-spoofing), whether the view is built with
// them or they come as changes, and every plan still validates (the host helper would
// refuse a plan with an IPv6 address in it, and apply none of it): L2 is
// ethertype-agnostic and L3 is IPv4 only until DVR IPv6 routing.
func TestIPv6ChangesNoPlanNorIPv4Flow(t *testing.T) {
	base := topology.NewView(withVLANs(seedTopology()), 7)
	full := topology.NewView(withVLANs(withIPv6(seedTopology())), 7)
	applied := topology.NewView(withVLANs(seedTopology()), 7)
	var changes []topology.Change
	six := withIPv6(seedTopology())
	for i := range six.Subnets {
		if six.Subnets[i].IPVersion == 6 {
			changes = append(changes, topology.Change{Kind: topology.KindSubnet, ID: six.Subnets[i].ID, Op: topology.OpCreate, Object: &six.Subnets[i]})
		}
	}
	for i := range six.Ports {
		changes = append(changes, topology.Change{Kind: topology.KindPort, ID: six.Ports[i].ID, Op: topology.OpUpdate, Object: &six.Ports[i]})
	}
	changes = append(changes, topology.Change{Kind: topology.KindRouter, ID: six.Routers[0].ID, Op: topology.OpUpdate, Object: &six.Routers[0]})
	if _, err := applied.Apply(changes); err != nil {
		t.Fatal(err)
	}
	for _, h := range base.HostNames() {
		want := renderNoIPv6(base, h)
		for name, v := range map[string]*topology.View{"built": full, "applied": applied} {
			if got := renderNoIPv6(v, h); got != want {
				t.Errorf("%s with IPv6, host %s:\n%s", name, h, lineDiff(got, want))
			}
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

// checkIPv6View checks what a view of withIPv6 holds of IPv6 (ipv4only.go).
func checkIPv6View(t *testing.T, name string, v *topology.View) {
	t.Helper()
	// Ports keep their IPv6 addresses, and are found by them.
	vm1 := v.Port("vm1-000000000000")
	if vm1 == nil || len(vm1.IPs) != 2 || !vm1.IPs[1].Addr.Is6() {
		t.Errorf("%s: vm1 in the view: %+v", name, vm1)
	}
	if p := v.PortWithAddr("net1-000000000000", netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:105")); p != vm1 {
		t.Errorf("%s: vm1's IPv6 address finds %v", name, p)
	}
	// The IPv6 subnets are there; the router's interface on one is its RouterIf, not
	// routed (no RouterID, not among the router's Interfaces) and realized nowhere.
	s := v.Subnet("sub16-00000000000")
	if s == nil || s.RouterID != "" || s.RouterIf == nil || s.RouterIf.ID != "qr16-00000000000" || s.GatewayMAC.String() != "fa:16:3e:00:16:01" {
		t.Errorf("%s: IPv6 subnet in the view: %+v", name, s)
	}
	r := v.Router("r1-0000000000000")
	if len(r.IPv6Interfaces) != 1 || r.IPv6Interfaces[0] != s || slices.Contains(r.Interfaces, s) {
		t.Errorf("%s: router's interfaces %v, IPv6 ones %v", name, r.Interfaces, r.IPv6Interfaces)
	}
	if hs := v.PortHosts(v.Port("qr16-00000000000")); hs != nil {
		t.Errorf("%s: interface on the IPv6 subnet realized on %v", name, hs)
	}
	// What serves SNAT and floating IPs keeps IPv4 only.
	if p := v.Port("sg16-00000000000"); p != nil {
		t.Errorf("%s: SNAT port on the IPv6 subnet in the view: %+v", name, p)
	}
	if p := v.Port("qg1-000000000000"); p == nil || len(p.IPs) != 1 || !p.IPs[0].Addr.Is4() {
		t.Errorf("%s: gateway port in the view: %+v", name, p)
	}
	if gw := r.Gateway; len(gw.ExternalFixedIPs) != 1 {
		t.Errorf("%s: router gateway addresses %v", name, gw.ExternalFixedIPs)
	}
}

// renderNoIPv6 is render without the flows that match IPv6 (eth_type 0x86dd).
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
	p := Plan(v, host)
	p.Revision = 0
	j, _ := json.Marshal(p)
	sb.Write(j)
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
// as Neutron attaches a port with both), its IPv6 address first: the port is the IPv4
// subnet's routed interface and the IPv6 subnet's advertised one, and the plans and the
// IPv4 flows are those of the IPv4 interface alone.
func TestDualStackRouterInterface(t *testing.T) {
	base := topology.NewView(withVLANs(seedTopology()), 7)
	top := withIPv6(seedTopology())
	top.Ports = slices.DeleteFunc(top.Ports, func(p topology.Port) bool { return p.ID == "qr16-00000000000" })
	for i := range top.Ports {
		if top.Ports[i].ID == "qr1-000000000000" {
			top.Ports[i].FixedIPs = append([]topology.FixedIP{{SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::1"}},
				top.Ports[i].FixedIPs...)
		}
	}
	v := topology.NewView(withVLANs(top), 7)
	s4, s6 := v.Subnet("sub1-000000000000"), v.Subnet("sub16-00000000000")
	r := v.Router("r1-0000000000000")
	if s4.RouterIf == nil || s4.RouterIf.ID != "qr1-000000000000" || s4.RouterID != r.ID || !slices.Contains(r.Interfaces, s4) {
		t.Errorf("IPv4 subnet's interface %+v, router's interfaces %v", s4.RouterIf, r.Interfaces)
	}
	if s6.RouterIf == nil || s6.RouterIf.ID != "qr1-000000000000" || s6.RouterID != "" || !slices.Equal(r.IPv6Interfaces, []*topology.SubnetInfo{s6}) {
		t.Errorf("IPv6 subnet's interface %+v, router's IPv6 interfaces %v", s6.RouterIf, r.IPv6Interfaces)
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
