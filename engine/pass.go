// One pass of the control loop: follow the change log into the view, allocate, push, plan.

package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dvrflow/dvrflow/topology"
	"go.uber.org/zap"
)

// pass brings the view up to the store's revision, allocates local VLANs for what the new
// placement needs, and recomputes flows, plans and port statuses of the affected hosts.
func (e *Engine) pass(ctx context.Context) error {
	start := time.Now()
	if err := e.follow(ctx); err != nil {
		return err
	}
	v := e.view
	e.followMoves(v)
	e.answerHeldARP()
	e.answerHeldDHCP()
	e.answerHeldDHCPv6()
	e.mu.Lock()
	dirty := e.dirtyDPIDs
	e.dirtyDPIDs = map[uint64]bool{}
	e.mu.Unlock()
	hosts := e.pendingHostList(v)
	if len(hosts) == 0 && len(dirty) == 0 && len(e.pendingParts) == 0 && len(e.pendingPlans) == 0 {
		e.mu.Lock()
		e.stats.Revision = v.Revision
		e.mu.Unlock()
		return nil
	}
	allocated, err := e.allocateVLANs(ctx, v, hosts)
	if err != nil {
		e.requeue(dirty)
		return err
	}
	if allocated && v.Revision != e.allocatedAt {
		// The allocations come back through the change log: the next pass applies them
		// and pushes everything pending at once.
		e.allocatedAt = v.Revision
		e.requeue(dirty)
		e.poke()
		return nil
	}
	if allocated {
		e.log.Warn("local VLAN allocation changed nothing visible: pushing without it", zap.Int64("rev", v.Revision))
	}
	affected, parts, plans := e.pendingHosts, e.pendingParts, e.pendingPlans
	all := e.pendingAll
	e.pendingHosts, e.pendingParts, e.pendingPlans, e.pendingAll = map[string]bool{}, map[string]map[string]bool{}, map[string]map[string]bool{}, false
	bridges := e.pushFlows(v, all, affected, parts, dirty)
	e.shared.sweep(v)
	// The hosts whose ports changed first, whole: their helpers plug what the new ports
	// need (a new qrouter's links) while the others' plans, which gain a neighbour entry
	// or lose one, are recomputed namespace by namespace.
	e.updatePlans(v, hosts, nil)
	for _, h := range hosts {
		delete(plans, h)
	}
	e.updatePlans(v, slices.Sorted(maps.Keys(plans)), plans)
	e.kickRAs(raBridges(v, all, dirty, hosts, parts))
	statusHosts := slices.Clone(hosts)
	for dpid := range dirty {
		if h, br, ok := v.HostOfDPID(dpid); ok && br == topology.BrInt && !affected[h] {
			statusHosts = append(statusHosts, h)
		}
	}
	if err := e.updatePortStatus(ctx, v, statusHosts); err != nil {
		return err
	}
	took := time.Since(start)
	e.mu.Lock()
	e.stats.Revision = v.Revision
	e.stats.Recomputes++
	e.stats.LastRecompute = took
	e.stats.LastHosts = len(hosts)
	e.stats.LastBridges = bridges
	e.mu.Unlock()
	e.log.Debug("pass", zap.Int64("rev", v.Revision), zap.Int("hosts", len(hosts)),
		zap.Int("bridges", bridges), zap.Duration("took", took))
	return nil
}

// note adds what a view change affected to what the next push recomputes.
func (e *Engine) note(aff topology.Affected) {
	e.pendingAll = e.pendingAll || aff.All
	for h := range aff.Hosts {
		e.pendingHosts[h] = true
	}
	for h, names := range aff.Plans {
		if e.pendingPlans[h] == nil {
			e.pendingPlans[h] = map[string]bool{}
		}
		maps.Copy(e.pendingPlans[h], names)
	}
	for h, ps := range aff.Parts {
		if e.pendingParts[h] == nil {
			e.pendingParts[h] = map[string]bool{}
		}
		maps.Copy(e.pendingParts[h], ps)
	}
}

// follow applies the change log since the view's revision, or builds the view from a
// snapshot when there is none yet or the log cannot be applied, and notes what is affected.
func (e *Engine) follow(ctx context.Context) error {
	if e.view != nil {
		changes, err := e.store.ChangesSince(ctx, e.view.Revision, maxChangesPerPass)
		if err != nil {
			return fmt.Errorf("change log: %w", err)
		}
		if len(changes) == 0 {
			return nil
		}
		e.viewMu.Lock()
		aff, err := e.view.Apply(changes)
		e.viewMu.Unlock()
		if err == nil {
			e.note(aff)
			maps.Copy(e.pendingMoves, aff.Moves)
			if len(changes) >= maxChangesPerPass {
				e.poke() // more to read
			}
			return nil
		}
		e.log.Warn("change log not applicable: rebuilding the view from a snapshot", zap.Error(err))
	}
	topo, rev, err := e.store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	v := topology.NewView(topo, rev)
	e.viewMu.Lock()
	e.view = v
	e.viewMu.Unlock()
	e.pendingAll = true
	e.mu.Lock()
	e.stats.Snapshots++
	e.mu.Unlock()
	return nil
}

// pendingHostList returns the hosts to recompute: every registered host and every host
// holding local VLANs after a snapshot or a host change, else the affected ones.
func (e *Engine) pendingHostList(v *topology.View) []string {
	if e.pendingAll {
		set := map[string]bool{}
		for _, h := range v.HostNames() {
			set[h] = true
		}
		for _, h := range v.VLANHosts() {
			set[h] = true
		}
		return slices.Sorted(maps.Keys(set))
	}
	return slices.Sorted(maps.Keys(e.pendingHosts))
}

// requeue puts switches back for the next pass after a pass stopped early.
func (e *Engine) requeue(dpids map[uint64]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, whole := range dpids {
		e.dirtyDPIDs[id] = e.dirtyDPIDs[id] || whole
	}
}

// maxChangesPerPass bounds the change-log rows one pass applies; a longer backlog takes
// several passes, each pushing what it has.
const maxChangesPerPass = 20000
