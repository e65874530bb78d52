package apps

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/dvrflow/dvrflow/topology"
)

// scaleTopology is seed 001's datacenter in memory: hosts hosts (the first snat of them
// dvr_snat) with vmsPerHost VMs each, on nets tenant networks of vmsPerHost*hosts/nets VMs
// spread over distinct hosts, two networks per router, every router with a gateway, and a
// floating IP on every tenth VM. Every present network has a local VLAN.
func scaleTopology(hosts, vmsPerHost, nets, snat int) *topology.Topology {
	t := &topology.Topology{}
	for i := range hosts {
		mode := topology.HostModeDVR
		if i < snat {
			mode = topology.HostModeDVRSNAT
		}
		t.Hosts = append(t.Hosts, topology.Host{Name: fmt.Sprintf("host%05d", i), Mode: mode,
			TunnelIP:   netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)}).String(),
			MACAddress: fmt.Sprintf("fa:16:3f:00:%02x:%02x", i>>8, i&0xff),
			Bridges: map[string]string{"br-int": fmt.Sprintf("%016x", 0x10000+i), "br-tun": fmt.Sprintf("%016x", 0x20000+i),
				"br-ex": fmt.Sprintf("%016x", 0x30000+i)}})
	}
	ext := "ext"
	t.Networks = append(t.Networks, topology.Network{ID: ext, NetworkType: "flat", PhysicalNetwork: "physnet1", External: true})
	t.Subnets = append(t.Subnets, topology.Subnet{ID: "subext", NetworkID: ext, IPVersion: 4, CIDR: "172.16.0.0/12", GatewayIP: "172.16.0.1"})
	mac := 0
	nextMAC := func() string {
		mac++
		return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", mac>>16, (mac>>8)&0xff, mac&0xff)
	}
	extIP := 256
	nextExt := func() string {
		extIP++
		return netip.AddrFrom4([4]byte{172, 16 + byte(extIP>>16), byte(extIP >> 8), byte(extIP)}).String()
	}
	for n := range nets {
		id, sid := fmt.Sprintf("net%05d", n), fmt.Sprintf("sub%05d", n)
		t.Networks = append(t.Networks, topology.Network{ID: id, NetworkType: "vxlan", SegmentationID: int64(1000 + n)})
		t.Subnets = append(t.Subnets, topology.Subnet{ID: sid, NetworkID: id, IPVersion: 4, CIDR: "10.0.0.0/16", GatewayIP: "10.0.0.1"})
	}
	for r := range nets / 2 {
		rid := fmt.Sprintf("r%05d", r)
		gw := "qg-" + rid
		t.Ports = append(t.Ports, topology.Port{ID: gw, NetworkID: ext, MACAddress: nextMAC(), DeviceOwner: topology.OwnerRouterGateway, DeviceID: rid,
			FixedIPs: []topology.FixedIP{{SubnetID: "subext", IPAddress: nextExt()}}})
		t.Routers = append(t.Routers, topology.Router{ID: rid, Distributed: true, LinkLocal: fmt.Sprintf("169.254.%d.%d/31", 64+r/128, (r%128)*2),
			Gateway: &topology.GatewayInfo{NetworkID: ext, EnableSNAT: true, PortID: gw}})
		for k := range 2 {
			n := 2*r + k
			t.Ports = append(t.Ports,
				topology.Port{ID: fmt.Sprintf("qr-%05d", n), NetworkID: fmt.Sprintf("net%05d", n), MACAddress: nextMAC(), DeviceOwner: topology.OwnerRouterInterfaceDistributed,
					DeviceID: rid, FixedIPs: []topology.FixedIP{{SubnetID: fmt.Sprintf("sub%05d", n), IPAddress: "10.0.0.1"}}},
				topology.Port{ID: fmt.Sprintf("sg-%05d", n), NetworkID: fmt.Sprintf("net%05d", n), MACAddress: nextMAC(), DeviceOwner: topology.OwnerRouterCentralizedSNAT,
					DeviceID: rid, FixedIPs: []topology.FixedIP{{SubnetID: fmt.Sprintf("sub%05d", n), IPAddress: "10.0.0.2"}}})
		}
	}
	vms := hosts * vmsPerHost
	perNet := vms / nets
	agentGW := map[int]bool{}
	for i := range vms {
		n, k := i/perNet, i%perNet
		h := (n*7919 + k*(hosts/perNet+1)) % hosts // a network's VMs on distinct hosts
		id := fmt.Sprintf("vm%06d", i)
		ip := netip.AddrFrom4([4]byte{10, 0, byte((k + 3) >> 8), byte(k + 3)}).String()
		t.Ports = append(t.Ports, topology.Port{ID: id, NetworkID: fmt.Sprintf("net%05d", n), MACAddress: nextMAC(), DeviceOwner: "compute:nova",
			DeviceID: id, HostID: t.Hosts[h].Name, FixedIPs: []topology.FixedIP{{SubnetID: fmt.Sprintf("sub%05d", n), IPAddress: ip}}})
		if i%10 == 0 {
			if !agentGW[h] {
				agentGW[h] = true
				t.Ports = append(t.Ports, topology.Port{ID: "fg-" + t.Hosts[h].Name, NetworkID: ext, MACAddress: nextMAC(),
					DeviceOwner: topology.OwnerFloatingIPAgentGateway, DeviceID: t.Hosts[h].Name, HostID: t.Hosts[h].Name,
					FixedIPs: []topology.FixedIP{{SubnetID: "subext", IPAddress: nextExt()}}})
			}
			t.FloatingIPs = append(t.FloatingIPs, topology.FloatingIP{ID: "fip-" + id, FloatingNetworkID: ext, FloatingIPAddress: nextExt(),
				PortID: id, FixedIPAddress: ip, RouterID: fmt.Sprintf("r%05d", n/2)})
		}
	}
	v := topology.NewView(t, 1)
	for _, h := range v.HostNames() {
		for i, n := range v.NetworksOn(h) {
			t.LocalVLANs = append(t.LocalVLANs, topology.LocalVLAN{Host: h, NetworkID: n, VLAN: uint16(i + 1)})
		}
	}
	return t
}

