// Namespace plans per host, and the helpers' long poll for them.

package engine

import (
	"bytes"
	"context"
	"encoding/json"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

type hostPlan struct {
	plan plan.Plan
	// bodies are the JSON of each of its namespaces, by name, to tell real changes apart.
	bodies map[string][]byte
	// invalid: the last plan computed for the host failed validation and was not
	// published, so plan is no base to recompute from by namespaces.
	invalid bool
}

// sameAs reports whether p, with namespace bodies bodies, has the content of hp.
func (hp *hostPlan) sameAs(p plan.Plan, bodies map[string][]byte) bool {
	if hp == nil || hp.invalid || len(hp.plan.Namespaces) != len(p.Namespaces) {
		return false
	}
	for i, ns := range p.Namespaces {
		if hp.plan.Namespaces[i].Name != ns.Name || !bytes.Equal(hp.bodies[ns.Name], bodies[ns.Name]) {
			return false
		}
	}
	return true
}

// updatePlans recomputes the namespace plans of hosts and wakes the helpers waiting for one
// that changed. A host with namespaces listed in changed has only those recomputed,
// encoded and validated from its current plan (apps.Replan); the others are computed
// whole. A plan keeps the revision at which its content last changed.
func (e *Engine) updatePlans(v *topology.View, hosts []string, changed map[string]map[string]bool) {
	published := false
	for _, h := range hosts {
		if v.Host(h) == nil {
			e.mu.Lock()
			delete(e.plans, h)
			e.mu.Unlock()
			continue
		}
		e.mu.Lock()
		old := e.plans[h]
		e.mu.Unlock()
		names := changed[h]
		var p plan.Plan
		if names != nil && old != nil && !old.invalid {
			p = apps.Replan(v, h, old.plan, names)
		} else {
			p, names = apps.Plan(v, h), nil
		}
		bodies := make(map[string][]byte, len(p.Namespaces))
		var err error
		for _, ns := range p.Namespaces {
			if b, ok := old.bodyOf(ns.Name); ok && names != nil && !names[ns.Name] {
				bodies[ns.Name] = b // kept by Replan as it was
			} else if bodies[ns.Name], err = json.Marshal(ns); err != nil {
				break
			}
		}
		if err != nil {
			e.log.Error("encoding plan", zap.String("host", h), zap.Error(err))
			continue
		}
		if old.sameAs(p, bodies) {
			continue
		}
		if names != nil {
			err = p.ValidateChanged(names)
		} else {
			err = p.Validate()
		}
		if err != nil {
			e.log.Error("computed an invalid plan: not published", zap.String("host", h), zap.Error(err))
			if old != nil {
				e.mu.Lock()
				e.plans[h] = &hostPlan{plan: old.plan, bodies: old.bodies, invalid: true}
				e.mu.Unlock()
			}
			continue
		}
		e.mu.Lock()
		e.plans[h] = &hostPlan{plan: p, bodies: bodies}
		e.mu.Unlock()
		published = true
	}
	if published {
		e.mu.Lock()
		close(e.planCh)
		e.planCh = make(chan struct{})
		e.mu.Unlock()
	}
}

// bodyOf returns the JSON of hp's namespace name.
func (hp *hostPlan) bodyOf(name string) ([]byte, bool) {
	if hp == nil {
		return nil, false
	}
	b, ok := hp.bodies[name]
	return b, ok
}

// WaitPlan returns host's plan once its revision is above after, waiting until ctx ends
// (then it returns ctx's error; the API turns that into "nothing newer").
func (e *Engine) WaitPlan(ctx context.Context, host string, after int64) (plan.Plan, error) {
	for {
		e.mu.Lock()
		hp, ch := e.plans[host], e.planCh
		e.mu.Unlock()
		if hp != nil && hp.plan.Revision > after {
			return hp.plan, nil
		}
		select {
		case <-ctx.Done():
			return plan.Plan{}, ctx.Err()
		case <-ch:
		}
	}
}
