// What the view derives once records changed: routers and their snat host, which host carries what, endpoints and floating IPs.

package topology

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"

	"github.com/dvrflow/dvrflow/plan"
)

// derive recomputes what depends on the records d touched, in dependency order: router
// attachments and snat placement, host placement, endpoints, floating IPs.
func (v *View) derive(d *pending) {
	if d.hostSet {
		v.indexHosts()
	}
	if d.all {
		for id := range v.routers {
			d.touchRouter(v, id)
		}
		for id := range v.snatHost {
			d.touchRouter(v, id)
		}
		addAll(d.hosts, setOf(v.hostNames))
		for h := range v.netsOnHost {
			d.hosts[h] = true
		}
		for id := range v.networks {
			d.nets[id] = true
		}
		for id := range v.endpoints {
			d.nets[id] = true
		}
		d.fips = true
	}
	v.deriveRouters(d)
	presence := map[string]map[string]bool{} // router -> hosts that started or stopped running it
	for h := range d.hosts {
		v.placeHost(d, h, presence)
	}
	for rid, moved := range presence {
		// The hosts running the router (and its snat host) gained or lost the moved hosts
		// as DVR peers.
		for h := range v.hostsOfRouter[rid] {
			for x := range moved {
				d.touchPart(h, PeerPart(x))
			}
		}
		if h, ok := v.snatHost[rid]; ok {
			for x := range moved {
				d.touchPart(h, PeerPart(x))
			}
		}
		if r := v.routers[rid]; r != nil {
			for _, s := range r.Interfaces {
				d.nets[s.NetworkID] = true // the interface's endpoint hosts changed
			}
		}
	}
	for n := range d.nets {
		for h := range v.hostsOfNet[n] {
			d.touchPart(h, n)
		}
		v.indexEndpoints(n)
	}
	for rid := range d.neighRtrs {
		for h := range v.hostsOfRouter[rid] {
			putSet(d.plans, h, plan.PrefixQRouter+rid, true)
		}
		if h, ok := v.snatHost[rid]; ok {
			putSet(d.plans, h, plan.PrefixSNAT+rid, true)
		}
	}
	if d.fips {
		v.indexFIPs(d)
	}
	v.deriveGroups(d)
}

// deriveRouters recomputes the touched routers' interfaces, gateway and snat host, and the
// router fields of the subnets they attach.
func (v *View) deriveRouters(d *pending) {
	for _, s := range d.oldIfaces {
		if d.routers[s.attachedRouter()] {
			s.RouterID, s.RouterIf, s.GatewayMAC, s.SNATPort = "", nil, nil, nil
		}
		d.nets[s.NetworkID] = true
		addAll(d.hosts, v.hostsOfNet[s.NetworkID])
	}
	for rid := range d.routers {
		addAll(d.hosts, v.hostsOfRouter[rid])
		addAll(d.affected, v.hostsOfRouter[rid])
		old, hadSNAT := v.snatHost[rid]
		if hadSNAT {
			d.hosts[old] = true
			delSet(v.snatOnHost, old, rid)
			delete(v.snatHost, rid)
		}
		r := v.routers[rid]
		if r == nil {
			continue
		}
		r.Interfaces, r.GatewayPort, r.LinkLocal = nil, nil, netip.Prefix{}
		ports := v.portsOfRouter[rid]
		ids := slices.Sorted(maps.Keys(ports))
		for _, p := range ports {
			d.nets[p.NetworkID] = true // where its snat and gateway ports are realized may change
		}
		if r.Distributed {
			for _, id := range ids {
				p := ports[id]
				if p.DeviceOwner != OwnerRouterInterfaceDistributed {
					continue
				}
				// A port may hold an IPv4 subnet (one at most) and IPv6 subnets, in any
				// order: each is an interface of the router.
				for _, ip := range p.IPs {
					if s := v.subnets[ip.SubnetID]; s != nil && !slices.Contains(r.Interfaces, s) {
						s.RouterID, s.RouterIf, s.GatewayMAC = rid, p, p.MAC
						r.Interfaces = append(r.Interfaces, s)
					}
				}
			}
			slices.SortFunc(r.Interfaces, func(a, b *SubnetInfo) int { return cmp.Compare(a.ID, b.ID) })
		}
		for _, id := range ids {
			p := ports[id]
			if p.DeviceOwner != OwnerRouterCentralizedSNAT {
				continue
			}
			for _, ip := range p.IPs {
				if s := v.subnets[ip.SubnetID]; s != nil && s.RouterID == rid {
					s.SNATPort = p
				}
			}
		}
		for _, s := range r.Interfaces {
			d.nets[s.NetworkID] = true
			addAll(d.hosts, v.hostsOfNet[s.NetworkID])
		}
		if r.Gateway != nil {
			r.GatewayPort = v.ports[r.Gateway.PortID]
			r.LinkLocal, _ = netip.ParsePrefix(r.Router.LinkLocal)
			d.nets[r.Gateway.NetworkID] = true
			// The snat namespace runs on the dvr_snat host the database scheduled
			// (db/snat.go). A router without one (none was live when it got its gateway)
			// falls back to a stable hash of its ID among the dvr_snat hosts (sorted), so
			// every controller still agrees without coordination.
			h := r.Router.SNATHost
			if hi := v.hosts[h]; hi == nil || hi.Mode != HostModeDVRSNAT {
				h = ""
				if len(v.snatHosts) > 0 {
					h = v.snatHosts[hash32(rid)%uint32(len(v.snatHosts))]
				}
			}
			if h != "" {
				v.snatHost[rid] = h
				putSet(v.snatOnHost, h, rid, true)
				d.hosts[h] = true
			}
		}
	}
}

