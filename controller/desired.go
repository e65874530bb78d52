// A reconciler's desired set: flows checked and held by part, a part private to the bridge
// or shared by many, and the conjunctive flows that several parts hold under one key.

package controller

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/ofproto"
)

// want is a desired flow, packed (a bridge holds thousands, a controller millions), and the
// part of the desired set that holds it: mergedPart when several parts hold conjunctive
// flows of its key, whose flows are then in Reconciler.merged.
type want struct {
	flow *ofproto.PackedFlow
	part string
}

// mergedPart is want.part of a flow that several parts hold (part names have no NUL).
const mergedPart = "\x00merged"

// Update is a change of a reconciler's desired set. Parts replaces the private parts it
// names and Shared the shared ones (a part with no flows, or a nil SharedPart, is removed);
// the other parts are kept, or removed too when Complete. Revision is the topology revision
// of the resulting set (0: none): once a pass has installed all of it, Stats reports it as
// realized, as OVN reports the nb_cfg a chassis has caught up with.
//
// Two parts may hold the same key only with conjunctive flows of equal cookie and timeouts:
// the bridge then gets one flow with the conjunction actions of all of them
// (ofproto.MergeConjunctions), which follows the parts as they change.
type Update struct {
	Revision int64
	Parts    map[string][]ofproto.Flow
	Shared   map[string]*SharedPart
	Complete bool
}

// gives reports whether u names part, private or shared.
func (u *Update) gives(part string) bool {
	_, private := u.Parts[part]
	_, shared := u.Shared[part]
	return private || shared
}

// SharedPart is a part of the desired flows that many bridges hold alike (the members of a
// security group): validated and packed once, and held by every reconciler that is given it
// (they share its flows). Each version knows what changed since the one before, so that a
// reconciler holding that one applies only the difference. It is immutable.
type SharedPart struct {
	series  *sharedSeries // the versions of one part
	version uint64
	flows   map[ofproto.FlowKey]*ofproto.PackedFlow
	changed []ofproto.FlowKey // added or changed since version-1
	removed []ofproto.FlowKey // gone since version-1
	cookies []uint64          // the distinct cookies of flows
}

// sharedSeries identifies the versions of one SharedPart (not zero-sized: distinct
// allocations must have distinct addresses).
type sharedSeries struct{ _ byte }

// NewSharedPart validates and packs flows as the version that follows prev (nil: the first
// of a new series), or returns prev when flows are exactly its flows. Two flows of one key
// are refused unless identical.
func NewSharedPart(flows []ofproto.Flow, prev *SharedPart) (*SharedPart, error) {
	d, err := checkFlows(flows, nil)
	if err != nil {
		return nil, err
	}
	s := &SharedPart{series: &sharedSeries{}, version: 1, flows: d}
	cookies := map[uint64]bool{}
	for _, f := range d {
		cookies[f.Cookie] = true
	}
	s.cookies = slices.Sorted(maps.Keys(cookies))
	if prev == nil {
		return s, nil
	}
	s.series, s.version = prev.series, prev.version+1
	for k, f := range d {
		if old, ok := prev.flows[k]; ok && sameFlow(old, f) {
			d[k] = old // share the packed copy
			continue
		}
		s.changed = append(s.changed, k)
	}
	for k := range prev.flows {
		if _, ok := d[k]; !ok {
			s.removed = append(s.removed, k)
		}
	}
	if len(s.changed) == 0 && len(s.removed) == 0 {
		// Unchanged: the same version, so that the bridges given this one and those still
		// holding prev both stay one difference away from the next.
		return prev, nil
	}
	return s, nil
}

// Changes returns how many flows this version added or changed, and removed, since the one
// before.
func (s *SharedPart) Changes() (changed, removed int) { return len(s.changed), len(s.removed) }

// follows reports whether s is the version right after held.
func (s *SharedPart) follows(held *SharedPart) bool {
	return held != nil && held.series == s.series && held.version+1 == s.version
}

// checkFlows validates flows (and their cookies with owns, unless nil) and returns them
// packed and keyed.
func checkFlows(flows []ofproto.Flow, owns func(cookie uint64) error) (map[ofproto.FlowKey]*ofproto.PackedFlow, error) {
	out := make(map[ofproto.FlowKey]*ofproto.PackedFlow, len(flows))
	for i := range flows {
		f := &flows[i]
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("flow %d (%s): %w", i, f.String(), err)
		}
		if owns != nil {
			if err := owns(f.Cookie); err != nil {
				return nil, fmt.Errorf("flow %d (%s): %w", i, f.String(), err)
			}
		}
		p := ofproto.Pack(f)
		if prev, dup := out[p.Key]; dup && !sameFlow(prev, &p) {
			return nil, fmt.Errorf("flow %d (%s) has the same table, priority and match as %s", i, f.String(), prev.String())
		}
		out[p.Key] = &p
	}
	return out, nil
}

