package topology

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
)

// A View is built and kept current by one code path: records go into the primary maps and
// their indexes (set*), which note what they touch in a pending set; derive then recomputes
// only what depends on the touched records — router attachments, each touched host's
// placement, each touched network's endpoints, the floating IPs — and collects the hosts whose
// flows or plan may differ. NewView is that path with every record new.

// NewView indexes t.
func NewView(t *Topology, revision int64) *View {
	v := emptyView(revision)
	d := newPending()
	for i := range t.Hosts {
		v.setHost(d, t.Hosts[i].Name, &t.Hosts[i])
	}
	for i := range t.Networks {
		v.setNetwork(d, t.Networks[i].ID, &t.Networks[i])
	}
	for i := range t.Subnets {
		v.setSubnet(d, t.Subnets[i].ID, &t.Subnets[i])
	}
	for i := range t.Ports {
		v.setPort(d, t.Ports[i].ID, &t.Ports[i])
	}
	for i := range t.Routers {
		v.setRouter(d, t.Routers[i].ID, &t.Routers[i])
	}
	for i := range t.FloatingIPs {
		v.setFIP(d, t.FloatingIPs[i].ID, &t.FloatingIPs[i])
	}
	for _, lv := range t.LocalVLANs {
		v.setLocalVLAN(d, lv, false)
	}
	for i := range t.SecurityGroups {
		v.setGroup(d, t.SecurityGroups[i].ID, &t.SecurityGroups[i])
	}
	for i := range t.SecurityGroupRules {
		v.setRule(d, t.SecurityGroupRules[i].ID, &t.SecurityGroupRules[i])
	}
	d.all = true
	v.derive(d)
	return v
}

func emptyView(revision int64) *View {
	return &View{
		Revision:      revision,
		hosts:         map[string]*HostInfo{},
		networks:      map[string]*NetInfo{},
		subnets:       map[string]*SubnetInfo{},
		ports:         map[string]*PortInfo{},
		routers:       map[string]*RouterInfo{},
		fipRecords:    map[string]*FloatingIP{},
		localVLANs:    map[string]map[string]uint16{},
		vlanNets:      map[hostVLAN]string{},
		portsOnHost:   map[string]map[string]*PortInfo{},
		portsOnNet:    map[string]map[string]*PortInfo{},
		portsOfRouter: map[string]map[string]*PortInfo{},
		fipsOfPort:    map[string]int{},
		agentGW:       map[agentGWKey]map[string]*PortInfo{},
		dhcpPorts:     map[string]map[string]*PortInfo{},
		netsOnHost:    map[string]map[string]bool{},
		hostsOfNet:    map[string]map[string]bool{},
		routersOnHost: map[string]map[string]bool{},
		hostsOfRouter: map[string]map[string]bool{},
		snatHost:      map[string]string{},
		snatOnHost:    map[string]map[string]bool{},
		fipsOnHost:    map[string][]*FIPInfo{},
		bridgeOf:      map[uint64]hostBridge{},
		endpoints:     map[string][]Endpoint{},
		addrs:         map[string]map[netip.Addr]*PortInfo{},
		holds:         map[string]portHold{},
		groups:        map[string]*SecurityGroup{},
		rules:         map[string]*SecurityGroupRule{},
		rulesOfGroup:  map[string]map[string]*SecurityGroupRule{},
		members:       map[string]map[string]*PortInfo{},
		remoteOf:      map[string]map[string]*SecurityGroupRule{},
		groupPrefixes: map[string][]netip.Prefix{},
		remoteUses:    map[string]map[string]int{},
	}
}

// Affected says what a batch of changes may have changed.
type Affected struct {
	// All is set when everything may have changed (a host registered, changed or left).
	All bool
	// Hosts may have changed anywhere: every part of their bridges' flows, their namespace
	// plan, the networks they carry (registered hosts or not).
	Hosts map[string]bool
	// Parts lists, for other hosts, the parts of their bridges' flows (see FlowsOf) that
	// may have changed; nothing else of theirs did.
	Parts map[string]map[string]bool
	// Plans lists other hosts whose namespace plan may have changed, with the names of the
	// namespaces that may have (a port came, went or changed on a subnet of a router they
	// run: its permanent neighbour entry in the router's qrouter- and snat- namespaces; the
	// network's DHCP port changed: its qmeta- namespace); nothing else of their plan did.
	Plans map[string]map[string]bool
	// Ports are the ports whose record changed (their status may need updating).
	Ports map[string]bool
	// Moves are the VM ports whose binding moved to another host: port -> the host it
	// left (the engine may hold them there until they are plugged on the new one).
	Moves map[string]string
}

