// Package apps is dvrflow's policy: the DVR pipeline's tables, declared once as data
// (pipeline.go), and the apps that fill them, each a pure function from the topology View
// and a bridge's state to the flows of the tables it owns (l2.go, dvr.go, arp.go, nd.go,
// ra.go, firewall.go, dhcp.go), plus the
// namespace plan of each host (l3.go). Nothing here talks to a switch or a database: the
// controller feeds Views in and sends the flows out.
package apps

import (
	"maps"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// BridgeState is what the apps need to know of one connected switch besides the topology:
// whose bridge it is and its OpenFlow port numbers by name (from port desc and port-status).
type BridgeState struct {
	Host   string
	Bridge topology.Bridge
	Ports  map[string]uint32

	// phys memoizes physicalRouted: the parts of one bridge are computed at one View.
	phys     []string
	physDone bool
}

// physicalRouted returns the routed VLAN and flat networks present on st's host, sorted.
func (st *BridgeState) physicalRouted(v *topology.View) []string {
	if !st.physDone {
		for netID := range v.NetworkSet(st.Host) {
			if n := v.Network(netID); n != nil && n.Physical() && v.Routed(netID) {
				st.phys = append(st.phys, netID)
			}
		}
		slices.Sort(st.phys)
		st.physDone = true
	}
	return st.phys
}

// Parts returns the parts of bridge st at View v: PartBridge, one per DVR peer, on br-int
// one per remote group its ports' rules name in each direction (egress first), then one
// per present network, each group sorted.
func Parts(v *topology.View, st *BridgeState) []string {
	out := []string{topology.PartBridge}
	for _, h := range v.DVRPeers(st.Host) {
		out = append(out, topology.PeerPart(h))
	}
	if st.Bridge == topology.BrInt {
		for _, d := range []fwDir{dirEgress, dirIngress} {
			for _, g := range v.RemoteGroupsOn(st.Host, d.name) {
				out = append(out, topology.RemoteGroupPart(d.name, g))
			}
		}
	}
	return append(out, v.NetworksOn(st.Host)...)
}

// HasPart reports whether part is one of Parts(v, st), without listing them all.
func HasPart(v *topology.View, st *BridgeState, part string) bool {
	if part == topology.PartBridge {
		return true
	}
	if dir, group, ok := topology.PartRemoteGroup(part); ok {
		return st.Bridge == topology.BrInt && v.UsesRemoteGroup(st.Host, dir, group)
	}
	if peer, ok := topology.PartPeer(part); ok {
		return v.IsDVRPeer(st.Host, peer)
	}
	return v.HasNetwork(st.Host, part)
}

// PortParts returns the parts of host's bridges whose flows name the bridge's ports other
// than its fixed ones (see FixedPort): PartBridge and one per present network. A DVR peer's
// part names only fixed ports and a remote group's none, so a port that is not fixed
// coming, going or changing number leaves them as they are: on a network node, which has a
// peer part for thousands of hosts, they are most of the bridge.
func PortParts(v *topology.View, host string) map[string]bool {
	out := map[string]bool{topology.PartBridge: true}
	for _, n := range v.NetworksOn(host) {
		out[n] = true
	}
	return out
}

// PartsOn returns the parts of set that a bridge of kind br can have (a remote group's part
// is br-int's only): set itself when that is all of them.
func PartsOn(br topology.Bridge, set map[string]bool) map[string]bool {
	if br == topology.BrInt {
		return set
	}
	var out map[string]bool
	for part := range set {
		if !Shared(part) {
			continue
		}
		if out == nil {
			out = maps.Clone(set)
		}
		delete(out, part)
	}
	if out == nil {
		return set
	}
	return out
}

// Shared reports whether part holds the same flows on every bridge that has it (a remote
// group's members): its flows are computed once per View, for every bridge to share.
func Shared(part string) bool {
	_, _, ok := topology.PartRemoteGroup(part)
	return ok
}

// FlowsOf returns the flows of one part of bridge st at View v (canonical matches, in the
// order the apps make them).
func FlowsOf(v *topology.View, st *BridgeState, part string) []ofproto.Flow {
	var out []ofproto.Flow
	switch part {
	case topology.PartBridge:
		out = missFlows(st.Bridge)
		out = append(out, l2Bridge(st)...)
		if st.Bridge == topology.BrInt {
			out = append(out, firewallBridge()...)
			out = append(out, dhcpv4.bridgeFlows()...)
			out = append(out, dhcpv6.bridgeFlows()...)
		}
	default:
		if dir, group, ok := topology.PartRemoteGroup(part); ok {
			if st.Bridge == topology.BrInt {
				out = remoteGroupFlows(v, dir, group)
			}
		} else if peer, ok := topology.PartPeer(part); ok {
			out = dvrPeer(v, st, peer)
		} else if v.HasNetwork(st.Host, part) {
			out = l2Net(v, st, part)
			out = append(out, dvrNet(v, st, part)...)
			out = append(out, arpNet(v, st, part)...)
			out = append(out, ndNet(v, st, part)...)
			out = append(out, raNet(v, st, part)...)
			out = append(out, firewallNet(v, st, part)...)
			out = append(out, dhcpNet(v, st, part)...)
			out = append(out, dhcp6Net(v, st, part)...)
		}
	}
	for i := range out {
		out[i].Match = out[i].Match.Canonical()
	}
	return out
}

// Flows returns every flow bridge st must hold at View v: every part, sorted by table and
// priority (high first), stable. Conjunctive flows of one key in several parts are one flow
// (ofproto.MergeConjunctions), as the reconciler installs them.
func Flows(v *topology.View, st *BridgeState) []ofproto.Flow {
	parts := Parts(v, st)
	flows := make([][]ofproto.Flow, len(parts))
	for i, part := range parts {
		flows[i] = FlowsOf(v, st, part)
	}
	return joinParts(flows)
}

// joinParts returns the flows of parts (in the order of Parts) as one set: conjunctive flows
// of one key merged, sorted by table and priority, stable.
func joinParts(parts [][]ofproto.Flow) []ofproto.Flow {
	var out []ofproto.Flow
	conj := map[ofproto.FlowKey]int{}
	for _, fs := range parts {
		for _, f := range fs {
			if f.Conjunctive() {
				k := f.Key()
				if i, ok := conj[k]; ok {
					out[i], _ = ofproto.MergeConjunctions(&out[i], &f)
					continue
				}
				conj[k] = len(out)
			}
			out = append(out, f)
		}
	}
	return sortFlows(out)
}

// sortFlows returns flows by table and priority (ofproto.ComparePlaces), stable.
func sortFlows(out []ofproto.Flow) []ofproto.Flow {
	// A stable sort of indexes, then one copy: sorting the flows themselves would move
	// each (large) Flow O(log² n) times.
	idx := make([]int32, len(out))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(i, j int32) int { return ofproto.ComparePlaces(&out[i], &out[j]) })
	sorted := make([]ofproto.Flow, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted
}

func sortedPortNames(ports map[string]uint32) []string {
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