// BenchmarkScaleView measures, at seed 001's size (5000 hosts, 100k VMs on 5000 networks,
// 2500 routers, 10k floating IPs), building the view, the flows of every bridge, and
// applying one bound port and computing the flow parts it affects (what the engine does
// per port bound, without the network).
func BenchmarkScaleView(b *testing.B) {
	t := scaleTopology(5000, 20, 5000, 10)
	b.Run("NewView", func(b *testing.B) {
		for b.Loop() {
			topology.NewView(t, 1)
		}
	})
	v := topology.NewView(t, 1)
	b.Run("FlowsEveryBridge", func(b *testing.B) {
		var flows, bridges int
		for b.Loop() {
			flows, bridges = 0, 0
			for _, h := range v.HostNames() {
				for _, br := range topology.Bridges() {
					flows += len(Flows(v, seedBridge(v, h, br)))
					bridges++
				}
			}
		}
		b.ReportMetric(float64(flows), "flows")
		b.ReportMetric(float64(flows)/float64(bridges), "flows/bridge")
	})
	// The same with every flow checked against its table's declaration, as the engine
	// does before handing flows over: the cost of leaving Check on.
	b.Run("FlowsEveryBridgeChecked", func(b *testing.B) {
		var flows int
		for b.Loop() {
			flows = 0
			for _, h := range v.HostNames() {
				for _, br := range topology.Bridges() {
					fs := Flows(v, seedBridge(v, h, br))
					for i := range fs {
						if err := Check(br, &fs[i]); err != nil {
							b.Fatal(err)
						}
					}
					flows += len(fs)
				}
			}
		}
		b.ReportMetric(float64(flows), "flows")
	})
	b.Run("ApplyPortBound", func(b *testing.B) {
		var affected, flows int
		i := 0
		for b.Loop() {
			i++
			id := fmt.Sprintf("new%06d", i)
			p := topology.Port{ID: id, NetworkID: "net00042", MACAddress: fmt.Sprintf("fa:16:3e:ff:%02x:%02x", i>>8&0xff, i&0xff), DeviceOwner: "compute:nova",
				DeviceID: id, HostID: fmt.Sprintf("host%05d", i%5000), FixedIPs: []topology.FixedIP{{SubnetID: "sub00042", IPAddress: "10.0.9.9"}}}
			aff, err := v.Apply([]topology.Change{{Revision: int64(i + 1), Kind: topology.KindPort, ID: id, Op: topology.OpCreate, Object: &p}})
			if err != nil {
				b.Fatal(err)
			}
			affected = len(aff.Hosts) + len(aff.Parts)
			for h := range aff.Hosts {
				for _, br := range topology.Bridges() {
					st := seedBridge(v, h, br)
					for _, part := range Parts(v, st) {
						flows += len(FlowsOf(v, st, part))
					}
				}
			}
			for h, parts := range aff.Parts {
				for _, br := range topology.Bridges() {
					st := seedBridge(v, h, br)
					for part := range parts {
						flows += len(FlowsOf(v, st, part))
					}
				}
			}
			if _, err := v.Apply([]topology.Change{{Revision: int64(i + 1), Kind: topology.KindPort, ID: id, Op: topology.OpDelete, Object: &p}}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(affected), "hosts-affected")
		b.ReportMetric(float64(flows)/float64(i), "flows-computed/op")
	})
}
