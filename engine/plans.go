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
	body []byte // JSON without the revision, to tell real changes apart
}

// updatePlans recomputes the namespace plans of hosts and wakes the helpers waiting for one
// that changed. A plan keeps the revision at which its content last changed.
func (e *Engine) updatePlans(v *topology.View, hosts []string) {
	changed := false
	for _, h := range hosts {
		if v.Host(h) == nil {
			e.mu.Lock()
			delete(e.plans, h)
			e.mu.Unlock()
			continue
		}
		p := apps.Plan(v, h)
		rev := p.Revision
		p.Revision = 0
		body, err := json.Marshal(p)
		if err != nil {
			e.log.Error("encoding plan", zap.String("host", h), zap.Error(err))
			continue
		}
		p.Revision = rev
		e.mu.Lock()
		old := e.plans[h]
		e.mu.Unlock()
		if old != nil && bytes.Equal(old.body, body) {
			continue
		}
		if err := p.Validate(); err != nil {
			e.log.Error("computed an invalid plan: not published", zap.String("host", h), zap.Error(err))
			continue
		}
		e.mu.Lock()
		e.plans[h] = &hostPlan{plan: p, body: body}
		e.mu.Unlock()
		changed = true
	}
	if changed {
		e.mu.Lock()
		close(e.planCh)
		e.planCh = make(chan struct{})
		e.mu.Unlock()
	}
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
