package apps

import (
	"cmp"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/db"
)

// View is the topology indexed the way the apps ask questions of it: which networks, routers
// and namespaces each host carries, which MAC answers an address, where a port lives. It is
// built once per topology revision (NewView) and read-only afterwards, so apps computing
// flows for many bridges in parallel share it safely.
type View struct {
	Revision int64

	hosts      map[string]*HostInfo
	hostNames  []string // sorted
	networks   map[string]*NetInfo
	subnets    map[string]*SubnetInfo
	ports      map[string]*PortInfo
	routers    map[string]*RouterInfo
	fips       []*FIPInfo
	localVLANs map[string]map[string]uint16 // host -> network -> VLAN

	// Derived placement.
	netsOnHost    map[string]map[string]bool // host -> network IDs present there
	routersOnHost map[string]map[string]bool // host -> routers with a qrouter namespace there
	snatHost      map[string]string          // router -> dvr_snat host running its snat namespace

	// Indexes for the questions asked per bridge and per packet-in.
	bridgeOf  map[uint64]hostBridge // datapath ID -> host and bridge role
	endpoints map[string][]Endpoint // network -> its realized ports, sorted by port ID
}

type hostBridge struct {
	host string
	role Bridge
}

// HostInfo is a registered host.
type HostInfo struct {
	Name     string
	TunnelIP netip.Addr
	Mode     string
	DVRMAC   net.HardwareAddr
	Bridges  map[Bridge]uint64 // datapath ID by bridge role
}

// NetInfo is a network with its subnets.
type NetInfo struct {
	*db.Network
	SubnetIDs []string
}

// SubnetInfo is a subnet with its router interface, if any.
type SubnetInfo struct {
	*db.Subnet
	Prefix    netip.Prefix
	Gateway   netip.Addr // zero when the subnet has no gateway
	RouterID  string     // distributed router attached through RouterPort, if any
	RouterIf  *PortInfo  // the network:router_interface_distributed port
	SNATPort  *PortInfo  // the network:router_centralized_snat port, while the router has a gateway
	GatewayMA net.HardwareAddr
}

// PortInfo is a port with parsed addresses.
type PortInfo struct {
	*db.Port
	MAC net.HardwareAddr
	IPs []PortIP
}

// PortIP is one fixed IP of a port.
type PortIP struct {
	SubnetID string
	Addr     netip.Addr
}

// RouterInfo is a router with its interfaces.
type RouterInfo struct {
	*db.Router
	Interfaces  []*SubnetInfo // internal subnets, sorted by subnet ID
	GatewayPort *PortInfo     // network:router_gateway, when the router has a gateway
	LinkLocal   netip.Prefix  // rfp/fpr /31, when the router has a gateway
}

// FIPInfo is an associated floating IP with where it is realized.
type FIPInfo struct {
	*db.FloatingIP
	Addr    netip.Addr
	Fixed   netip.Addr
	Port    *PortInfo // the fixed port
	Host    string    // the fixed port's host
	Router  *RouterInfo
	ExtNet  *NetInfo
	ExtSub  *SubnetInfo // external subnet holding Addr
	AgentGW *PortInfo   // the network:floatingip_agent_gateway port of (Host, ExtNet)
}

