package apps

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// model is a topology as records by ID, changed the way the store changes it: every change
// is also a change-log entry, so the same history can be applied to a View.
type model struct {
	nets    map[string]topology.Network
	subnets map[string]topology.Subnet
	ports   map[string]topology.Port
	routers map[string]topology.Router
	fips    map[string]topology.FloatingIP
	hosts   map[string]topology.Host
	vlans   map[string]topology.LocalVLAN // host/network
	groups  map[string]topology.SecurityGroup
	rules   map[string]topology.SecurityGroupRule
	rev     int64
	log     []topology.Change
}

func newModel(t *topology.Topology) *model {
	m := &model{nets: map[string]topology.Network{}, subnets: map[string]topology.Subnet{}, ports: map[string]topology.Port{},
		routers: map[string]topology.Router{}, fips: map[string]topology.FloatingIP{}, hosts: map[string]topology.Host{}, vlans: map[string]topology.LocalVLAN{},
		groups: map[string]topology.SecurityGroup{}, rules: map[string]topology.SecurityGroupRule{}}
	for _, x := range t.Networks {
		m.nets[x.ID] = x
	}
	for _, x := range t.Subnets {
		m.subnets[x.ID] = x
	}
	for _, x := range t.Ports {
		m.ports[x.ID] = x
	}
	for _, x := range t.Routers {
		m.routers[x.ID] = x
	}
	for _, x := range t.FloatingIPs {
		m.fips[x.ID] = x
	}
	for _, x := range t.Hosts {
		m.hosts[x.Name] = x
	}
	for _, x := range t.LocalVLANs {
		m.vlans[x.Host+"/"+x.NetworkID] = x
	}
	for _, x := range t.SecurityGroups {
		m.groups[x.ID] = x
	}
	for _, x := range t.SecurityGroupRules {
		m.rules[x.ID] = x
	}
	return m
}

