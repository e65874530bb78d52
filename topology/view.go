package topology

import (
	"hash/fnv"
	"iter"
	"maps"
	"net"
	"net/netip"
	"slices"
)

// View is the topology indexed the way the policy (apps) asks questions of it: which networks, routers
// and namespaces each host carries, which MAC answers an address, where a port lives. It is
// built once (NewView) and then kept current by Apply with the change log, which also says
// which hosts a change can affect (apply.go). Readers (the policy, computing flows for many
// bridges in parallel, and the ARP handler) share it under the caller's read lock; Apply
// runs under its write lock.
type View struct {
	Revision int64

	hosts      map[string]*HostInfo
	hostNames  []string // sorted
	snatHosts  []string // sorted dvr_snat hosts
	networks   map[string]*NetInfo
	subnets    map[string]*SubnetInfo
	ports      map[string]*PortInfo
	routers    map[string]*RouterInfo
	fipRecords map[string]*FloatingIP
	fips       []*FIPInfo                   // associated and realizable, sorted by ID
	localVLANs map[string]map[string]uint16 // host -> network -> VLAN
	vlanNets   map[hostVLAN]string          // host and VLAN -> network: localVLANs inverted, for packet-ins

	// Indexes of the records, kept by Apply.
	portsOnHost   map[string]map[string]*PortInfo     // binding host -> ports
	portsOnNet    map[string]map[string]*PortInfo     // network -> ports
	portsOfRouter map[string]map[string]*PortInfo     // router -> its interface, snat and gateway ports
	fipsOfPort    map[string]int                      // fixed port -> floating IPs on it
	agentGW       map[agentGWKey]map[string]*PortInfo // floating IP agent gateway ports of a host on a network
	dhcpPorts     map[string]map[string]*PortInfo     // unbound network:dhcp ports of a network

	// Derived placement.
	netsOnHost    map[string]map[string]bool // host -> network IDs present there
	hostsOfNet    map[string]map[string]bool // network -> hosts where it is present
	routersOnHost map[string]map[string]bool // host -> routers with a qrouter namespace there
	hostsOfRouter map[string]map[string]bool // router -> hosts running its qrouter namespace
	snatHost      map[string]string          // router -> dvr_snat host running its snat namespace
	snatOnHost    map[string]map[string]bool // dvr_snat host -> routers of its snat namespaces
	fipsOnHost    map[string][]*FIPInfo      // host of the fixed port -> its floating IPs

	// Indexes for the questions asked per bridge and per packet-in.
	bridgeOf  map[uint64]hostBridge               // datapath ID -> host and bridge
	endpoints map[string][]Endpoint               // network -> its realized ports, sorted by port ID
	addrs     map[string]map[netip.Addr]*PortInfo // network -> address -> first realized port holding it

	holds map[string]portHold // moving VM ports held on the host they left (hold.go)

	// Security groups (secgroups.go).
	groups        map[string]*SecurityGroup
	rules         map[string]*SecurityGroupRule
	rulesOfGroup  map[string]map[string]*SecurityGroupRule // group -> its rules
	members       map[string]map[string]*PortInfo          // group -> firewalled ports naming it
	remoteOf      map[string]map[string]*SecurityGroupRule // group -> rules naming it as remote
	groupPrefixes map[string][]netip.Prefix                // group -> its members' addresses, covered (GroupPrefixes)
	remoteUses    map[string]map[string]int                // host -> RemoteGroupPart -> (port, rule) pairs of the host needing it
}

type agentGWKey struct{ host, network string }

type hostVLAN struct {
	host string
	vlan uint16
}

type hostBridge struct {
	host   string
	bridge Bridge
}

// HostInfo is a registered host.
type HostInfo struct {
	Name     string
	TunnelIP netip.Addr
	Mode     HostMode
	DVRMAC   net.HardwareAddr
	Bridges  map[Bridge]uint64 // datapath ID by bridge

	record *Host
}

// BridgeID returns the datapath ID of the host's bridge, if registered (h may be nil).
func (h *HostInfo) BridgeID(br Bridge) (uint64, bool) {
	if h == nil {
		return 0, false
	}
	id, ok := h.Bridges[br]
	return id, ok
}

// NetInfo is a network with its subnets.
type NetInfo struct {
	*Network
	SubnetIDs []string
}

// Tunneled reports whether the network is carried between hosts by VXLAN on br-tun.
func (n *NetInfo) Tunneled() bool {
	return n.NetworkType == NetworkTypeVXLAN || n.NetworkType == ""
}

// Physical reports whether the network is a flat or VLAN network on br-ex.
func (n *NetInfo) Physical() bool {
	return n.NetworkType == NetworkTypeFlat || n.NetworkType == NetworkTypeVLAN
}