// NewView indexes t.
func NewView(t *db.Topology, revision int64) *View {
	v := &View{
		Revision:      revision,
		hosts:         map[string]*HostInfo{},
		networks:      map[string]*NetInfo{},
		subnets:       map[string]*SubnetInfo{},
		ports:         map[string]*PortInfo{},
		routers:       map[string]*RouterInfo{},
		localVLANs:    map[string]map[string]uint16{},
		netsOnHost:    map[string]map[string]bool{},
		routersOnHost: map[string]map[string]bool{},
		snatHost:      map[string]string{},
		bridgeOf:      map[uint64]hostBridge{},
		endpoints:     map[string][]Endpoint{},
	}
	for i := range t.Hosts {
		h := &t.Hosts[i]
		hi := &HostInfo{Name: h.Name, Mode: h.Mode, Bridges: map[Bridge]uint64{}}
		hi.TunnelIP, _ = netip.ParseAddr(h.TunnelIP)
		hi.DVRMAC, _ = net.ParseMAC(h.MACAddress)
		for role, dpid := range h.Bridges {
			if id, ok := parseDPID(dpid); ok {
				hi.Bridges[Bridge(role)] = id
				v.bridgeOf[id] = hostBridge{host: h.Name, role: Bridge(role)}
			}
		}
		v.hosts[h.Name] = hi
		v.hostNames = append(v.hostNames, h.Name)
	}
	slices.Sort(v.hostNames)
	for i := range t.Networks {
		n := &t.Networks[i]
		v.networks[n.ID] = &NetInfo{Network: n}
	}
	for i := range t.Subnets {
		s := &t.Subnets[i]
		si := &SubnetInfo{Subnet: s}
		si.Prefix, _ = netip.ParsePrefix(s.CIDR)
		si.Gateway, _ = netip.ParseAddr(s.GatewayIP)
		v.subnets[s.ID] = si
		if n := v.networks[s.NetworkID]; n != nil {
			n.SubnetIDs = append(n.SubnetIDs, s.ID)
		}
	}
	for i := range t.Ports {
		p := &t.Ports[i]
		pi := &PortInfo{Port: p}
		pi.MAC, _ = net.ParseMAC(p.MACAddress)
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
				pi.IPs = append(pi.IPs, PortIP{SubnetID: ip.SubnetID, Addr: a})
			}
		}
		v.ports[p.ID] = pi
	}
	for i := range t.Routers {
		r := &t.Routers[i]
		ri := &RouterInfo{Router: r}
		if r.Gateway != nil {
			ri.GatewayPort = v.ports[r.Gateway.PortID]
			ri.LinkLocal, _ = netip.ParsePrefix(r.LinkLocal)
		}
		v.routers[r.ID] = ri
	}
	for _, ri := range t.RouterInterfaces {
		s, r := v.subnets[ri.SubnetID], v.routers[ri.RouterID]
		if s == nil || r == nil || !r.Distributed {
			continue
		}
		s.RouterID = r.ID
		s.RouterIf = v.ports[ri.PortID]
		if s.RouterIf != nil {
			s.GatewayMA = s.RouterIf.MAC
		}
		r.Interfaces = append(r.Interfaces, s)
	}
	for _, r := range v.routers {
		slices.SortFunc(r.Interfaces, func(a, b *SubnetInfo) int { return cmp.Compare(a.ID, b.ID) })
	}
	for _, p := range v.ports {
		if p.DeviceOwner != db.OwnerRouterCentralizedSNAT {
			continue
		}
		for _, ip := range p.IPs {
			if s := v.subnets[ip.SubnetID]; s != nil && s.RouterID == p.DeviceID {
				s.SNATPort = p
			}
		}
	}
	for _, lv := range t.LocalVLANs {
		m := v.localVLANs[lv.Host]
		if m == nil {
			m = map[string]uint16{}
			v.localVLANs[lv.Host] = m
		}
		m[lv.NetworkID] = lv.VLAN
	}
	v.place()
	v.indexEndpoints()
	v.indexFIPs(t.FloatingIPs)
	return v
}

// indexEndpoints groups the realized ports by network, once per View.
func (v *View) indexEndpoints() {
	for _, p := range v.ports {
		if hs := v.portHosts(p); len(hs) > 0 {
			v.endpoints[p.NetworkID] = append(v.endpoints[p.NetworkID], Endpoint{Port: p, Hosts: hs})
		}
	}
	for _, eps := range v.endpoints {
		slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Port.ID, b.Port.ID) })
	}
}

func parseDPID(s string) (uint64, bool) {
	s = strings.TrimPrefix(strings.ReplaceAll(s, ":", ""), "0x")
	if s == "" || len(s) > 16 {
		return 0, false
	}
	var id uint64
	for _, c := range s {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		id = id<<4 | d
	}
	return id, true
}

// IsDVRServiced reports whether a port's device owner makes its host serve the port's
// routers (Neutron's is_dvr_serviced): VMs, DHCP ports, load balancers, trunk subports.
func IsDVRServiced(owner string) bool {
	return strings.HasPrefix(owner, "compute:") || owner == db.OwnerDHCP ||
		owner == "neutron:LOADBALANCER" || owner == "neutron:LOADBALANCERV2" || owner == "trunk:subport"
}

