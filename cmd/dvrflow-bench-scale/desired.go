package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// hostSpec is what the simulator needs of one host.
type hostSpec struct {
	Name    string
	DPIDs   map[string]uint64
	VMPorts []string    // IDs of the VM ports bound there
	Links   []plan.Link // bridge-plugged links of its namespace plan
}

// view reads the topology from PostgreSQL, independently of the controller, and builds the
// apps' View of it.
func view(ctx context.Context, store *db.Store) (*topology.View, *topology.Topology, error) {
	t, rev, err := store.Snapshot(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot: %w", err)
	}
	return topology.NewView(t, rev), t, nil
}

// desired is the flows bridge b must hold at View v, with the ports the simulator has.
func desired(v *topology.View, b *simBridge, ports []ofsim.Port) map[ofproto.FlowKey]*ofproto.Flow {
	st := &apps.BridgeState{Host: b.host, Bridge: b.br, Ports: map[string]uint32{}}
	for _, p := range ports {
		st.Ports[p.Name] = p.No
	}
	fs := apps.Flows(v, st)
	out := make(map[ofproto.FlowKey]*ofproto.Flow, len(fs))
	for i := range fs {
		out[fs[i].Key()] = &fs[i]
	}
	return out
}

// diff compares the bridge's flows with the desired ones by key, cookie and instructions.
// It returns how many are missing (or differ) and how many are extra, and a few examples.
func diff(v *topology.View, b *simBridge) (missing, extra int, examples []string, err error) {
	ports, have, err := b.portsAndFlows()
	if err != nil {
		return 0, 0, nil, err
	}
	want := desired(v, b, ports)
	names := apps.TableNames(b.br)
	seen := make(map[ofproto.FlowKey]bool, len(have))
	for i := range have {
		k := have[i].Key()
		seen[k] = true
		w, ok := want[k]
		if !ok {
			extra++
			if len(examples) < 3 {
				examples = append(examples, "EXTRA "+have[i].Format(names))
			}
			continue
		}
		if !w.Equal(&have[i]) {
			missing++
			if len(examples) < 3 {
				examples = append(examples, "DIFFERS "+have[i].Format(names)+" WANT "+w.Format(names))
			}
		}
	}
	for k, w := range want {
		if !seen[k] {
			missing++
			if len(examples) < 3 {
				examples = append(examples, "MISSING "+w.Format(names))
			}
		}
	}
	return missing, extra, examples, nil
}

// carried returns the networks host h must carry, by this definition (from
// dvr-reference.md): a network is on a host when a port is bound there on it (VM ports and
// the fg- port of the host's fip namespace), when a router with a qrouter namespace on the
// host has an interface on it, or when the host (a dvr_snat node) runs the snat namespace
// of a router with an interface on it (its sg- port) or a gateway on it (its qg- port).
func carried(v *topology.View, h string) map[string]bool {
	out := map[string]bool{}
	for _, p := range v.PortsOn(h) {
		out[p.NetworkID] = true
	}
	for _, r := range v.RoutersOn(h) {
		if ri := v.Router(r); ri != nil {
			for _, s := range ri.Interfaces {
				out[s.NetworkID] = true
			}
		}
	}
	for _, r := range v.SNATRoutersOn(h) {
		if ri := v.Router(r); ri != nil {
			for _, s := range ri.Interfaces {
				out[s.NetworkID] = true
			}
			if ri.GatewayPort != nil {
				out[ri.GatewayPort.NetworkID] = true
			}
		}
	}
	return out
}

// networksInFlows returns the networks the flows of host h name: by VXLAN ID (tun_id
// matched or set) on any bridge, and by local VLAN (vlan_vid matched or set) on br-int.
func networksInFlows(v *topology.View, h string, br topology.Bridge, flows []ofproto.Flow, byVNI map[uint64]string) (map[string]bool, error) {
	out := map[string]bool{}
	note := func(f ofproto.Field) error {
		switch {
		case f.Class == ofproto.ClassBasic && f.Type == ofproto.OXMTunnelID && f.Mask == nil:
			vni := uint64(0)
			for _, c := range f.Value {
				vni = vni<<8 | uint64(c)
			}
			n, ok := byVNI[vni]
			if !ok {
				return fmt.Errorf("tun_id %d of no network", vni)
			}
			out[n] = true
		case br == topology.BrInt && f.Class == ofproto.ClassBasic && f.Type == ofproto.OXMVLANVID && len(f.Value) == 2:
			vid := (uint16(f.Value[0])<<8 | uint16(f.Value[1])) & 0xfff
			if vid == 0 {
				return nil
			}
			if n, ok := v.NetworkOfVLAN(h, vid); ok {
				out[n] = true
			}
		}
		return nil
	}
	for i := range flows {
		for _, fl := range flows[i].Match {
			if err := note(fl); err != nil {
				return nil, fmt.Errorf("%s: %w", flows[i].String(), err)
			}
		}
		for _, a := range flows[i].Actions {
			if sf, ok := a.(ofproto.SetField); ok {
				if err := note(sf.Field); err != nil {
					return nil, fmt.Errorf("%s: %w", flows[i].String(), err)
				}
			}
		}
	}
	return out, nil
}

// vniIndex maps VXLAN IDs to network IDs.
func vniIndex(v *topology.View, networks []string) map[uint64]string {
	out := map[uint64]string{}
	for _, id := range networks {
		if n := v.Network(id); n != nil && n.SegmentationID > 0 {
			out[uint64(n.SegmentationID)] = id
		}
	}
	return out
}

func setString(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}