func (m *model) topology() *topology.Topology {
	t := &topology.Topology{}
	for _, id := range slices.Sorted(maps.Keys(m.nets)) {
		t.Networks = append(t.Networks, m.nets[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.subnets)) {
		t.Subnets = append(t.Subnets, m.subnets[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.ports)) {
		t.Ports = append(t.Ports, m.ports[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.routers)) {
		t.Routers = append(t.Routers, m.routers[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.fips)) {
		t.FloatingIPs = append(t.FloatingIPs, m.fips[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.hosts)) {
		t.Hosts = append(t.Hosts, m.hosts[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.vlans)) {
		t.LocalVLANs = append(t.LocalVLANs, m.vlans[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.groups)) {
		t.SecurityGroups = append(t.SecurityGroups, m.groups[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.rules)) {
		t.SecurityGroupRules = append(t.SecurityGroupRules, m.rules[id])
	}
	return t
}

// record appends a change of kind for id: obj is the new state, or the last one for a delete.
// The change carries a deep copy, as the store's decoded change log does.
func (m *model) record(kind topology.Kind, id string, op topology.Op, obj any) {
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	rec := map[topology.Kind]func() topology.Record{
		topology.KindNetwork:           func() topology.Record { return new(topology.Network) },
		topology.KindSubnet:            func() topology.Record { return new(topology.Subnet) },
		topology.KindPort:              func() topology.Record { return new(topology.Port) },
		topology.KindRouter:            func() topology.Record { return new(topology.Router) },
		topology.KindFloatingIP:        func() topology.Record { return new(topology.FloatingIP) },
		topology.KindHost:              func() topology.Record { return new(topology.Host) },
		topology.KindLocalVLAN:         func() topology.Record { return new(topology.LocalVLAN) },
		topology.KindSecurityGroup:     func() topology.Record { return new(topology.SecurityGroup) },
		topology.KindSecurityGroupRule: func() topology.Record { return new(topology.SecurityGroupRule) },
	}[kind]()
	if err := json.Unmarshal(b, rec); err != nil {
		panic(err)
	}
	m.log = append(m.log, topology.Change{Revision: m.rev, Seq: len(m.log), Kind: kind, ID: id, Op: op, Object: rec})
}

func setRec[T any](m *model, recs map[string]T, kind topology.Kind, id string, obj T) {
	op := topology.OpCreate
	if _, ok := recs[id]; ok {
		op = topology.OpUpdate
	}
	recs[id] = obj
	m.record(kind, id, op, obj)
}

func delRec[T any](m *model, recs map[string]T, kind topology.Kind, id string) {
	if old, ok := recs[id]; ok {
		delete(recs, id)
		m.record(kind, id, topology.OpDelete, old)
	}
}

func pick[T any](r *rand.Rand, recs map[string]T) (string, bool) {
	if len(recs) == 0 {
		return "", false
	}
	ids := slices.Sorted(maps.Keys(recs))
	return ids[r.IntN(len(ids))], true
}

// mutate makes one random change of the kinds the API and the engine make.
func (m *model) mutate(r *rand.Rand, step int) {
	hostNames := []string{"compute1", "compute2", "network", "compute3", ""}
	host := hostNames[r.IntN(len(hostNames))]
	switch r.IntN(22) {
	case 0, 1, 2: // a VM port on a random subnet and host (and its network's IPv6 subnet, if any)
		sid, _ := pick(r, m.subnets)
		s := m.subnets[sid]
		id := fmt.Sprintf("vm%d", step)
		owner := "compute:nova"
		if r.IntN(5) == 0 {
			owner = topology.OwnerDHCP
		}
		ips := []topology.FixedIP{{SubnetID: sid, IPAddress: fmt.Sprintf("10.9.%d.%d", step/200, step%200+2)}}
		if s.IPVersion == 6 {
			ips = nil
		}
		for _, s6 := range slices.Sorted(maps.Keys(m.subnets)) {
			if m.subnets[s6].NetworkID == s.NetworkID && m.subnets[s6].IPVersion == 6 {
				ips = append(ips, topology.FixedIP{SubnetID: s6, IPAddress: fmt.Sprintf("2001:db8:9:%x::%x", r.IntN(3), step)})
				break
			}
		}
		setRec(m, m.ports, topology.KindPort, id, topology.Port{ID: id, NetworkID: s.NetworkID, MACAddress: fmt.Sprintf("fa:16:3e:10:%02x:%02x", step/256, step%256),
			DeviceOwner: owner, DeviceID: id, HostID: host, FixedIPs: ips})
	case 3: // a port leaves
		if id, ok := pick(r, m.ports); ok {
			delRec(m, m.ports, topology.KindPort, id)
		}
	case 4: // a port moves (live migration) or is unbound
		if id, ok := pick(r, m.ports); ok {
			p := m.ports[id]
			p.HostID = host
			setRec(m, m.ports, topology.KindPort, id, p)
		}
	case 5: // status only: nobody is affected
		if id, ok := pick(r, m.ports); ok {
			p := m.ports[id]
			p.Status = []topology.PortStatus{topology.PortStatusActive, topology.PortStatusDown}[r.IntN(2)]
			setRec(m, m.ports, topology.KindPort, id, p)
		}
	case 6: // a new tenant network with a subnet, sometimes attached to a router
		nid, sid := fmt.Sprintf("net%d", step), fmt.Sprintf("sub%d", step)
		typ := []string{"vxlan", "vxlan", "vlan"}[r.IntN(3)]
		setRec(m, m.nets, topology.KindNetwork, nid, topology.Network{ID: nid, NetworkType: typ, SegmentationID: int64(2000 + step), PhysicalNetwork: "physnet1"})
		setRec(m, m.subnets, topology.KindSubnet, sid, topology.Subnet{ID: sid, NetworkID: nid, IPVersion: 4, CIDR: fmt.Sprintf("10.%d.%d.0/24", 100+step/256, step%256), GatewayIP: fmt.Sprintf("10.%d.%d.1", 100+step/256, step%256),
			EnableDHCP: r.IntN(2) == 0})
		if rid, ok := pick(r, m.routers); ok && r.IntN(2) == 0 {
			pid := fmt.Sprintf("qr%d", step)
			setRec(m, m.ports, topology.KindPort, pid, topology.Port{ID: pid, NetworkID: nid, MACAddress: fmt.Sprintf("fa:16:3e:20:%02x:%02x", step/256, step%256),
				DeviceOwner: topology.OwnerRouterInterfaceDistributed, DeviceID: rid, FixedIPs: []topology.FixedIP{{SubnetID: sid, IPAddress: fmt.Sprintf("10.%d.%d.1", 100+step/256, step%256)}}})
			if m.routers[rid].Gateway != nil {
				gid := fmt.Sprintf("sg%d", step)
				setRec(m, m.ports, topology.KindPort, gid, topology.Port{ID: gid, NetworkID: nid, MACAddress: fmt.Sprintf("fa:16:3e:30:%02x:%02x", step/256, step%256),
					DeviceOwner: topology.OwnerRouterCentralizedSNAT, DeviceID: rid, FixedIPs: []topology.FixedIP{{SubnetID: sid, IPAddress: fmt.Sprintf("10.%d.%d.2", 100+step/256, step%256)}}})
			}
		}
	case 7: // a router interface goes
		for _, id := range slices.Sorted(maps.Keys(m.ports)) {
			if m.ports[id].DeviceOwner == topology.OwnerRouterInterfaceDistributed && r.IntN(3) == 0 {
				delRec(m, m.ports, topology.KindPort, id)
				break
			}
		}
	case 8: // a new router, or a router's gateway goes or comes back
		if rid, ok := pick(r, m.routers); ok && r.IntN(3) > 0 {
			rt := m.routers[rid]
			switch {
			case rt.Gateway != nil && r.IntN(2) == 0: // SNAT failover, or to a host that is not dvr_snat
				rt.SNATHost = host
			case rt.Gateway != nil:
				delRec(m, m.ports, topology.KindPort, rt.Gateway.PortID)
				rt.Gateway, rt.LinkLocal, rt.SNATHost = nil, "", ""
			default:
				gp := fmt.Sprintf("qg%d", step)
				setRec(m, m.ports, topology.KindPort, gp, topology.Port{ID: gp, NetworkID: "ext-0000000000000", MACAddress: fmt.Sprintf("fa:16:3e:40:%02x:%02x", step/256, step%256),
					DeviceOwner: topology.OwnerRouterGateway, DeviceID: rid, FixedIPs: []topology.FixedIP{{SubnetID: "subx-000000000000", IPAddress: fmt.Sprintf("172.24.4.%d", 100+step%100)}}})
				rt.Gateway = &topology.GatewayInfo{NetworkID: "ext-0000000000000", EnableSNAT: true, PortID: gp}
				rt.LinkLocal = fmt.Sprintf("169.254.64.%d/31", 2*(step%100))
				rt.SNATHost = host
			}
			setRec(m, m.routers, topology.KindRouter, rid, rt)
		} else {
			rid := fmt.Sprintf("r%d", step)
			setRec(m, m.routers, topology.KindRouter, rid, topology.Router{ID: rid, Distributed: true})
		}
	case 9: // a floating IP on a VM, or one goes
		if fid, ok := pick(r, m.fips); ok && r.IntN(2) == 0 {
			delRec(m, m.fips, topology.KindFloatingIP, fid)
			break
		}
		pid, ok := pick(r, m.ports)
		rid, ok2 := pick(r, m.routers)
		if ok && ok2 && len(m.ports[pid].FixedIPs) > 0 {
			id := fmt.Sprintf("fip%d", step)
			setRec(m, m.fips, topology.KindFloatingIP, id, topology.FloatingIP{ID: id, FloatingNetworkID: "ext-0000000000000",
				FloatingIPAddress: fmt.Sprintf("172.24.4.%d", 200+step%50), PortID: pid, FixedIPAddress: m.ports[pid].FixedIPs[0].IPAddress, RouterID: rid})
		}
	case 10: // an agent gateway port for a host
		id := fmt.Sprintf("fg%d", step)
		setRec(m, m.ports, topology.KindPort, id, topology.Port{ID: id, NetworkID: "ext-0000000000000", MACAddress: fmt.Sprintf("fa:16:3e:50:%02x:%02x", step/256, step%256),
			DeviceOwner: topology.OwnerFloatingIPAgentGateway, DeviceID: host, HostID: host, FixedIPs: []topology.FixedIP{{SubnetID: "subx-000000000000", IPAddress: fmt.Sprintf("172.24.4.%d", 150+step%50)}}})
	case 11: // hosts: a heartbeat (nobody affected), a new host, a mode change, or one leaves
		name := []string{"compute1", "compute2", "network", "compute3"}[r.IntN(4)]
		h, ok := m.hosts[name]
		switch {
		case !ok:
			setRec(m, m.hosts, topology.KindHost, name, topology.Host{Name: name, Mode: topology.HostModeDVR, TunnelIP: "192.168.248.9", MACAddress: "fa:16:3f:00:00:09",
				Bridges: map[string]string{"br-int": "0000000000000109", "br-tun": "0000000000000209", "br-ex": "0000000000000309"}})
		case r.IntN(4) == 0:
			delRec(m, m.hosts, topology.KindHost, name)
		case r.IntN(3) == 0:
			h.Mode = map[topology.HostMode]topology.HostMode{topology.HostModeDVR: topology.HostModeDVRSNAT, topology.HostModeDVRSNAT: topology.HostModeDVR}[h.Mode]
			setRec(m, m.hosts, topology.KindHost, name, h)
		default:
			h.AppliedRevision = m.rev
			setRec(m, m.hosts, topology.KindHost, name, h)
		}
	case 12: // a subnet's name changes, or DHCP is turned on or off
		if sid, ok := pick(r, m.subnets); ok {
			s := m.subnets[sid]
			s.Name = fmt.Sprintf("renamed%d", step)
			if r.IntN(2) == 0 {
				s.EnableDHCP = !s.EnableDHCP
			}
			setRec(m, m.subnets, topology.KindSubnet, sid, s)
		}
	case 13: // a network goes with its subnets and ports
		if nid, ok := pick(r, m.nets); ok && nid != "ext-0000000000000" && r.IntN(3) == 0 {
			for _, id := range slices.Sorted(maps.Keys(m.ports)) {
				if m.ports[id].NetworkID == nid {
					delRec(m, m.ports, topology.KindPort, id)
				}
			}
			for _, id := range slices.Sorted(maps.Keys(m.subnets)) {
				if m.subnets[id].NetworkID == nid {
					delRec(m, m.subnets, topology.KindSubnet, id)
				}
			}
			delRec(m, m.nets, topology.KindNetwork, nid)
		}
	case 14: // a router goes with its ports
		if rid, ok := pick(r, m.routers); ok && r.IntN(4) == 0 {
			for _, id := range slices.Sorted(maps.Keys(m.ports)) {
				if topology.IsRouterPort(m.ports[id].DeviceOwner) && m.ports[id].DeviceID == rid {
					delRec(m, m.ports, topology.KindPort, id)
				}
			}
			delRec(m, m.routers, topology.KindRouter, rid)
		}
	case 15: // a network's type or segment changes
		if nid, ok := pick(r, m.nets); ok {
			n := m.nets[nid]
			n.SegmentationID++
			setRec(m, m.nets, topology.KindNetwork, nid, n)
		}
	case 16, 17: // a VM port joins or leaves a group, with port security on
		id, ok := pickVM(r, m)
		gid, ok2 := pick(r, m.groups)
		if !ok || !ok2 {
			break
		}
		p := m.ports[id]
		p.PortSecurityEnabled = true
		if i := slices.Index(p.SecurityGroups, gid); i >= 0 {
			p.SecurityGroups = slices.Delete(slices.Clone(p.SecurityGroups), i, i+1)
		} else {
			p.SecurityGroups = append(slices.Clone(p.SecurityGroups), gid)
			slices.Sort(p.SecurityGroups)
		}
		setRec(m, m.ports, topology.KindPort, id, p)
	case 18: // a new group, a rule (naming a remote group, a prefix or anywhere), or a rule goes
		switch k := r.IntN(4); {
		case k == 0 || len(m.groups) == 0:
			id := fmt.Sprintf("sgx%d", step)
			setRec(m, m.groups, topology.KindSecurityGroup, id, topology.SecurityGroup{ID: id, Name: id, Stateful: r.IntN(4) > 0, Tag: uint32(100 + step)})
		case k == 1 && len(m.rules) > 0:
			rid, _ := pick(r, m.rules)
			delRec(m, m.rules, topology.KindSecurityGroupRule, rid)
		default:
			gid, _ := pick(r, m.groups)
			rule := topology.SecurityGroupRule{ID: fmt.Sprintf("rule%d", step), SecurityGroupID: gid, EtherType: topology.EtherTypeIPv4,
				Direction: []string{topology.DirectionIngress, topology.DirectionEgress}[r.IntN(2)], Protocol: []string{"", "tcp", "icmp"}[r.IntN(3)]}
			if r.IntN(3) == 0 {
				rule.EtherType = topology.EtherTypeIPv6
			}
			switch r.IntN(3) {
			case 0:
				rule.RemoteGroupID, _ = pick(r, m.groups)
			case 1:
				rule.RemoteIPPrefix = fmt.Sprintf("10.9.%d.0/24", r.IntN(3))
				if rule.EtherType == topology.EtherTypeIPv6 {
					rule.RemoteIPPrefix = fmt.Sprintf("2001:db8:9:%x::/64", r.IntN(3))
				}
			}
			setRec(m, m.rules, topology.KindSecurityGroupRule, rule.ID, rule)
		}
	case 19: // a group goes with the rules of it or naming it, once no port is in it
		gid, ok := pick(r, m.groups)
		if !ok {
			break
		}
		for _, p := range m.ports {
			if slices.Contains(p.SecurityGroups, gid) {
				return
			}
		}
		for _, id := range slices.Sorted(maps.Keys(m.rules)) {
			if rl := m.rules[id]; rl.SecurityGroupID == gid || rl.RemoteGroupID == gid {
				delRec(m, m.rules, topology.KindSecurityGroupRule, id)
			}
		}
		delRec(m, m.groups, topology.KindSecurityGroup, gid)
	case 20: // a VM port's allowed address pair comes or goes, or its port security goes
		id, ok := pickVM(r, m)
		if !ok {
			break
		}
		p := m.ports[id]
		switch {
		case len(p.SecurityGroups) == 0 && p.PortSecurityEnabled && r.IntN(2) == 0:
			p.PortSecurityEnabled = false
		case len(p.AllowedAddressPairs) > 0:
			p.AllowedAddressPairs = nil
		case r.IntN(3) == 0:
			p.AllowedAddressPairs = []topology.AddressPair{{IPAddress: fmt.Sprintf("2001:db8:9:%x::%x:0/112", r.IntN(3), r.IntN(100))}}
		default:
			p.AllowedAddressPairs = []topology.AddressPair{{IPAddress: fmt.Sprintf("10.9.%d.%d/31", r.IntN(3), 2*r.IntN(100))}}
		}
		setRec(m, m.ports, topology.KindPort, id, p)
	case 21: // an IPv6 SLAAC subnet on a tenant network, or one goes (the API takes its addresses from the ports first)
		nid, ok := pick(r, m.nets)
		if !ok || nid == "ext-0000000000000" {
			break
		}
		for _, sid := range slices.Sorted(maps.Keys(m.subnets)) {
			if s := m.subnets[sid]; s.NetworkID == nid && s.IPVersion == 6 {
				for _, id := range slices.Sorted(maps.Keys(m.ports)) {
					p := m.ports[id]
					if i := slices.IndexFunc(p.FixedIPs, func(f topology.FixedIP) bool { return f.SubnetID == sid }); i >= 0 {
						p.FixedIPs = slices.Delete(slices.Clone(p.FixedIPs), i, i+1)
						setRec(m, m.ports, topology.KindPort, id, p)
					}
				}
				delRec(m, m.subnets, topology.KindSubnet, sid)
				return
			}
		}
		sid := fmt.Sprintf("sub6-%d", step)
		setRec(m, m.subnets, topology.KindSubnet, sid, topology.Subnet{ID: sid, NetworkID: nid, IPVersion: 6, CIDR: fmt.Sprintf("2001:db8:9:%x::/64", r.IntN(3)),
			EnableDHCP: true, IPv6RAMode: topology.IPv6SLAAC, IPv6AddressMode: topology.IPv6SLAAC})
		for _, id := range slices.Sorted(maps.Keys(m.ports)) {
			if p := m.ports[id]; p.NetworkID == nid && strings.HasPrefix(p.DeviceOwner, "compute:") && r.IntN(2) == 0 {
				p.FixedIPs = append(slices.Clone(p.FixedIPs), topology.FixedIP{SubnetID: sid, IPAddress: fmt.Sprintf("2001:db8:9:%x::%x", r.IntN(3), 0x10000+step*16+len(m.log))})
				setRec(m, m.ports, topology.KindPort, id, p)
			}
		}
	}
}

// pickVM picks a VM port.
func pickVM(r *rand.Rand, m *model) (string, bool) {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(m.ports)) {
		if strings.HasPrefix(m.ports[id].DeviceOwner, "compute:") {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return "", false
	}
	return ids[r.IntN(len(ids))], true
}

// allocateVLANs does what the engine does after each batch for the hosts Apply reported:
// a local VLAN for every present network, none for absent ones.
func (m *model) allocateVLANs(v *topology.View, hosts []string) {
	for h, nets := range v.MissingVLANs(hosts) {
		used := map[uint16]bool{}
		for _, lv := range m.vlans {
			if lv.Host == h {
				used[lv.VLAN] = true
			}
		}
		vl := uint16(1)
		for _, n := range nets {
			for used[vl] {
				vl++
			}
			used[vl] = true
			setRec(m, m.vlans, topology.KindLocalVLAN, h+"/"+n, topology.LocalVLAN{Host: h, NetworkID: n, VLAN: vl})
		}
	}
	for h, nets := range v.StaleVLANs(hosts) {
		for _, n := range nets {
			delRec(m, m.vlans, topology.KindLocalVLAN, h+"/"+n)
		}
	}
}

// render is everything a host gets at View v: its bridges' flows (with every port it
// would have plugged) and its namespace plan, and the networks it carries.
func render(v *topology.View, host string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "networks %v\n", v.NetworksOn(host))
	if v.Host(host) == nil {
		return sb.String()
	}
	for _, b := range topology.Bridges() {
		sb.WriteString(renderFlows(b, Flows(v, seedBridge(v, host, b))))
	}
	p := Plan(v, host)
	p.Revision = 0
	j, _ := json.Marshal(p)
	sb.Write(j)
	return sb.String()
}

// partCache is what the engine keeps per bridge: each part's flows, recomputed only when
// Apply reports the part (or the whole host).
type partCache struct {
	flowsOf map[string]map[topology.Bridge]map[string][]ofproto.Flow // host -> bridge -> part -> flows
	ports   map[string]map[topology.Bridge]map[string]uint32         // host -> bridge -> its ports when computed
}

// refresh recomputes host's parts: all of them (full) or those listed, as pushBridge does.
func (c partCache) refresh(v *topology.View, host string, full bool, parts map[string]bool) {
	if v.Host(host) == nil {
		delete(c.flowsOf, host)
		delete(c.ports, host)
		return
	}
	if full || c.flowsOf[host] == nil {
		c.flowsOf[host] = map[topology.Bridge]map[string][]ofproto.Flow{}
	}
	for _, b := range topology.Bridges() {
		st := seedBridge(v, host, b)
		have := c.flowsOf[host][b]
		if have == nil {
			have = map[string][]ofproto.Flow{}
			c.flowsOf[host][b] = have
		}
		// As the engine does: every part of a whole host or of a bridge whose ports
		// changed (a port-status: the helper plugged what a new plan has), else only the
		// parts reported (a reported part no longer present goes; nothing else is looked
		// at).
		whole := full || !maps.Equal(c.ports[host][b], st.Ports)
		if c.ports[host] == nil {
			c.ports[host] = map[topology.Bridge]map[string]uint32{}
		}
		c.ports[host][b] = st.Ports
		if whole {
			clear(have)
			for _, part := range Parts(v, st) {
				have[part] = FlowsOf(v, st, part)
			}
			continue
		}
		for part := range parts {
			if HasPart(v, st, part) {
				have[part] = FlowsOf(v, st, part)
			} else {
				delete(have, part)
			}
		}
	}
}

// flows renders host's cached flows the way render does, joined as Flows joins them
// (conjunctive flows of one key in several parts merged), sorted.
func (c partCache) flows(host string) string {
	var sb strings.Builder
	for _, b := range topology.Bridges() {
		var parts [][]ofproto.Flow
		for _, part := range slices.Sorted(maps.Keys(c.flowsOf[host][b])) {
			parts = append(parts, c.flowsOf[host][b][part])
		}
		lines := strings.Split(strings.TrimSuffix(renderFlows(b, joinParts(parts)), "\n"), "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return l == "" })
		slices.Sort(lines)
		sb.WriteString(string(b) + "\n" + strings.Join(lines, "\n") + "\n")
	}
	return sb.String()
}

func sortedFlows(v *topology.View, host string) string {
	var sb strings.Builder
	for _, b := range topology.Bridges() {
		lines := strings.Split(strings.TrimSuffix(renderFlows(b, Flows(v, seedBridge(v, host, b))), "\n"), "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return l == "" })
		slices.Sort(lines)
		sb.WriteString(string(b) + "\n" + strings.Join(lines, "\n") + "\n")
	}
	return sb.String()
}

func TestApplyMatchesNewView(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			m := newModel(withVLANs(withVLANNet(seedTopology())))
			v := topology.NewView(m.topology(), 0)
			hosts := []string{"compute1", "compute2", "network", "compute3", ""}
			before, beforePlan := map[string]string{}, map[string]string{}
			plans := map[string]plan.Plan{}
			cache := partCache{flowsOf: map[string]map[topology.Bridge]map[string][]ofproto.Flow{}, ports: map[string]map[topology.Bridge]map[string]uint32{}}
			for _, h := range hosts {
				before[h] = render(v, h)
				beforePlan[h] = planOf(v, h)
				plans[h] = Plan(v, h)
				cache.refresh(v, h, true, nil)
			}
			for step := 1; step <= 150; step++ {
				m.rev = int64(step)
				m.log = nil
				for range 1 + r.IntN(3) {
					m.mutate(r, step*10+len(m.log))
				}
				aff, err := v.Apply(m.log)
				if err != nil {
					t.Fatal(err)
				}
				// The engine allocates VLANs for the reported hosts, then applies those
				// changes too.
				m.log = nil
				m.allocateVLANs(v, slices.Sorted(maps.Keys(aff.Hosts)))
				if aff.All {
					m.allocateVLANs(v, append(v.HostNames(), v.VLANHosts()...))
				}
				aff2, err := v.Apply(m.log)
				if err != nil {
					t.Fatal(err)
				}
				full := topology.NewView(m.topology(), v.Revision)
				for _, h := range hosts {
					got, want := render(v, h), render(full, h)
					if got != want {
						t.Fatalf("step %d: host %q: incremental view differs from a fresh one:\n%s", step, h, lineDiff(got, want))
					}
					fullHost := aff.All || aff.Hosts[h] || aff2.All || aff2.Hosts[h]
					if !fullHost && got != before[h] {
						// Only flows and (when reported) the plan may differ, flows only in the parts reported.
						if strings.Split(got, "\n")[0] != strings.Split(before[h], "\n")[0] {
							t.Fatalf("step %d: host %q: networks changed but the host was not reported", step, h)
						}
						if p := planOf(v, h); p != beforePlan[h] && aff.Plans[h] == nil && aff2.Plans[h] == nil {
							t.Fatalf("step %d: host %q: plan changed but neither the host nor its plan was reported:\n%s", step, h, lineDiff(p, beforePlan[h]))
						}
					}
					beforePlan[h] = planOf(v, h)
					// The engine recomputes a reported plan's reported namespaces only.
					if changed := mapsUnion(aff.Plans[h], aff2.Plans[h]); fullHost {
						plans[h] = Plan(v, h)
					} else if len(changed) > 0 {
						plans[h] = Replan(v, h, plans[h], changed)
					}
					if v.Host(h) != nil {
						p := plans[h]
						p.Revision = 0
						if j, _ := json.Marshal(p); string(j) != planOf(full, h) {
							t.Fatalf("step %d: host %q: plan recomputed by namespaces (%v) differs from a fresh view's:\n%s", step, h,
								slices.Sorted(maps.Keys(mapsUnion(aff.Plans[h], aff2.Plans[h]))), lineDiff(string(j), planOf(full, h)))
						}
					}
					parts := maps.Clone(aff.Parts[h])
					if parts == nil {
						parts = map[string]bool{}
					}
					maps.Copy(parts, aff2.Parts[h])
					cache.refresh(v, h, fullHost, parts)
					if v.Host(h) != nil {
						if got, want := cache.flows(h), sortedFlows(full, h); got != want {
							t.Fatalf("step %d: host %q: flows recomputed by parts (%v) differ from a fresh view:\n%s", step, h, parts, lineDiff(got, want))
						}
					}
					before[h] = got
				}
				if missing := full.MissingVLANs(full.HostNames()); len(missing) > 0 {
					t.Fatalf("step %d: networks left without a local VLAN: %v", step, missing)
				}
			}
		})
	}
}

func mapsUnion(a, b map[string]bool) map[string]bool {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]bool{}
	}
	maps.Copy(out, b)
	return out
}

func planOf(v *topology.View, host string) string {
	if v.Host(host) == nil {
		return ""
	}
	p := Plan(v, host)
	p.Revision = 0
	j, _ := json.Marshal(p)
	return string(j)
}

// lineDiff lists the lines only in got (+) and only in want (-).
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var sb strings.Builder
	for _, l := range g {
		if !slices.Contains(w, l) {
			sb.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			sb.WriteString("- " + l + "\n")
		}
	}
	return sb.String()
}