// place derives where every network, router and snat namespace is realized.
func (v *View) place() {
	// The snat namespace of a router with a gateway runs on one dvr_snat host, chosen by a
	// stable hash of the router ID among the dvr_snat hosts (sorted), so every controller
	// agrees without coordination.
	var snatHosts []string
	for _, h := range v.hostNames {
		if v.hosts[h].Mode == db.HostModeDVRSNAT {
			snatHosts = append(snatHosts, h)
		}
	}
	for _, r := range v.routers {
		if r.Gateway != nil && len(snatHosts) > 0 {
			v.snatHost[r.ID] = snatHosts[hash32(r.ID)%uint32(len(snatHosts))]
		}
	}
	for _, p := range v.ports {
		if p.HostID == "" || v.hosts[p.HostID] == nil {
			continue
		}
		switch {
		case IsDVRServiced(p.DeviceOwner):
			v.addNet(p.HostID, p.NetworkID)
			for _, ip := range p.IPs {
				if s := v.subnets[ip.SubnetID]; s != nil && s.RouterID != "" {
					v.addRouter(p.HostID, s.RouterID)
				}
			}
		case p.DeviceOwner == db.OwnerFloatingIPAgentGateway:
			v.addNet(p.HostID, p.NetworkID)
		}
	}
	for host, routers := range v.routersOnHost {
		for rid := range routers {
			for _, s := range v.routers[rid].Interfaces {
				v.addNet(host, s.NetworkID)
			}
		}
	}
	for rid, host := range v.snatHost {
		r := v.routers[rid]
		v.addNet(host, r.Gateway.NetworkID)
		for _, s := range r.Interfaces {
			if s.SNATPort != nil {
				v.addNet(host, s.NetworkID)
			}
		}
	}
}

func (v *View) addNet(host, netID string) {
	if v.networks[netID] == nil {
		return
	}
	m := v.netsOnHost[host]
	if m == nil {
		m = map[string]bool{}
		v.netsOnHost[host] = m
	}
	m[netID] = true
}

func (v *View) addRouter(host, routerID string) {
	m := v.routersOnHost[host]
	if m == nil {
		m = map[string]bool{}
		v.routersOnHost[host] = m
	}
	m[routerID] = true
}