// ownsCookie returns an error for a cookie outside this controller's ownership.
func (r *Reconciler) ownsCookie(cookie uint64) error {
	if !r.owns(cookie) {
		return fmt.Errorf("cookie %#x is outside this controller's ownership (mask %#x value %#x)", cookie, r.cfg.CookieMask, r.cfg.CookieValue)
	}
	return nil
}

// sameFlow reports whether installing g where f is would change nothing.
func sameFlow(f, g *ofproto.PackedFlow) bool {
	return f.Cookie == g.Cookie && f.IdleTimeout == g.IdleTimeout && f.HardTimeout == g.HardTimeout &&
		f.Instructions == g.Instructions
}

// mergeable reports whether f and g may share a key: both conjunctive, same cookie and
// timeouts.
func mergeable(f, g *ofproto.PackedFlow) bool {
	return f.Conjunctive && g.Conjunctive && f.Cookie == g.Cookie && f.IdleTimeout == g.IdleTimeout && f.HardTimeout == g.HardTimeout
}

// SetDesired replaces the desired flow set. An invalid set is refused as a whole and
// changes nothing. The switch is updated in the background when attached.
func (r *Reconciler) SetDesired(flows []ofproto.Flow) error {
	return r.SetParts(map[string][]ofproto.Flow{"": flows}, true)
}

// SetParts replaces the desired flows of the private parts given and keeps the others', or
// removes them too when complete (Update).
func (r *Reconciler) SetParts(parts map[string][]ofproto.Flow, complete bool) error {
	return r.Set(Update{Parts: parts, Complete: complete})
}

// contrib is one part's flow for a key in an update (nil: the part no longer holds it).
type contrib struct {
	part string
	flow *ofproto.PackedFlow
}

// Set applies u. A caller that computes its flows in parts recomputes and hands over only
// the parts that changed; a shared part a reconciler holds the previous version of costs
// only its difference. An invalid update is refused as a whole and changes nothing.
func (r *Reconciler) Set(u Update) error {
	for part := range u.Parts {
		if strings.ContainsRune(part, 0) {
			return fmt.Errorf("desired flows of %016x: part name %q has a NUL", r.dpid, part)
		}
	}
	for part := range u.Shared {
		if strings.ContainsRune(part, 0) {
			return fmt.Errorf("desired flows of %016x: part name %q has a NUL", r.dpid, part)
		}
	}
	checked := make(map[string]map[ofproto.FlowKey]*ofproto.PackedFlow, len(u.Parts))
	for part, flows := range u.Parts {
		if _, both := u.Shared[part]; both {
			return fmt.Errorf("desired flows of %016x: part %q given both private and shared", r.dpid, part)
		}
		d, err := checkFlows(flows, r.ownsCookie)
		if err != nil {
			return fmt.Errorf("desired flows of %016x, part %q: %w", r.dpid, part, err)
		}
		checked[part] = d
	}
	for part, s := range u.Shared {
		if s == nil {
			continue
		}
		for _, c := range s.cookies {
			if err := r.ownsCookie(c); err != nil {
				return fmt.Errorf("desired flows of %016x, shared part %q: %w", r.dpid, part, err)
			}
		}
	}

	r.mu.Lock()
	ops, more := r.opsOf(u, checked)
	// Keys that several parts hold (now or after the update) are resolved first, so that
	// a refused update changes nothing.
	slow := map[ofproto.FlowKey]map[string]*ofproto.PackedFlow{}
	for k, o := range ops {
		if w, ok := r.desired[k]; !ok || w.part == o.part {
			if _, several := more[k]; !several {
				continue
			}
		}
		held, err := r.resolve(k, append([]contrib{o}, more[k]...))
		if err != nil {
			r.mu.Unlock()
			return err
		}
		slow[k] = held
	}
	for k, o := range ops {
		if held, ok := slow[k]; ok {
			r.holdAll(k, held)
		} else {
			r.hold(k, o.part, o.flow)
		}
	}
	r.setPartKeys(u, checked)
	r.primed = true
	if u.Revision > r.stats.DesiredRevision {
		r.stats.DesiredRevision = u.Revision
	}
	r.mu.Unlock()
	r.kick()
	return nil
}

// opsOf returns what update u does to each key: the first part's contribution in ops, and
// any further ones (the same key in several parts) in more.
func (r *Reconciler) opsOf(u Update, checked map[string]map[ofproto.FlowKey]*ofproto.PackedFlow) (ops map[ofproto.FlowKey]contrib, more map[ofproto.FlowKey][]contrib) {
	ops = map[ofproto.FlowKey]contrib{}
	more = map[ofproto.FlowKey][]contrib{}
	put := func(k ofproto.FlowKey, part string, f *ofproto.PackedFlow) {
		if _, ok := ops[k]; ok {
			more[k] = append(more[k], contrib{part, f})
		} else {
			ops[k] = contrib{part, f}
		}
	}
	// replace gives part its new flows (nil: none), releasing the keys it held that they
	// lack.
	replace := func(part string, flows map[ofproto.FlowKey]*ofproto.PackedFlow) {
		r.heldKeys(part, func(k ofproto.FlowKey) {
			if _, ok := flows[k]; !ok {
				put(k, part, nil)
			}
		})
		for k, f := range flows {
			put(k, part, f)
		}
	}
	for part, d := range checked {
		replace(part, d)
	}
	for part, s := range u.Shared {
		switch {
		case s == nil:
			replace(part, nil)
		case s.follows(r.shared[part]):
			for _, k := range s.changed {
				put(k, part, s.flows[k])
			}
			for _, k := range s.removed {
				put(k, part, nil)
			}
		case r.shared[part] == s:
		default:
			replace(part, s.flows)
		}
	}
	if u.Complete {
		for part := range r.partKeys {
			if !u.gives(part) {
				replace(part, nil)
			}
		}
		for part := range r.shared {
			if !u.gives(part) {
				replace(part, nil)
			}
		}
	}
	return ops, more
}

