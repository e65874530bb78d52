package apps

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/dvrflow/dvrflow/plan"
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
		// A router's two networks (2r and 2r+1) do not overlap.
		t.Subnets = append(t.Subnets, topology.Subnet{ID: sid, NetworkID: id, IPVersion: 4, CIDR: fmt.Sprintf("10.%d.0.0/16", n%2), GatewayIP: fmt.Sprintf("10.%d.0.1", n%2)})
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
					DeviceID: rid, FixedIPs: []topology.FixedIP{{SubnetID: fmt.Sprintf("sub%05d", n), IPAddress: fmt.Sprintf("10.%d.0.1", k)}}},
				topology.Port{ID: fmt.Sprintf("sg-%05d", n), NetworkID: fmt.Sprintf("net%05d", n), MACAddress: nextMAC(), DeviceOwner: topology.OwnerRouterCentralizedSNAT,
					DeviceID: rid, FixedIPs: []topology.FixedIP{{SubnetID: fmt.Sprintf("sub%05d", n), IPAddress: fmt.Sprintf("10.%d.0.2", k)}}})
		}
	}
	vms := hosts * vmsPerHost
	perNet := vms / nets
	agentGW := map[int]bool{}
	for i := range vms {
		n, k := i/perNet, i%perNet
		h := (n*7919 + k*(hosts/perNet+1)) % hosts // a network's VMs on distinct hosts
		id := fmt.Sprintf("vm%06d", i)
		ip := netip.AddrFrom4([4]byte{10, byte(n % 2), byte((k + 3) >> 8), byte(k + 3)}).String()
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

// BenchmarkPortBoundPlans measures, at seed 001's size, what a bound port costs in the
// plans of the other hosts it changes (every host running its router, and the router's
// snat host: one permanent neighbour entry each), side by side: each plan computed,
// encoded and validated whole, as the engine did ("whole"), and only its reported
// namespaces recomputed from the plan before (Replan), encoded and validated
// (ValidateChanged), as the engine does now ("namespaces"). The bound port's own host (a
// full plan either way) is left out.
func BenchmarkPortBoundPlans(b *testing.B) {
	v := topology.NewView(scaleTopology(5000, 20, 5000, 10), 1)
	const netID, subID = "net00042", "sub00042"
	rid := "r00021"
	base := map[string]plan.Plan{}
	for _, h := range v.HostsOfRouter(rid) {
		base[h] = Plan(v, h)
	}
	for _, h := range v.HostNames() {
		if slices.Contains(v.SNATRoutersOn(h), rid) {
			base[h] = Plan(v, h)
		}
	}
	for _, mode := range []string{"whole", "namespaces"} {
		b.Run(mode, func(b *testing.B) {
			var hosts, bytes, i int
			for b.Loop() {
				i++
				id := fmt.Sprintf("new%06d", i)
				p := topology.Port{ID: id, NetworkID: netID, MACAddress: fmt.Sprintf("fa:16:3e:ff:%02x:%02x", i>>8&0xff, i&0xff), DeviceOwner: "compute:nova",
					DeviceID: id, HostID: fmt.Sprintf("host%05d", i*7%5000), FixedIPs: []topology.FixedIP{{SubnetID: subID, IPAddress: "10.0.9.9"}}}
				aff, err := v.Apply([]topology.Change{{Revision: int64(i + 1), Kind: topology.KindPort, ID: id, Op: topology.OpCreate, Object: &p}})
				if err != nil {
					b.Fatal(err)
				}
				for h, names := range aff.Plans {
					var err error
					if prev, ok := base[h]; ok && mode == "namespaces" {
						// As the engine does (engine/plans.go): the named namespaces
						// recomputed, encoded and validated.
						pl := Replan(v, h, prev, names)
						for _, ns := range pl.Namespaces {
							if names[ns.Name] {
								js, jerr := json.Marshal(ns)
								if jerr != nil {
									b.Fatal(jerr)
								}
								bytes += len(js)
							}
						}
						err = pl.ValidateChanged(names)
					} else {
						pl := Plan(v, h)
						js, jerr := json.Marshal(pl)
						if jerr != nil {
							b.Fatal(jerr)
						}
						bytes += len(js)
						err = pl.Validate()
					}
					if err != nil {
						b.Fatal(err)
					}
					hosts++
				}
				b.StopTimer()
				if _, err := v.Apply([]topology.Change{{Revision: int64(i + 1), Kind: topology.KindPort, ID: id, Op: topology.OpDelete, Object: &p}}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(hosts)/float64(i), "plans/op")
			b.ReportMetric(float64(bytes)/float64(i), "json-bytes/op")
		})
	}
}

// withSecurity puts every VM port of a scaleTopology in its project's default group (the
// project of network n is n/2, as routers join networks 2r and 2r+1) with Neutron's four
// default rules, and shared of them, spread evenly, also in one group whose rule lets
// tcp/5432 in from its own members.
func withSecurity(t *topology.Topology, shared int) *topology.Topology {
	in, eg, v4, v6 := topology.DirectionIngress, topology.DirectionEgress, topology.EtherTypeIPv4, topology.EtherTypeIPv6
	tag := uint32(0)
	group := func(id string, rules ...topology.SecurityGroupRule) {
		tag++
		t.SecurityGroups = append(t.SecurityGroups, topology.SecurityGroup{ID: id, Stateful: true, Tag: tag})
		for i, r := range rules {
			r.ID, r.SecurityGroupID = fmt.Sprintf("%s-r%d", id, i), id
			t.SecurityGroupRules = append(t.SecurityGroupRules, r)
		}
	}
	defaults := map[string]bool{}
	var vms []*topology.Port
	for i := range t.Ports {
		p := &t.Ports[i]
		if p.DeviceOwner != "compute:nova" {
			continue
		}
		var n int
		fmt.Sscanf(p.NetworkID, "net%05d", &n)
		def := fmt.Sprintf("default-%05d", n/2)
		if !defaults[def] {
			defaults[def] = true
			group(def, topology.SecurityGroupRule{Direction: eg, EtherType: v4}, topology.SecurityGroupRule{Direction: eg, EtherType: v6},
				topology.SecurityGroupRule{Direction: in, EtherType: v4, RemoteGroupID: def},
				topology.SecurityGroupRule{Direction: in, EtherType: v6, RemoteGroupID: def})
		}
		p.PortSecurityEnabled, p.SecurityGroups = true, []string{def}
		vms = append(vms, p)
	}
	lo, hi := 5432, 5432
	group("shared", topology.SecurityGroupRule{Direction: eg, EtherType: v4}, topology.SecurityGroupRule{Direction: eg, EtherType: v6},
		topology.SecurityGroupRule{Direction: in, EtherType: v4, Protocol: "tcp", PortRangeMin: &lo, PortRangeMax: &hi, RemoteGroupID: "shared"})
	for i := 0; shared > 0 && i < len(vms); i += len(vms) / shared {
		vms[i].SecurityGroups = append(vms[i].SecurityGroups, "shared")
	}
	return t
}

// neutronFirewallFlows is the number of flows Neutron's openvswitch firewall driver would
// install on a host's br-int for the same ports and groups, from its design (firewall.py,
// IPv4 and IPv6 as it always does): per firewalled port 2 classifier flows, 13 in
// BASE_EGRESS (4 ICMPv6 types, ARP and IPv4 per IPv4 address, IPv6 from the link-local
// address, 2 DHCP, 2 DHCP-server drops, the RA drop, the drop), 4 in ACCEPT_OR_INGRESS,
// 10 in BASE_INGRESS (ARP, 4 ICMPv6 types, 2 DHCP offers, 2 into conntrack, tracked),
// 12 connection-state flows in the two rules tables, 2 in the accepted tables, and 2 per
// rule (new and established); a remote-group rule is a port clause per state, and every
// remote group adds one flow per member address and ethertype in use plus its conj_id
// flows (2 per direction and ethertype).
func neutronFirewallFlows(v *topology.View, host string) int {
	n := 0
	type use struct {
		group, dir, eth string
	}
	remote := map[use]bool{}
	for _, p := range v.PortsOn(host) {
		if !topology.Firewalled(p.Port) {
			continue
		}
		n += 2 + 13 + 4 + 10 + 12 + 2 + 2*(len(p.IPs)-1)
		for _, g := range p.SecurityGroups {
			for _, r := range v.GroupRules(g) {
				n += 2
				if r.RemoteGroupID != "" {
					remote[use{r.RemoteGroupID, r.Direction, r.EtherType}] = true
				}
			}
		}
	}
	for u := range remote {
		n += 2
		if u.eth == topology.EtherTypeIPv4 {
			n += len(v.GroupMembers(u.group)) // a flow per member address (one each here)
		}
	}
	return n
}

// BenchmarkScaleSecurityGroups computes every bridge's flows at seed 001's size without
// and with security groups (every VM in its project's default group, 1,000 of them in a
// shared remote group), side by side, with the count Neutron's driver would install.
func BenchmarkScaleSecurityGroups(b *testing.B) {
	for _, sec := range []bool{false, true} {
		t := scaleTopology(5000, 20, 5000, 10)
		name := "off"
		if sec {
			t, name = withSecurity(t, 1000), "on"
		}
		v := topology.NewView(t, 1)
		b.Run("FlowsEveryBridge/"+name, func(b *testing.B) {
			var flows, firewall, neutron int
			for b.Loop() {
				flows, firewall, neutron = 0, 0, 0
				for _, h := range v.HostNames() {
					for _, br := range topology.Bridges() {
						fs := Flows(v, seedBridge(v, h, br))
						flows += len(fs)
						for i := range fs {
							if app, _ := CookieApp(fs[i].Cookie); app == AppFirewall {
								firewall++
							}
						}
					}
					neutron += neutronFirewallFlows(v, h)
				}
			}
			b.ReportMetric(float64(flows), "flows")
			b.ReportMetric(float64(flows)/float64(3*len(v.HostNames())), "flows/bridge")
			b.ReportMetric(float64(firewall), "firewall-flows")
			b.ReportMetric(float64(neutron), "neutron-firewall-flows")
		})
		if !sec {
			continue
		}
		b.Run("JoinShared", func(b *testing.B) {
			var hosts, flows, n int
			for b.Loop() {
				n++
				id := fmt.Sprintf("vm%06d", 1+n%99000)
				p := *v.Port(id).Port
				orig := p
				p.SecurityGroups = append(slices.Clone(p.SecurityGroups), "shared")
				aff, err := v.Apply([]topology.Change{{Revision: int64(2 * n), Kind: topology.KindPort, ID: id, Op: topology.OpUpdate, Object: &p}})
				if err != nil {
					b.Fatal(err)
				}
				hosts = len(aff.Hosts) + len(aff.Parts)
				// As the engine computes them: a shared part once, however many hosts have it.
				shared := map[string]bool{}
				for h, parts := range aff.Parts {
					st := seedBridge(v, h, topology.BrInt)
					for part := range parts {
						if Shared(part) {
							if shared[part] {
								continue
							}
							shared[part] = true
						}
						flows += len(FlowsOf(v, st, part))
					}
				}
				if _, err := v.Apply([]topology.Change{{Revision: int64(2*n + 1), Kind: topology.KindPort, ID: id, Op: topology.OpUpdate, Object: &orig}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(hosts), "hosts-affected")
			b.ReportMetric(float64(flows)/float64(n), "flows-computed/op")
		})
	}
}
