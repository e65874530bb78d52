package topology_test

import (
	"math/rand/v2"
	"testing"

	"github.com/dvrflow/dvrflow/topology"
)

// TestNetworkOfVLANFollowsLocalVLANs applies random local VLAN creates, moves and deletes
// (duplicates included) and checks after each that NetworkOfVLAN, answered from the
// VLAN -> network index, agrees with a scan of LocalVLAN over every network.
func TestNetworkOfVLANFollowsLocalVLANs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	hosts := []string{"h1", "h2"}
	nets := []string{"n1", "n2", "n3", "n4"}
	const vlans = 4
	v := topology.NewView(&topology.Topology{LocalVLANs: []topology.LocalVLAN{{Host: "h1", NetworkID: "n1", VLAN: 1}}}, 1)
	for step := range 3000 {
		lv := topology.LocalVLAN{Host: hosts[r.IntN(len(hosts))], NetworkID: nets[r.IntN(len(nets))], VLAN: uint16(1 + r.IntN(vlans))}
		op := topology.OpCreate
		if r.IntN(3) == 0 {
			op = topology.OpDelete
			if cur, ok := v.LocalVLAN(lv.Host, lv.NetworkID); ok && r.IntN(4) > 0 {
				lv.VLAN = cur // mostly the VLAN the network holds; else a stale delete
			}
		}
		if _, err := v.Apply([]topology.Change{{Revision: int64(step + 2), Kind: topology.KindLocalVLAN, ID: lv.Key(), Op: op, Object: &lv}}); err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			for vl := uint16(0); vl <= vlans+1; vl++ {
				holders := map[string]bool{}
				for _, n := range nets {
					if got, ok := v.LocalVLAN(h, n); ok && got == vl {
						holders[n] = true
					}
				}
				got, ok := v.NetworkOfVLAN(h, vl)
				if ok != (len(holders) > 0) || (ok && !holders[got]) {
					t.Fatalf("step %d (%s %+v): NetworkOfVLAN(%s, %d) = %q %t, holders %v", step, op, lv, h, vl, got, ok, holders)
				}
			}
		}
	}
}