// Apply brings v to the state after changes (in change-log order) and says which hosts may
// be affected. v keeps the changes' records: callers do not modify them afterwards. A
// change whose object is not of its kind is an error, and v must then be rebuilt from a
// snapshot (it may hold part of the batch).
func (v *View) Apply(changes []Change) (Affected, error) {
	d := newPending()
	for _, c := range changes {
		if err := v.applyOne(d, c); err != nil {
			return Affected{}, fmt.Errorf("change %d.%d (%s %s %s): %w", c.Revision, c.Seq, c.Op, c.Kind, c.ID, err)
		}
		v.Revision = max(v.Revision, c.Revision)
	}
	return v.finish(d), nil
}

// finish derives what the record changes of d imply and says what they affected.
func (v *View) finish(d *pending) Affected {
	v.derive(d)
	for h := range d.affected {
		delete(d.parts, h)
		delete(d.plans, h)
	}
	return Affected{All: d.all, Hosts: d.affected, Parts: d.parts, Plans: d.plans, Ports: d.ports, Moves: d.moves}
}

func (v *View) applyOne(d *pending, c Change) error {
	if c.Object == nil || c.Object.Kind() != c.Kind {
		return fmt.Errorf("object %T is not a %s", c.Object, c.Kind)
	}
	var del bool
	switch c.Op {
	case OpCreate, OpUpdate:
	case OpDelete:
		del = true
	default:
		return fmt.Errorf("unknown op %q", c.Op)
	}
	switch o := c.Object.(type) {
	case *Network:
		v.setNetwork(d, c.ID, orNil(o, del))
	case *Subnet:
		v.setSubnet(d, c.ID, orNil(o, del))
	case *Port:
		v.setPort(d, c.ID, orNil(o, del))
	case *Router:
		v.setRouter(d, c.ID, orNil(o, del))
	case *FloatingIP:
		v.setFIP(d, c.ID, orNil(o, del))
	case *Host:
		v.setHost(d, c.ID, orNil(o, del))
	case *LocalVLAN:
		v.setLocalVLAN(d, *o, del)
	case *SecurityGroup:
		v.setGroup(d, c.ID, orNil(o, del))
	case *SecurityGroupRule:
		v.setRule(d, c.ID, orNil(o, del))
	case *SubnetPool:
		// API state only: a subnet allocated from a pool is a subnet like any other.
	}
	return nil
}

// orNil returns the record a set* call takes: rec, or nil for a delete.
func orNil[T any](rec *T, del bool) *T {
	if del {
		return nil
	}
	return rec
}

// pending is what a batch of record changes touched, for derive.
type pending struct {
	all       bool
	hostSet   bool                       // hosts registered, changed or left: sort them again
	routers   map[string]bool            // attachments, gateway and snat placement to recompute
	oldIfaces []*SubnetInfo              // interfaces of those routers before the batch
	hosts     map[string]bool            // placement to recompute
	nets      map[string]bool            // endpoints to recompute
	fips      bool                       // floating IPs to recompute
	affected  map[string]bool            // hosts where anything may have changed
	parts     map[string]map[string]bool // host -> flow parts that may have changed
	neighRtrs map[string]bool            // routers whose namespaces' neighbour entries may have changed
	plans     map[string]map[string]bool // host -> namespaces of its plan that may have changed
	ports     map[string]bool
	moves     map[string]string // VM port -> host its binding left
	noMoves   bool              // a hold or release: not a binding move
	groups    map[string]bool   // security groups whose members changed
}

func (d *pending) touchPart(host, part string) {
	m := d.parts[host]
	if m == nil {
		m = map[string]bool{}
		d.parts[host] = m
	}
	m[part] = true
}

