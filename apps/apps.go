// Package apps is dvrflow's policy: the DVR pipeline's tables, declared once as data
// (pipeline.go), and the apps that fill them, each a pure function from the topology View
// and a bridge's state to the flows of the tables it owns (l2.go, dvr.go, arp.go), plus the
// namespace plan of each host (l3.go). Nothing here talks to a switch or a database: the
// controller feeds Views in and sends the flows out.
package apps

import (
	"cmp"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
)

// BridgeState is what the apps need to know of one connected switch besides the topology:
// whose bridge it is and its OpenFlow port numbers by name (from port desc and port-status).
type BridgeState struct {
	Host  string
	Role  Bridge
	Ports map[string]uint32
}

// Flows returns every flow bridge st must hold at View v: the miss flows declared by the
// pipeline and the flows of every app, in a stable order.
func Flows(v *View, st *BridgeState) []ofproto.Flow {
	out := missFlows(st.Role)
	out = append(out, l2Flows(v, st)...)
	out = append(out, dvrFlows(v, st)...)
	out = append(out, arpFlows(v, st)...)
	for i := range out {
		out[i].Match = out[i].Match.Canonical()
	}
	// A stable sort of indexes, then one copy: sorting the flows themselves would move
	// each (large) Flow O(log² n) times.
	idx := make([]int32, len(out))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(i, j int32) int {
		a, b := &out[i], &out[j]
		return cmp.Or(cmp.Compare(a.Table, b.Table), -cmp.Compare(a.Priority, b.Priority))
	})
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
