// Port status as Neutron reports it, from the ports the bridges report.

package engine

import (
	"context"
	"fmt"
	"maps"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/topology"
)

// updatePortStatus sets the status of the ports realized on hosts, as Neutron reports it:
// a VM port is ACTIVE while its tap is on its host's br-int, DOWN when not; a router
// interface, SNAT, gateway or agent gateway port is ACTIVE while its namespace end is on
// the br-int of a host where the view places it, DOWN when it is on none of them. Ports
// are left as they are while a br-int that decides is not connected.
func (e *Engine) updatePortStatus(ctx context.Context, v *topology.View, hosts []string) error {
	brInt := map[string]map[string]uint32{} // host -> its connected br-int's ports
	// portsOf copies a host's br-int ports under the engine lock, once per host: the
	// switch readers take that lock for every port event, so the lock is never held
	// across the computation.
	portsOf := func(host string) (map[string]uint32, bool) {
		if ps, ok := brInt[host]; ok {
			return ps, ps != nil
		}
		var ps map[string]uint32
		if id, ok := v.Host(host).BridgeID(topology.BrInt); ok {
			e.mu.Lock()
			if b := e.bridges[id]; b != nil {
				ps = maps.Clone(b.ports)
			}
			e.mu.Unlock()
		}
		brInt[host] = ps
		return ps, ps != nil
	}
	want := map[string]topology.PortStatus{}
	seen := map[string]bool{}
	// realized decides a router-owned port over every host the view places it on.
	realized := func(p *topology.PortInfo) {
		if p == nil || seen[p.ID] {
			return
		}
		seen[p.ID] = true
		st, decided := topology.PortStatusDown, true
		for _, h := range v.PortHosts(p) {
			ps, ok := portsOf(h)
			if !ok {
				decided = false
				continue
			}
			if _, ok := ps[apps.OVSPortName(p.Port)]; ok {
				st, decided = topology.PortStatusActive, true
				break
			}
		}
		if decided && p.Status != st {
			want[p.ID] = st
		}
	}
	for _, host := range hosts {
		present, ok := portsOf(host)
		if !ok {
			continue
		}
		for _, p := range v.PortsOn(host) {
			switch {
			case topology.IsDVRServiced(p.DeviceOwner):
				st := topology.PortStatusDown
				if _, ok := present[apps.VMPortName(p.ID)]; ok {
					st = topology.PortStatusActive
				}
				if p.Status != st {
					want[p.ID] = st
				}
			case p.DeviceOwner == topology.OwnerFloatingIPAgentGateway:
				realized(p)
			}
		}
		for _, rid := range append(v.RoutersOn(host), v.SNATRoutersOn(host)...) {
			r := v.Router(rid)
			if r == nil {
				continue
			}
			for _, s := range r.Interfaces {
				if s.RouterIf != nil {
					realized(s.RouterIf)
				}
				if s.SNATPort != nil {
					realized(s.SNATPort)
				}
			}
			if r.GatewayPort != nil {
				realized(r.GatewayPort)
			}
		}
	}
	if err := e.store.SetPortStatuses(ctx, want); err != nil {
		return fmt.Errorf("status of %d ports: %w", len(want), err)
	}
	return nil
}