func newPending() *pending {
	return &pending{routers: map[string]bool{}, hosts: map[string]bool{}, nets: map[string]bool{},
		affected: map[string]bool{}, parts: map[string]map[string]bool{}, neighRtrs: map[string]bool{},
		plans: map[string]map[string]bool{}, ports: map[string]bool{}, moves: map[string]string{}, groups: map[string]bool{}}
}

func (d *pending) touchRouter(v *View, id string) {
	if d.routers[id] {
		return
	}
	d.routers[id] = true
	if r := v.routers[id]; r != nil {
		d.oldIfaces = append(d.oldIfaces, r.Interfaces...)
	}
}

func addAll(dst, src map[string]bool) {
	for k := range src {
		dst[k] = true
	}
}

// samePortShape reports whether two versions of a port differ only in what the policy never reads
// (status, names, timestamps): then the change affects nobody's flows.
func samePortShape(a, b *Port) bool {
	return a.NetworkID == b.NetworkID && a.MACAddress == b.MACAddress && a.DeviceOwner == b.DeviceOwner &&
		a.DeviceID == b.DeviceID && a.HostID == b.HostID && slices.Equal(a.FixedIPs, b.FixedIPs) &&
		a.PortSecurityEnabled == b.PortSecurityEnabled && slices.Equal(a.SecurityGroups, b.SecurityGroups) &&
		slices.Equal(a.AllowedAddressPairs, b.AllowedAddressPairs)
}

// onlyGroupsDiffer reports whether ports a and b differ in their security groups alone.
func onlyGroupsDiffer(a, b *Port) bool {
	c := *b
	c.SecurityGroups = a.SecurityGroups
	return samePortShape(a, &c)
}

func (v *View) setPort(d *pending, id string, p *Port) {
	p = v.heldRecord(id, fipGatewayV4(p))
	d.ports[id] = true
	old := v.ports[id]
	if old != nil && p != nil && !d.noMoves && old.HostID != "" && p.HostID != "" && old.HostID != p.HostID &&
		IsDVRServiced(p.DeviceOwner) {
		d.moves[id] = old.HostID
	}
	if old != nil && p != nil && samePortShape(old.Port, p) {
		old.Port = p
		return
	}
	if old != nil && p != nil && onlyGroupsDiffer(old.Port, p) {
		// A port joining or leaving groups changes its own firewall flows (its network's
		// part on its host) and the groups' members, nothing of L2, L3 or the plans.
		v.unindexMember(d, old)
		old.Port = p
		v.indexMember(d, old)
		if p.HostID != "" {
			d.touchPart(p.HostID, p.NetworkID)
		}
		return
	}
	if old != nil {
		v.touchPort(d, old)
		v.unindexMember(d, old)
		delSet(v.portsOnHost, old.HostID, id)
		delSet(v.portsOnNet, old.NetworkID, id)
		if IsRouterPort(old.DeviceOwner) {
			delSet(v.portsOfRouter, old.DeviceID, id)
		}
		if old.DeviceOwner == OwnerFloatingIPAgentGateway {
			delAgentGW(v.agentGW, agentGWKey{old.HostID, old.NetworkID}, id)
		}
		if old.DeviceOwner == OwnerDHCP {
			delSet(v.dhcpPorts, old.NetworkID, id)
		}
		delete(v.ports, id)
	}
	if p == nil {
		return
	}
	pi := &PortInfo{Port: p}
	pi.MAC, _ = net.ParseMAC(p.MACAddress)
	for _, ip := range p.FixedIPs {
		if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
			pi.IPs = append(pi.IPs, PortIP{SubnetID: ip.SubnetID, Addr: a})
		}
	}
	v.ports[id] = pi
	if p.HostID != "" {
		putSet(v.portsOnHost, p.HostID, id, pi)
	}
	putSet(v.portsOnNet, p.NetworkID, id, pi)
	if IsRouterPort(p.DeviceOwner) {
		putSet(v.portsOfRouter, p.DeviceID, id, pi)
	}
	if p.DeviceOwner == OwnerFloatingIPAgentGateway {
		k := agentGWKey{p.HostID, p.NetworkID}
		if v.agentGW[k] == nil {
			v.agentGW[k] = map[string]*PortInfo{}
		}
		v.agentGW[k][id] = pi
	}
	if p.DeviceOwner == OwnerDHCP && p.HostID == "" {
		putSet(v.dhcpPorts, p.NetworkID, id, pi)
	}
	v.indexMember(d, pi)
	v.touchPort(d, pi)
}

