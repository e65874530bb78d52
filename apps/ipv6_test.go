package apps

import (
	"testing"

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
		"vm1-000000000000": {SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::f816:3eff:fe00:105"},
		"vm4-000000000000": {SubnetID: "sub16-00000000000", IPAddress: "2001:db8:1::f816:3eff:fe00:106"},
		"vm2-000000000000": {SubnetID: "sub26-00000000000", IPAddress: "2001:db8:2::5"},
		"vm3-000000000000": {SubnetID: "sub26-00000000000", IPAddress: "2001:db8:2::3"},
		"qg1-000000000000": {SubnetID: "subx6-00000000000", IPAddress: "2001:db8:ff::2"},
		"fg1-000000000000": {SubnetID: "subx6-00000000000", IPAddress: "2001:db8:ff::3"},
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

// IPv6 subnets and addresses change no flow and no plan, whether the view is built with
// them or they come as changes, and every plan still validates (the host helper would
// refuse a plan with an IPv6 address in it, and apply none of it).
func TestIPv6ChangesNothing(t *testing.T) {
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
		want := render(base, h)
		for name, v := range map[string]*topology.View{"built": full, "applied": applied} {
			if got := render(v, h); got != want {
				t.Errorf("%s with IPv6, host %s:\n%s", name, h, lineDiff(got, want))
			}
			if p := Plan(v, h); p.Validate() != nil {
				err := p.Validate()
				t.Errorf("%s with IPv6: plan of %s: %v", name, h, err)
			}
		}
	}
	// The view keeps the ports, with their IPv4 addresses only, and not the interface on
	// the IPv6 subnet.
	if p := full.Port("vm1-000000000000"); p == nil || len(p.FixedIPs) != 1 || len(p.IPs) != 1 {
		t.Errorf("vm1 in the view: %+v", p)
	}
	if p := full.Port("qr16-00000000000"); p != nil {
		t.Errorf("interface on the IPv6 subnet in the view: %+v", p)
	}
}
