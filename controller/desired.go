// A reconciler's desired set: flows checked and held by part.

package controller

import (
	"fmt"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
)

// want is a desired flow, packed (a bridge holds thousands, a controller millions), and the
// part of the desired set it belongs to (see SetParts).
type want struct {
	flow *ofproto.PackedFlow
	part string
}

// check validates flows and returns them packed and keyed.
func (r *Reconciler) check(flows []ofproto.Flow) (map[ofproto.FlowKey]*ofproto.PackedFlow, error) {
	out := make(map[ofproto.FlowKey]*ofproto.PackedFlow, len(flows))
	for i := range flows {
		f := &flows[i]
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("flow %d (%s): %w", i, f.String(), err)
		}
		if !r.owns(f.Cookie) {
			return nil, fmt.Errorf("flow %d (%s): cookie %#x is outside this controller's ownership (mask %#x value %#x)",
				i, f.String(), f.Cookie, r.cfg.CookieMask, r.cfg.CookieValue)
		}
		p := ofproto.Pack(f)
		if prev, dup := out[p.Key]; dup && !sameFlow(prev, &p) {
			return nil, fmt.Errorf("flow %d (%s) has the same table, priority and match as %s", i, f.String(), prev.String())
		}
		out[p.Key] = &p
	}
	return out, nil
}

// sameFlow reports whether installing g where f is would change nothing.
func sameFlow(f, g *ofproto.PackedFlow) bool {
	return f.Cookie == g.Cookie && f.IdleTimeout == g.IdleTimeout && f.HardTimeout == g.HardTimeout &&
		f.Instructions == g.Instructions
}

// SetDesired replaces the desired flow set. An invalid set is refused as a whole and
// changes nothing. The switch is updated in the background when attached.
func (r *Reconciler) SetDesired(flows []ofproto.Flow) error {
	return r.SetParts(map[string][]ofproto.Flow{"": flows}, true)
}

// SetParts replaces the desired flows of the parts given (a part with no flows is
// removed) and keeps the others', or removes them too when complete. A caller that
// computes its flows in parts recomputes and hands over only the parts that changed. Two
// parts may not hold the same key. An invalid update is refused as a whole and changes
// nothing.
func (r *Reconciler) SetParts(parts map[string][]ofproto.Flow, complete bool) error {
	return r.SetPartsAt(0, parts, complete)
}

// SetPartsAt is SetParts for the desired set of topology revision rev (0: none): once a
// pass has installed all of it, Stats reports rev as realized, as OVN reports the nb_cfg
// a chassis has caught up with.
func (r *Reconciler) SetPartsAt(rev int64, parts map[string][]ofproto.Flow, complete bool) error {
	checked := make(map[string]map[ofproto.FlowKey]*ofproto.PackedFlow, len(parts))
	for part, flows := range parts {
		d, err := r.check(flows)
		if err != nil {
			return fmt.Errorf("desired flows of %016x, part %q: %w", r.dpid, part, err)
		}
		checked[part] = d
	}
	r.mu.Lock()
	replaced := func(part string) bool {
		_, given := checked[part]
		return given || complete
	}
	given := 0
	for _, d := range checked {
		given += len(d)
	}
	owner := make(map[ofproto.FlowKey]string, given) // which given part has each key
	for part, d := range checked {
		for k := range d {
			if w, ok := r.desired[k]; ok && w.part != part && !replaced(w.part) {
				r.mu.Unlock()
				return fmt.Errorf("desired flows of %016x: part %q has %s, which part %q holds", r.dpid, part, w.flow.String(), w.part)
			}
			if other, dup := owner[k]; dup {
				r.mu.Unlock()
				return fmt.Errorf("desired flows of %016x: parts %q and %q both have %s", r.dpid, min(other, part), max(other, part), d[k].String())
			}
			owner[k] = part
		}
	}
	// Remove what the replaced parts held and the new sets do not (an unchanged flow keeps
	// its packed copy, which the mirror may share), then add what is new. Only the replaced
	// parts' keys are visited: a bridge with 40k flows updates one network's part cheaply.
	var replacedParts []string
	if complete {
		for part := range r.partKeys {
			replacedParts = append(replacedParts, part)
		}
	}
	for part := range checked {
		if _, ok := r.partKeys[part]; !ok || !complete {
			replacedParts = append(replacedParts, part)
		}
	}
	for _, part := range replacedParts {
		for k := range r.partKeys[part] {
			w, ok := r.desired[k]
			if !ok || w.part != part {
				continue
			}
			if nf, ok := checked[part][k]; ok && sameFlow(w.flow, nf) {
				continue
			}
			delete(r.desired, k)
			delete(r.failed, k) // gone or new content: retry now
			r.pending[k] = struct{}{}
		}
		delete(r.partKeys, part)
	}
	for part, d := range checked {
		keys := make(map[ofproto.FlowKey]struct{}, len(d))
		for k, f := range d {
			keys[k] = struct{}{}
			if w, ok := r.desired[k]; ok && sameFlow(w.flow, f) {
				r.desired[k] = want{flow: w.flow, part: part}
				continue
			}
			delete(r.failed, k)
			r.desired[k] = want{flow: f, part: part}
			r.pending[k] = struct{}{}
		}
		if len(keys) > 0 {
			r.partKeys[part] = keys
		}
	}
	r.primed = true
	if rev > r.stats.DesiredRevision {
		r.stats.DesiredRevision = rev
	}
	r.mu.Unlock()
	r.kick()
	return nil
}

// Desired returns a copy of the desired set, sorted by table, priority (high first), key.
func (r *Reconciler) Desired() []ofproto.Flow {
	r.mu.Lock()
	out := make([]ofproto.Flow, 0, len(r.desired))
	for _, w := range r.desired {
		if f, err := w.flow.Unpack(); err == nil { // packed by check: always unpacks
			out = append(out, f)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b ofproto.Flow) int { return ofproto.CompareFlows(&a, &b) })
	return out
}