func (v *View) touchPort(d *pending, p *PortInfo) {
	d.nets[p.NetworkID] = true
	if p.HostID != "" {
		d.hosts[p.HostID] = true
	}
	if p.DeviceOwner == OwnerDHCP && p.HostID == "" {
		// The network's DHCP port is its metadata proxy's link in every host's qmeta-
		// namespace of the network.
		for h := range v.hostsOfNet[p.NetworkID] {
			putSet(d.plans, h, plan.PrefixMeta+p.NetworkID, true)
		}
	}
	if IsRouterPort(p.DeviceOwner) {
		d.touchRouter(v, p.DeviceID)
	}
	if p.DeviceOwner == OwnerFloatingIPAgentGateway || v.fipsOfPort[p.ID] > 0 {
		d.fips = true
	}
	for _, ip := range p.IPs {
		if s := v.subnets[ip.SubnetID]; s != nil && s.RouterID != "" {
			d.neighRtrs[s.RouterID] = true
		}
	}
}

func putSet[V any](m map[string]map[string]V, key, id string, val V) {
	s := m[key]
	if s == nil {
		s = map[string]V{}
		m[key] = s
	}
	s[id] = val
}

func delSet[V any](m map[string]map[string]V, key, id string) {
	if s := m[key]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(m, key)
		}
	}
}

func (v *View) setNetwork(d *pending, id string, n *Network) {
	d.nets[id] = true
	d.fips = true
	addAll(d.hosts, v.hostsOfNet[id])
	old := v.networks[id]
	if n == nil {
		delete(v.networks, id)
		return
	}
	ni := &NetInfo{Network: n}
	if old != nil {
		ni.SubnetIDs = old.SubnetIDs
	}
	v.networks[id] = ni
}

func (v *View) setSubnet(d *pending, id string, s *Subnet) {
	d.fips = true
	if old := v.subnets[id]; old != nil {
		d.nets[old.NetworkID] = true
		addAll(d.hosts, v.hostsOfNet[old.NetworkID])
		if rid := old.attachedRouter(); rid != "" {
			d.touchRouter(v, rid)
		}
		if n := v.networks[old.NetworkID]; n != nil {
			n.SubnetIDs = slices.DeleteFunc(slices.Clone(n.SubnetIDs), func(x string) bool { return x == id })
		}
		delete(v.subnets, id)
	}
	if s == nil {
		return
	}
	si := &SubnetInfo{Subnet: s}
	si.Prefix, _ = netip.ParsePrefix(s.CIDR)
	si.Gateway, _ = netip.ParseAddr(s.GatewayIP)
	v.subnets[id] = si
	if n := v.networks[s.NetworkID]; n != nil {
		ids := append(slices.Clone(n.SubnetIDs), id)
		slices.Sort(ids)
		n.SubnetIDs = ids
	}
	d.nets[s.NetworkID] = true
	addAll(d.hosts, v.hostsOfNet[s.NetworkID])
	for _, p := range v.portsOnNet[s.NetworkID] {
		if IsRouterPort(p.DeviceOwner) {
			d.touchRouter(v, p.DeviceID)
		}
	}
}

func (v *View) setRouter(d *pending, id string, r *Router) {
	d.touchRouter(v, id)
	d.fips = true
	if r == nil {
		delete(v.routers, id)
		return
	}
	v.routers[id] = &RouterInfo{Router: r}
}

func (v *View) setFIP(d *pending, id string, f *FloatingIP) {
	d.fips = true
	if old := v.fipRecords[id]; old != nil {
		if old.PortID != "" {
			if v.fipsOfPort[old.PortID]--; v.fipsOfPort[old.PortID] <= 0 {
				delete(v.fipsOfPort, old.PortID)
			}
			if p := v.ports[old.PortID]; p != nil && p.HostID != "" {
				d.affected[p.HostID] = true
			}
		}
		delete(v.fipRecords, id)
	}
	if f == nil {
		return
	}
	v.fipRecords[id] = f
	if f.PortID != "" {
		v.fipsOfPort[f.PortID]++
		if p := v.ports[f.PortID]; p != nil && p.HostID != "" {
			d.affected[p.HostID] = true
		}
	}
}