func (v *View) indexFIPs(fips []db.FloatingIP) {
	type hostNet struct{ host, net string }
	agentGW := map[hostNet]*PortInfo{}
	for _, p := range v.ports {
		if p.DeviceOwner == db.OwnerFloatingIPAgentGateway {
			agentGW[hostNet{p.HostID, p.NetworkID}] = p
		}
	}
	for i := range fips {
		f := &fips[i]
		if f.PortID == "" || f.RouterID == "" {
			continue
		}
		fi := &FIPInfo{FloatingIP: f, Port: v.ports[f.PortID], Router: v.routers[f.RouterID], ExtNet: v.networks[f.FloatingNetworkID]}
		fi.Addr, _ = netip.ParseAddr(f.FloatingIPAddress)
		fi.Fixed, _ = netip.ParseAddr(f.FixedIPAddress)
		if fi.Port == nil || fi.Router == nil || fi.ExtNet == nil || !fi.Addr.IsValid() || !fi.Fixed.IsValid() {
			continue
		}
		fi.Host = fi.Port.HostID
		for _, sid := range fi.ExtNet.SubnetIDs {
			if s := v.subnets[sid]; s != nil && s.Prefix.Contains(fi.Addr) {
				fi.ExtSub = s
			}
		}
		fi.AgentGW = agentGW[hostNet{fi.Host, fi.ExtNet.ID}]
		v.fips = append(v.fips, fi)
	}
	slices.SortFunc(v.fips, func(a, b *FIPInfo) int { return cmp.Compare(a.ID, b.ID) })
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// Host returns a registered host.
func (v *View) Host(name string) *HostInfo { return v.hosts[name] }

// HostNames returns every registered host, sorted.
func (v *View) HostNames() []string { return v.hostNames }

// HostOfDPID returns the host and bridge role of a datapath ID.
func (v *View) HostOfDPID(dpid uint64) (string, Bridge, bool) {
	hb, ok := v.bridgeOf[dpid]
	return hb.host, hb.role, ok
}

// NetworksOn returns the networks present on host (sorted IDs): networks of its
// DVR-serviced ports, of the routers it runs, of its snat and fip namespaces.
func (v *View) NetworksOn(host string) []string {
	var out []string
	for id := range v.netsOnHost[host] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// LocalVLAN returns the local VLAN of network on host, if one is allocated.
func (v *View) LocalVLAN(host, network string) (uint16, bool) {
	vl, ok := v.localVLANs[host][network]
	return vl, ok
}

// NetworkOfVLAN returns the network carried by local VLAN vlan on host.
func (v *View) NetworkOfVLAN(host string, vlan uint16) (string, bool) {
	for id, vl := range v.localVLANs[host] {
		if vl == vlan {
			return id, true
		}
	}
	return "", false
}

// MissingVLANs returns, per host, the present networks that have no local VLAN yet: the
// controller allocates them (db.Store.EnsureLocalVLANs) before their flows can exist.
func (v *View) MissingVLANs() map[string][]string {
	out := map[string][]string{}
	for _, h := range v.hostNames {
		for _, n := range v.NetworksOn(h) {
			if _, ok := v.localVLANs[h][n]; !ok {
				out[h] = append(out[h], n)
			}
		}
	}
	return out
}

// StaleVLANs returns, per host, local VLANs of networks no longer present there.
func (v *View) StaleVLANs() map[string][]string {
	out := map[string][]string{}
	for h, m := range v.localVLANs {
		for n := range m {
			if !v.netsOnHost[h][n] {
				out[h] = append(out[h], n)
			}
		}
		slices.Sort(out[h])
	}
	return out
}

// RoutersOn returns the routers whose qrouter namespace runs on host (sorted IDs).
func (v *View) RoutersOn(host string) []string {
	var out []string
	for id := range v.routersOnHost[host] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// SNATHost returns the host running router's snat namespace, if any.
func (v *View) SNATHost(router string) (string, bool) {
	h, ok := v.snatHost[router]
	return h, ok
}

// Network, Subnet, Port and Router look resources up by ID.
func (v *View) Network(id string) *NetInfo      { return v.networks[id] }
func (v *View) Subnet(id string) *SubnetInfo    { return v.subnets[id] }
func (v *View) Port(id string) *PortInfo        { return v.ports[id] }
func (v *View) Router(id string) *RouterInfo    { return v.routers[id] }
func (v *View) FloatingIPs() []*FIPInfo         { return v.fips }
func (v *View) Ports() map[string]*PortInfo     { return v.ports }
func (v *View) Routers() map[string]*RouterInfo { return v.routers }

// portHosts returns the hosts where port p is realized: its binding for VM, DHCP and agent
// gateway ports; every host running the router for a distributed router interface; the
// snat host for snat and router gateway ports.
func (v *View) portHosts(p *PortInfo) []string {
	switch p.DeviceOwner {
	case db.OwnerRouterInterfaceDistributed:
		var out []string
		for _, h := range v.hostNames {
			if v.routersOnHost[h][p.DeviceID] {
				out = append(out, h)
			}
		}
		return out
	case db.OwnerRouterCentralizedSNAT, db.OwnerRouterGateway:
		if h, ok := v.snatHost[p.DeviceID]; ok {
			return []string{h}
		}
		return nil
	case db.OwnerFloatingIP:
		return nil
	}
	if p.HostID != "" && v.hosts[p.HostID] != nil {
		return []string{p.HostID}
	}
	return nil
}

// Endpoint is a port as seen on one network: its MAC, addresses and the hosts where it is.
type Endpoint struct {
	Port  *PortInfo
	Hosts []string
}

// Endpoints returns the ports of network net that are realized somewhere, sorted by port ID.
// The slice is the View's own: callers read it and never modify it.
func (v *View) Endpoints(netID string) []Endpoint { return v.endpoints[netID] }

// HostsWithNetwork returns the hosts where network net is present, sorted.
func (v *View) HostsWithNetwork(netID string) []string {
	var out []string
	for _, h := range v.hostNames {
		if v.netsOnHost[h][netID] {
			out = append(out, h)
		}
	}
	return out
}

// routed reports whether one of network net's subnets is attached to a distributed router.
func (v *View) routed(netID string) bool {
	n := v.networks[netID]
	if n == nil {
		return false
	}
	for _, sid := range n.SubnetIDs {
		if s := v.subnets[sid]; s != nil && s.RouterID != "" {
			return true
		}
	}
	return false
}