// placeHost recomputes which networks and routers are present on host: networks of its
// DVR-serviced ports and agent gateway ports, the routers of their subnets and those
// routers' networks, and the networks of the snat namespaces it runs.
func (v *View) placeHost(d *pending, host string, presence map[string]map[string]bool) {
	d.affected[host] = true
	nets, routers := map[string]bool{}, map[string]bool{}
	addNet := func(id string) {
		if v.networks[id] != nil {
			nets[id] = true
		}
	}
	if v.hosts[host] != nil {
		for _, p := range v.portsOnHost[host] {
			switch {
			case IsDVRServiced(p.DeviceOwner):
				addNet(p.NetworkID)
				for _, ip := range p.IPs {
					if s := v.subnets[ip.SubnetID]; s != nil && s.RouterID != "" {
						routers[s.RouterID] = true
					}
				}
			case p.DeviceOwner == OwnerFloatingIPAgentGateway:
				addNet(p.NetworkID)
			}
		}
		for rid := range routers {
			if r := v.routers[rid]; r != nil {
				for _, s := range r.Interfaces {
					addNet(s.NetworkID)
				}
			}
		}
		for rid := range v.snatOnHost[host] {
			r := v.routers[rid]
			if r == nil || r.Gateway == nil {
				continue
			}
			addNet(r.Gateway.NetworkID)
			for _, s := range r.Interfaces {
				if s.SNATPort != nil {
					addNet(s.NetworkID)
				}
			}
		}
	}
	diffPlace(v.netsOnHost, v.hostsOfNet, host, nets, d.nets)
	moved := map[string]bool{}
	diffPlace(v.routersOnHost, v.hostsOfRouter, host, routers, moved)
	for rid := range moved {
		putSet(presence, rid, host, true)
	}
}

// diffPlace sets what host carries to now, keeps the reverse index, and marks what
// appeared or disappeared in changed.
func diffPlace(onHost, hostsOf map[string]map[string]bool, host string, now, changed map[string]bool) {
	before := onHost[host]
	for id := range before {
		if !now[id] {
			changed[id] = true
			delSet(hostsOf, id, host)
		}
	}
	for id := range now {
		if !before[id] {
			changed[id] = true
			putSet(hostsOf, id, host, true)
		}
	}
	if len(now) == 0 {
		delete(onHost, host)
	} else {
		onHost[host] = now
	}
}

// indexEndpoints recomputes network id's realized ports and its address index.
func (v *View) indexEndpoints(id string) {
	ports := v.portsOnNet[id]
	var eps []Endpoint
	for _, p := range ports {
		if hs := v.PortHosts(p); len(hs) > 0 {
			eps = append(eps, Endpoint{Port: p, Hosts: hs})
		}
	}
	if len(eps) == 0 {
		delete(v.endpoints, id)
		delete(v.addrs, id)
		return
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Port.ID, b.Port.ID) })
	addrs := map[netip.Addr]*PortInfo{}
	for _, ep := range eps {
		if ep.Port.MAC == nil {
			continue
		}
		for _, ip := range ep.Port.IPs {
			if _, ok := addrs[ip.Addr]; !ok {
				addrs[ip.Addr] = ep.Port
			}
		}
	}
	v.endpoints[id] = eps
	v.addrs[id] = addrs
}

// indexFIPs recomputes the realizable floating IPs and marks the hosts whose set changed.
func (v *View) indexFIPs(d *pending) {
	var fips []*FIPInfo
	for _, f := range v.fipRecords {
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
		fi.AgentGW = v.agentGatewayPort(fi.Host, fi.ExtNet.ID)
		fips = append(fips, fi)
	}
	slices.SortFunc(fips, func(a, b *FIPInfo) int { return cmp.Compare(a.ID, b.ID) })
	onHost := map[string][]*FIPInfo{}
	for _, f := range fips {
		onHost[f.Host] = append(onHost[f.Host], f)
	}
	for h, now := range onHost {
		if !slices.EqualFunc(now, v.fipsOnHost[h], sameFIP) {
			d.affected[h] = true
		}
	}
	for h := range v.fipsOnHost {
		if _, ok := onHost[h]; !ok {
			d.affected[h] = true
		}
	}
	v.fips, v.fipsOnHost = fips, onHost
}

// sameFIP reports whether two derivations of a floating IP realize the same thing.
func sameFIP(a, b *FIPInfo) bool {
	return a.ID == b.ID && a.Addr == b.Addr && a.Fixed == b.Fixed && a.Port == b.Port && a.Router == b.Router &&
		a.Router.LinkLocal == b.Router.LinkLocal && a.ExtNet == b.ExtNet && a.ExtSub == b.ExtSub && a.AgentGW == b.AgentGW
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func delAgentGW(m map[agentGWKey]map[string]*PortInfo, k agentGWKey, id string) {
	if s := m[k]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// agentGatewayPort returns host's floating IP agent gateway port on network (the first by
// ID, should there ever be two).
func (v *View) agentGatewayPort(host, network string) *PortInfo {
	ports := v.agentGW[agentGWKey{host, network}]
	if len(ports) == 0 {
		return nil
	}
	return ports[slices.Min(slices.Collect(maps.Keys(ports)))]
}