// SubnetInfo is a subnet with its router interface, if any.
type SubnetInfo struct {
	*Subnet
	Prefix     netip.Prefix
	Gateway    netip.Addr // zero when the subnet has no gateway
	RouterID   string     // distributed router routing the subnet through RouterIf, if any
	RouterIf   *PortInfo  // the network:router_interface_distributed port
	SNATPort   *PortInfo  // the network:router_centralized_snat port, while the router has a gateway
	GatewayMAC net.HardwareAddr
}

// attachedRouter is the router whose interface the subnet is on, routed or not.
func (s *SubnetInfo) attachedRouter() string {
	if s.RouterID == "" && s.RouterIf != nil {
		return s.RouterIf.DeviceID
	}
	return s.RouterID
}

// PortInfo is a port with parsed addresses.
type PortInfo struct {
	*Port
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
	*Router
	Interfaces  []*SubnetInfo // internal subnets it routes, IPv4 and IPv6, sorted by subnet ID
	GatewayPort *PortInfo     // network:router_gateway, when the router has a gateway
	LinkLocal   netip.Prefix  // rfp/fpr /31, when the router has a gateway
}

// FIPInfo is an associated floating IP with where it is realized.
type FIPInfo struct {
	*FloatingIP
	Addr    netip.Addr
	Fixed   netip.Addr
	Port    *PortInfo // the fixed port
	Host    string    // the fixed port's host
	Router  *RouterInfo
	ExtNet  *NetInfo
	ExtSub  *SubnetInfo // external subnet holding Addr
	AgentGW *PortInfo   // the network:floatingip_agent_gateway port of (Host, ExtNet)
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

// HostOfDPID returns the host and bridge of a datapath ID.
func (v *View) HostOfDPID(dpid uint64) (string, Bridge, bool) {
	hb, ok := v.bridgeOf[dpid]
	return hb.host, hb.bridge, ok
}

// HasNetwork reports whether network netID is present on host.
func (v *View) HasNetwork(host, netID string) bool { return v.netsOnHost[host][netID] }

// PortWithAddr returns the first realized port (by port ID) of network netID holding
// address a, or nil.
func (v *View) PortWithAddr(netID string, a netip.Addr) *PortInfo { return v.addrs[netID][a] }

// NetworkSet returns the networks present on host, in no order (NetworksOn sorts them).
func (v *View) NetworkSet(host string) iter.Seq[string] { return maps.Keys(v.netsOnHost[host]) }

// NetworksOn returns the networks present on host (sorted IDs): networks of its
// DVR-serviced ports, of the routers it runs, of its snat and fip namespaces.
func (v *View) NetworksOn(host string) []string { return sortedSet(v.netsOnHost[host]) }

// LocalVLAN returns the local VLAN of network on host, if one is allocated.
func (v *View) LocalVLAN(host, network string) (uint16, bool) {
	vl, ok := v.localVLANs[host][network]
	return vl, ok
}

// NetworkOfVLAN returns the network carried by local VLAN vlan on host.
func (v *View) NetworkOfVLAN(host string, vlan uint16) (string, bool) {
	id, ok := v.vlanNets[hostVLAN{host, vlan}]
	return id, ok
}

// MissingVLANs returns, per host among hosts, the present networks that have no local VLAN
// yet: the controller allocates them (db.Store.EnsureLocalVLANs) before their flows can exist.
func (v *View) MissingVLANs(hosts []string) map[string][]string {
	out := map[string][]string{}
	for _, h := range hosts {
		for _, n := range v.NetworksOn(h) {
			if _, ok := v.localVLANs[h][n]; !ok {
				out[h] = append(out[h], n)
			}
		}
	}
	return out
}

// StaleVLANs returns, per host among hosts, local VLANs of networks no longer present there.
func (v *View) StaleVLANs(hosts []string) map[string][]string {
	out := map[string][]string{}
	for _, h := range hosts {
		for n := range v.localVLANs[h] {
			if !v.netsOnHost[h][n] {
				out[h] = append(out[h], n)
			}
		}
		slices.Sort(out[h])
	}
	return out
}

// VLANHosts returns the hosts holding local VLANs, sorted (with HostNames, the hosts whose
// VLANs may need freeing).
func (v *View) VLANHosts() []string { return slices.Sorted(maps.Keys(v.localVLANs)) }

// RoutersOn returns the routers whose qrouter namespace runs on host (sorted IDs).
func (v *View) RoutersOn(host string) []string { return sortedSet(v.routersOnHost[host]) }

// HostsOfRouter returns the hosts running router's qrouter namespace, sorted.
func (v *View) HostsOfRouter(router string) []string { return sortedSet(v.hostsOfRouter[router]) }

// SNATHost returns the host running router's snat namespace, if any.
func (v *View) SNATHost(router string) (string, bool) {
	h, ok := v.snatHost[router]
	return h, ok
}

// SNATRoutersOn returns the routers whose snat namespace runs on host (sorted IDs).
func (v *View) SNATRoutersOn(host string) []string { return sortedSet(v.snatOnHost[host]) }

// DVRPeers returns the other hosts that run a qrouter namespace of a router that host runs
// (as qrouter or snat), sorted: the only hosts whose DVR MAC can be the source of a routed
// frame arriving at host.
func (v *View) DVRPeers(host string) []string {
	peers := map[string]bool{}
	for _, rs := range []map[string]bool{v.routersOnHost[host], v.snatOnHost[host]} {
		for r := range rs {
			for h := range v.hostsOfRouter[r] {
				if h != host {
					peers[h] = true
				}
			}
		}
	}
	return sortedSet(peers)
}

// IsDVRPeer reports whether peer is one of host's DVRPeers.
func (v *View) IsDVRPeer(host, peer string) bool {
	if peer == host {
		return false
	}
	for _, rs := range []map[string]bool{v.routersOnHost[host], v.snatOnHost[host]} {
		for r := range rs {
			if v.hostsOfRouter[r][peer] {
				return true
			}
		}
	}
	return false
}

// Network, Subnet, Port and Router look resources up by ID.
func (v *View) Network(id string) *NetInfo   { return v.networks[id] }
func (v *View) Subnet(id string) *SubnetInfo { return v.subnets[id] }
func (v *View) Port(id string) *PortInfo     { return v.ports[id] }
func (v *View) Router(id string) *RouterInfo { return v.routers[id] }

// FloatingIPs returns the associated floating IPs, sorted by ID; FloatingIPsOn those whose
// fixed port is on host. The slices are the View's own.
func (v *View) FloatingIPs() []*FIPInfo              { return v.fips }
func (v *View) FloatingIPsOn(host string) []*FIPInfo { return v.fipsOnHost[host] }

// Ports returns every port by ID (the View's own map: read only).
func (v *View) Ports() map[string]*PortInfo { return v.ports }

// PortsOn returns the ports bound to host, sorted by ID.
func (v *View) PortsOn(host string) []*PortInfo {
	out := make([]*PortInfo, 0, len(v.portsOnHost[host]))
	for _, id := range slices.Sorted(maps.Keys(v.portsOnHost[host])) {
		out = append(out, v.portsOnHost[host][id])
	}
	return out
}

// PortsBoundTo returns the ports bound to host by ID (the View's own map: read only).
func (v *View) PortsBoundTo(host string) map[string]*PortInfo { return v.portsOnHost[host] }

// DHCPServer returns the port whose addresses and MAC answer DHCP on network netID (the
// network's network:dhcp port bound to no host: the one the store keeps, else the one with
// the lowest ID), or nil. A network:dhcp port bound to a host is plugged there like a VM's.
func (v *View) DHCPServer(netID string) *PortInfo {
	var best *PortInfo
	for id, p := range v.dhcpPorts[netID] {
		switch {
		case best == nil:
			best = p
		case IsManagedDHCPPort(p.Port) != IsManagedDHCPPort(best.Port):
			if IsManagedDHCPPort(p.Port) {
				best = p
			}
		case id < best.ID:
			best = p
		}
	}
	return best
}

// PortsOnNetwork returns the ports of a network by ID (the View's own map: read only).
func (v *View) PortsOnNetwork(netID string) map[string]*PortInfo { return v.portsOnNet[netID] }

// Routers returns every router by ID (the View's own map: read only).
func (v *View) Routers() map[string]*RouterInfo { return v.routers }

// PortHosts returns the hosts where port p is realized: its binding for VM, DHCP and agent
// gateway ports; every host running the router for a distributed router interface; the
// snat host for snat and router gateway ports.
func (v *View) PortHosts(p *PortInfo) []string {
	switch p.DeviceOwner {
	case OwnerRouterInterfaceDistributed:
		return sortedSet(v.hostsOfRouter[p.DeviceID])
	case OwnerRouterCentralizedSNAT, OwnerRouterGateway:
		if h, ok := v.snatHost[p.DeviceID]; ok {
			return []string{h}
		}
		return nil
	case OwnerFloatingIP:
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
func (v *View) HostsWithNetwork(netID string) []string { return sortedSet(v.hostsOfNet[netID]) }

// HostCount returns on how many hosts network net is present.
func (v *View) HostCount(netID string) int { return len(v.hostsOfNet[netID]) }

func sortedSet(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

// InterfacesOn returns the interfaces on network netID of the routers running on host, in
// the order of the routers' IDs and then their interfaces'.
func (v *View) InterfacesOn(host, netID string) []*SubnetInfo {
	var out []*SubnetInfo
	for _, rid := range v.RoutersOn(host) {
		for _, s := range v.routers[rid].Interfaces {
			if s.NetworkID == netID {
				out = append(out, s)
			}
		}
	}
	return out
}

// Routed reports whether one of network net's subnets is attached to a distributed router.
func (v *View) Routed(netID string) bool {
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
