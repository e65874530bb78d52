package apps

import (
	"fmt"
	"slices"

	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// seedTopology is the seed scenario of issue 4 with readable IDs: hosts compute1 and
// compute2 (dvr) and network (dvr_snat); Net1 10.0.1.0/24 and Net2 10.0.2.0/24 on router R1
// whose gateway is on the external 172.24.4.0/24; VM1 10.0.1.5 and VM3 10.0.2.3 on compute1
// with floating IPs 172.24.4.5 and 172.24.4.7, VM2 10.0.2.5 and VM4 10.0.1.6 on compute2.
// Security groups: VM1 is in the project's default group and "ssh" (tcp/22 and ICMP echo
// from anywhere), VM2 in the default group with the allowed address pair 10.0.2.100, VM3
// in the stateless "udp" group (udp 5000-5010 from 10.0.0.0/16 in, anything out), VM4 has
// port security off. Each tenant network has its DHCP port (10.0.1.3, 10.0.2.4).
func seedTopology() *topology.Topology {
	t := &topology.Topology{}
	for i, h := range []struct {
		name string
		mode topology.HostMode
	}{{"compute1", "dvr"}, {"compute2", "dvr"}, {"network", "dvr_snat"}} {
		t.Hosts = append(t.Hosts, topology.Host{Name: h.name, Mode: h.mode, TunnelIP: fmt.Sprintf("192.168.248.%d", i+1),
			MACAddress: fmt.Sprintf("fa:16:3f:00:00:%02x", i+1),
			Bridges: map[string]string{"br-int": fmt.Sprintf("00000000000001%02x", i+1),
				"br-tun": fmt.Sprintf("00000000000002%02x", i+1), "br-ex": fmt.Sprintf("00000000000003%02x", i+1)}})
	}
	t.Networks = []topology.Network{
		{ID: "net1-000000000000", Name: "Net1", NetworkType: "vxlan", SegmentationID: 1001, MTU: 1450},
		{ID: "net2-000000000000", Name: "Net2", NetworkType: "vxlan", SegmentationID: 1002, MTU: 1450},
		{ID: "ext-0000000000000", Name: "public", NetworkType: "flat", PhysicalNetwork: "physnet1", External: true, MTU: 1500},
	}
	t.Subnets = []topology.Subnet{
		{ID: "sub1-000000000000", NetworkID: "net1-000000000000", IPVersion: 4, CIDR: "10.0.1.0/24", GatewayIP: "10.0.1.1", EnableDHCP: true},
		{ID: "sub2-000000000000", NetworkID: "net2-000000000000", IPVersion: 4, CIDR: "10.0.2.0/24", GatewayIP: "10.0.2.1", EnableDHCP: true},
		{ID: "subx-000000000000", NetworkID: "ext-0000000000000", IPVersion: 4, CIDR: "172.24.4.0/24", GatewayIP: "172.24.4.1"},
	}
	port := func(id, net, sub, ip, mac, owner, device, host string) topology.Port {
		return topology.Port{ID: id, NetworkID: net, MACAddress: mac, DeviceOwner: owner, DeviceID: device, HostID: host,
			FixedIPs: []topology.FixedIP{{SubnetID: sub, IPAddress: ip}}}
	}
	const r1 = "r1-0000000000000"
	t.Ports = []topology.Port{
		port("qr1-000000000000", "net1-000000000000", "sub1-000000000000", "10.0.1.1", "fa:16:3e:00:01:01", topology.OwnerRouterInterfaceDistributed, r1, ""),
		port("qr2-000000000000", "net2-000000000000", "sub2-000000000000", "10.0.2.1", "fa:16:3e:00:02:01", topology.OwnerRouterInterfaceDistributed, r1, ""),
		port("sg1-000000000000", "net1-000000000000", "sub1-000000000000", "10.0.1.2", "fa:16:3e:00:01:02", topology.OwnerRouterCentralizedSNAT, r1, ""),
		port("sg2-000000000000", "net2-000000000000", "sub2-000000000000", "10.0.2.2", "fa:16:3e:00:02:02", topology.OwnerRouterCentralizedSNAT, r1, ""),
		port("qg1-000000000000", "ext-0000000000000", "subx-000000000000", "172.24.4.2", "fa:16:3e:00:04:02", topology.OwnerRouterGateway, r1, ""),
		port("fg1-000000000000", "ext-0000000000000", "subx-000000000000", "172.24.4.3", "fa:16:3e:00:04:03", topology.OwnerFloatingIPAgentGateway, "compute1", "compute1"),
		port("dhcp1-00000000000", "net1-000000000000", "sub1-000000000000", "10.0.1.3", "fa:16:3e:00:01:03", topology.OwnerDHCP, "dhcp-net1", ""),
		port("dhcp2-00000000000", "net2-000000000000", "sub2-000000000000", "10.0.2.4", "fa:16:3e:00:02:04", topology.OwnerDHCP, "dhcp-net2", ""),
		port("vm1-000000000000", "net1-000000000000", "sub1-000000000000", "10.0.1.5", "fa:16:3e:00:01:05", "compute:nova", "vm1", "compute1"),
		port("vm2-000000000000", "net2-000000000000", "sub2-000000000000", "10.0.2.5", "fa:16:3e:00:02:05", "compute:nova", "vm2", "compute2"),
		port("vm3-000000000000", "net2-000000000000", "sub2-000000000000", "10.0.2.3", "fa:16:3e:00:02:03", "compute:nova", "vm3", "compute1"),
		port("vm4-000000000000", "net1-000000000000", "sub1-000000000000", "10.0.1.6", "fa:16:3e:00:01:06", "compute:nova", "vm4", "compute2"),
	}
	for i := range t.Ports {
		p := &t.Ports[i]
		switch p.ID {
		case "vm1-000000000000":
			p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sgdef-0000000000", "sgssh-0000000000"}
		case "vm2-000000000000":
			p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sgdef-0000000000"}
			p.AllowedAddressPairs = []topology.AddressPair{{IPAddress: "10.0.2.100", MACAddress: p.MACAddress}}
		case "vm3-000000000000":
			p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sgudp-0000000000"}
		}
	}
	t.SecurityGroups = []topology.SecurityGroup{
		{ID: "sgdef-0000000000", Name: "default", Stateful: true, Tag: 1},
		{ID: "sgssh-0000000000", Name: "ssh", Stateful: true, Tag: 2},
		{ID: "sgudp-0000000000", Name: "udp", Stateful: false, Tag: 3},
	}
	n := func(v int) *int { return &v }
	rule := func(id, group, dir, eth, proto string, lo, hi *int, prefix, remote string) topology.SecurityGroupRule {
		return topology.SecurityGroupRule{ID: id, SecurityGroupID: group, Direction: dir, EtherType: eth, Protocol: proto,
			PortRangeMin: lo, PortRangeMax: hi, RemoteIPPrefix: prefix, RemoteGroupID: remote}
	}
	in, eg, v4, v6 := topology.DirectionIngress, topology.DirectionEgress, topology.EtherTypeIPv4, topology.EtherTypeIPv6
	t.SecurityGroupRules = []topology.SecurityGroupRule{
		rule("rdef1", "sgdef-0000000000", eg, v4, "", nil, nil, "", ""),
		rule("rdef2", "sgdef-0000000000", eg, v6, "", nil, nil, "", ""),
		rule("rdef3", "sgdef-0000000000", in, v4, "", nil, nil, "", "sgdef-0000000000"),
		rule("rdef4", "sgdef-0000000000", in, v6, "", nil, nil, "", "sgdef-0000000000"),
		rule("rssh1", "sgssh-0000000000", in, v4, "tcp", n(22), n(22), "0.0.0.0/0", ""),
		rule("rssh2", "sgssh-0000000000", in, v4, "icmp", n(8), nil, "", ""),
		rule("rudp1", "sgudp-0000000000", in, v4, "udp", n(5000), n(5010), "10.0.0.0/16", ""),
		rule("rudp2", "sgudp-0000000000", eg, v4, "", nil, nil, "", ""),
	}
	t.Routers = []topology.Router{{ID: r1, Name: "R1", Distributed: true, LinkLocal: "169.254.64.0/31",
		Gateway: &topology.GatewayInfo{NetworkID: "ext-0000000000000", EnableSNAT: true, PortID: "qg1-000000000000",
			ExternalFixedIPs: []topology.FixedIP{{SubnetID: "subx-000000000000", IPAddress: "172.24.4.2"}}}}}
	t.FloatingIPs = []topology.FloatingIP{
		{ID: "fip1", FloatingNetworkID: "ext-0000000000000", FloatingIPAddress: "172.24.4.5", PortID: "vm1-000000000000", FixedIPAddress: "10.0.1.5", RouterID: r1},
		{ID: "fip3", FloatingNetworkID: "ext-0000000000000", FloatingIPAddress: "172.24.4.7", PortID: "vm3-000000000000", FixedIPAddress: "10.0.2.3", RouterID: r1},
	}
	return t
}

// withVLANs allocates local VLANs the way the controller does: for each host, its present
// networks in order, from 1.
func withVLANs(t *topology.Topology) *topology.Topology {
	v := topology.NewView(t, 1)
	for _, h := range v.HostNames() {
		for i, n := range v.NetworksOn(h) {
			t.LocalVLANs = append(t.LocalVLANs, topology.LocalVLAN{Host: h, NetworkID: n, VLAN: uint16(i + 1)})
		}
	}
	return t
}

// seedBridge returns the bridge state of host's bridge with every port the host helper
// would have plugged at View v, numbered in name order from 1 after the fixed ports.
func seedBridge(v *topology.View, host string, br topology.Bridge) *BridgeState {
	st := &BridgeState{Host: host, Bridge: br, Ports: map[string]uint32{}}
	switch br {
	case topology.BrTun:
		st.Ports[PortPatchInt], st.Ports[PortVXLAN] = 1, 2
	case topology.BrEx:
		st.Ports[PortPhyBrEx], st.Ports["eth-ext"] = 1, 2
	case topology.BrInt:
		st.Ports[PortPatchTun], st.Ports[PortIntBrEx] = 1, 2
		var names []string
		for _, n := range v.NetworksOn(host) {
			for _, ep := range v.Endpoints(n) {
				if slices.Contains(ep.Hosts, host) {
					names = append(names, OVSPortName(ep.Port.Port))
				}
			}
		}
		// And what the helper plugs for the host's plan (the qmeta- namespaces' taps).
		for _, ns := range Plan(v, host).Namespaces {
			for _, l := range ns.Links {
				if l.Bridge == string(topology.BrInt) && !slices.Contains(names, plan.OVSPeerName(l.Name)) {
					names = append(names, plan.OVSPeerName(l.Name))
				}
			}
		}
		slices.Sort(names)
		for i, n := range names {
			st.Ports[n] = uint32(10 + i)
		}
	}
	return st
}

// withVLANNet adds Net3, a VLAN provider network (physnet1, VLAN 100) attached to R1, with
// VM5 10.0.3.5 on compute1.
func withVLANNet(t *topology.Topology) *topology.Topology {
	t.Networks = append(t.Networks, topology.Network{ID: "net3-000000000000", Name: "Net3", NetworkType: "vlan",
		PhysicalNetwork: "physnet1", SegmentationID: 100, MTU: 1500})
	t.Subnets = append(t.Subnets, topology.Subnet{ID: "sub3-000000000000", NetworkID: "net3-000000000000", IPVersion: 4,
		CIDR: "10.0.3.0/24", GatewayIP: "10.0.3.1"})
	t.Ports = append(t.Ports,
		topology.Port{ID: "qr3-000000000000", NetworkID: "net3-000000000000", MACAddress: "fa:16:3e:00:03:01",
			DeviceOwner: topology.OwnerRouterInterfaceDistributed, DeviceID: "r1-0000000000000",
			FixedIPs: []topology.FixedIP{{SubnetID: "sub3-000000000000", IPAddress: "10.0.3.1"}}},
		topology.Port{ID: "sg3-000000000000", NetworkID: "net3-000000000000", MACAddress: "fa:16:3e:00:03:02",
			DeviceOwner: topology.OwnerRouterCentralizedSNAT, DeviceID: "r1-0000000000000",
			FixedIPs: []topology.FixedIP{{SubnetID: "sub3-000000000000", IPAddress: "10.0.3.2"}}},
		topology.Port{ID: "vm5-000000000000", NetworkID: "net3-000000000000", MACAddress: "fa:16:3e:00:03:05",
			DeviceOwner: "compute:nova", DeviceID: "vm5", HostID: "compute1",
			FixedIPs: []topology.FixedIP{{SubnetID: "sub3-000000000000", IPAddress: "10.0.3.5"}}})
	return t
}