// heldKeys calls fn with every key that part holds now.
func (r *Reconciler) heldKeys(part string, fn func(ofproto.FlowKey)) {
	for k := range r.partKeys[part] {
		fn(k)
	}
	if s := r.shared[part]; s != nil {
		for k := range s.flows {
			fn(k)
		}
	}
}

// resolve returns which part holds which flow of key k after the contributions cs, or an
// error if they may not share it.
func (r *Reconciler) resolve(k ofproto.FlowKey, cs []contrib) (map[string]*ofproto.PackedFlow, error) {
	held := map[string]*ofproto.PackedFlow{}
	if w, ok := r.desired[k]; ok && w.part == mergedPart {
		maps.Copy(held, r.merged[k])
	} else if ok {
		held[w.part] = w.flow
	}
	for _, c := range cs {
		if c.flow == nil {
			delete(held, c.part)
		} else {
			held[c.part] = c.flow
		}
	}
	if len(held) < 2 {
		return held, nil
	}
	parts := slices.Sorted(maps.Keys(held))
	for _, p := range parts[1:] {
		if !mergeable(held[parts[0]], held[p]) {
			return nil, fmt.Errorf("desired flows of %016x: parts %q and %q both have %s", r.dpid, parts[0], p, held[p].String())
		}
	}
	return held, nil
}

// hold makes f (nil: nothing) the desired flow of key k, held by part.
func (r *Reconciler) hold(k ofproto.FlowKey, part string, f *ofproto.PackedFlow) {
	w, ok := r.desired[k]
	switch {
	case f == nil:
		if !ok {
			return
		}
		delete(r.desired, k)
	case ok && sameFlow(w.flow, f):
		// Unchanged: keep the packed copy, which the mirror may share.
		r.desired[k] = want{flow: w.flow, part: part}
		return
	default:
		r.desired[k] = want{flow: f, part: part}
	}
	delete(r.failed, k) // gone or new content: retry now
	r.pending[k] = struct{}{}
}

// holdAll makes the desired flow of key k the one the parts of held hold together.
func (r *Reconciler) holdAll(k ofproto.FlowKey, held map[string]*ofproto.PackedFlow) {
	if len(held) < 2 {
		delete(r.merged, k)
		for part, f := range held {
			r.hold(k, part, f)
			return
		}
		r.hold(k, "", nil)
		return
	}
	r.merged[k] = held
	r.hold(k, mergedPart, mergeFlows(held))
}

// mergeFlows returns the one flow installing the mergeable flows of held.
func mergeFlows(held map[string]*ofproto.PackedFlow) *ofproto.PackedFlow {
	fs := slices.SortedFunc(maps.Values(held), func(a, b *ofproto.PackedFlow) int { return cmp.Compare(a.Instructions, b.Instructions) })
	out, err := fs[0].Unpack()
	if err != nil { // packed by checkFlows: always unpacks
		return fs[0]
	}
	for _, p := range fs[1:] {
		g, err := p.Unpack()
		if err != nil {
			continue
		}
		out, _ = ofproto.MergeConjunctions(&out, &g)
	}
	p := ofproto.Pack(&out)
	return &p
}

// setPartKeys records which keys the parts that u gives hold, and forgets the parts it
// removes.
func (r *Reconciler) setPartKeys(u Update, checked map[string]map[ofproto.FlowKey]*ofproto.PackedFlow) {
	if u.Complete {
		for part := range r.partKeys {
			if !u.gives(part) {
				delete(r.partKeys, part)
			}
		}
		for part := range r.shared {
			if !u.gives(part) {
				delete(r.shared, part)
			}
		}
	}
	for part, d := range checked {
		delete(r.shared, part)
		if len(d) == 0 {
			delete(r.partKeys, part)
			continue
		}
		keys := make(map[ofproto.FlowKey]struct{}, len(d))
		for k := range d {
			keys[k] = struct{}{}
		}
		r.partKeys[part] = keys
	}
	for part, s := range u.Shared {
		delete(r.partKeys, part)
		if s == nil || len(s.flows) == 0 {
			delete(r.shared, part)
			continue
		}
		r.shared[part] = s
	}
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