// setHost registers, changes or removes a host. A change of what the policy reads (tunnel IP,
// mode, bridges, DVR MAC) affects every host; heartbeats and applied revisions affect none.
func (v *View) setHost(d *pending, name string, h *Host) {
	old := v.hosts[name]
	if old != nil && h != nil && old.record.TunnelIP == h.TunnelIP && old.record.Mode == h.Mode &&
		old.record.MACAddress == h.MACAddress && maps.Equal(old.record.Bridges, h.Bridges) {
		old.record = h
		return
	}
	d.all = true
	if old != nil {
		for _, id := range old.Bridges {
			if hb, ok := v.bridgeOf[id]; ok && hb.host == name {
				delete(v.bridgeOf, id)
			}
		}
		delete(v.hosts, name)
	}
	if h != nil {
		hi := &HostInfo{Name: h.Name, Mode: h.Mode, Bridges: map[Bridge]uint64{}, record: h}
		hi.TunnelIP, _ = netip.ParseAddr(h.TunnelIP)
		hi.DVRMAC, _ = net.ParseMAC(h.MACAddress)
		for br, dpid := range h.Bridges {
			if d, err := ofproto.ParseDPID(dpid); err == nil {
				id := uint64(d)
				hi.Bridges[Bridge(br)] = id
				v.bridgeOf[id] = hostBridge{host: name, bridge: Bridge(br)}
			}
		}
		v.hosts[name] = hi
	}
	d.hostSet = true
}

// indexHosts sorts the host names and the dvr_snat hosts after hosts changed.
func (v *View) indexHosts() {
	v.hostNames = slices.Sorted(maps.Keys(v.hosts))
	v.snatHosts = v.snatHosts[:0:0]
	for _, n := range v.hostNames {
		if v.hosts[n].Mode == HostModeDVRSNAT {
			v.snatHosts = append(v.snatHosts, n)
		}
	}
}

func (v *View) setLocalVLAN(d *pending, lv LocalVLAN, del bool) {
	d.touchPart(lv.Host, lv.NetworkID)
	if n := v.networks[lv.NetworkID]; n != nil && n.Physical() {
		d.affected[lv.Host] = true // every peer's classifiers on a physical network use its VLAN
	}
	if del {
		if m := v.localVLANs[lv.Host]; m != nil {
			if vl, ok := m[lv.NetworkID]; ok && vl == lv.VLAN {
				delete(m, lv.NetworkID)
				v.unindexVLAN(lv.Host, lv.NetworkID, vl)
				if len(m) == 0 {
					delete(v.localVLANs, lv.Host)
				}
			}
		}
		return
	}
	m := v.localVLANs[lv.Host]
	if m == nil {
		m = map[string]uint16{}
		v.localVLANs[lv.Host] = m
	}
	if old, ok := m[lv.NetworkID]; ok && old != lv.VLAN {
		m[lv.NetworkID] = lv.VLAN
		v.unindexVLAN(lv.Host, lv.NetworkID, old)
	}
	m[lv.NetworkID] = lv.VLAN
	k := hostVLAN{lv.Host, lv.VLAN}
	if _, taken := v.vlanNets[k]; !taken {
		v.vlanNets[k] = lv.NetworkID
	}
}

// unindexVLAN drops network's old VLAN vl of host from vlanNets (localVLANs no longer has
// it). Should another network of the host hold the same VLAN (the allocator never does
// that; a hand-edited table might), the index falls back to it.
func (v *View) unindexVLAN(host, network string, vl uint16) {
	k := hostVLAN{host, vl}
	if holder, ok := v.vlanNets[k]; !ok || holder != network {
		return
	}
	delete(v.vlanNets, k)
	for other, ovl := range v.localVLANs[host] {
		if ovl == vl {
			v.vlanNets[k] = other
			break
		}
	}
}

// String summarizes an Affected for logs.
func (a Affected) String() string {
	if a.All {
		return "all hosts"
	}
	hs := slices.Sorted(maps.Keys(a.Hosts))
	if len(hs) > 8 {
		return fmt.Sprintf("%d hosts", len(hs))
	}
	return strings.Join(hs, ",")
}
