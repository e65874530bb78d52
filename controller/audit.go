// Audits: what a switch holds compared with the desired set, with counters.

package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// FlowState says how a flow of an audit compares with the desired set.
type FlowState uint8

// Flow states.
const (
	FlowOK      FlowState = iota // desired and installed as desired
	FlowMissing                  // desired, not on the switch (or there with other instructions)
	FlowExtra                    // on the switch with our cookie, not desired (or not as desired)
)

func (s FlowState) String() string {
	switch s {
	case FlowOK:
		return "ok"
	case FlowMissing:
		return "missing"
	}
	return "extra"
}

// AuditFlow is one flow of an audit.
type AuditFlow struct {
	Flow  ofproto.Flow
	State FlowState
	// Packets and Bytes are the switch's counters of the flow at the dump (0 for a
	// missing flow).
	Packets, Bytes uint64
}

// flowCounters are a dumped flow's packet and byte counters.
type flowCounters struct{ packets, bytes uint64 }

// Audit compares what a switch held when it was dumped with the desired set.
type Audit struct {
	At             time.Time   // when the dump was read
	Flows          []AuditFlow // desired and extra flows, sorted by table, priority (high first), match
	Missing, Extra int
}

// Audit reads the switch's flows and compares them with the desired set. A desired flow the
// switch lacks, or holds with other instructions or cookie, is missing; a flow with our cookie
// that is not desired (as it is) is extra; flows of other owners are not listed. An audit
// younger than maxAge is returned instead of dumping again, so that a page asked for often
// costs a switch at most one dump per maxAge. The dump becomes the reconciler's mirror, and
// any drift found starts a pass that repairs it (the returned audit still shows the drift).
// Audits share their Flows: callers must not modify them.
func (r *Reconciler) Audit(ctx context.Context, maxAge time.Duration) (Audit, error) {
	if a, ok := r.cachedAudit(maxAge); ok {
		return a, nil
	}
	if err := r.lockPass(ctx); err != nil {
		return Audit{}, fmt.Errorf("audit %016x: %w", r.dpid, err)
	}
	defer r.unlockPass()
	if a, ok := r.cachedAudit(maxAge); ok { // another caller dumped while we waited
		return a, nil
	}
	r.mu.Lock()
	sess := r.sess
	r.mu.Unlock()
	if sess == nil {
		return Audit{}, fmt.Errorf("audit %016x: %w", r.dpid, ErrNotConnected)
	}
	counters := map[ofproto.FlowKey]flowCounters{}
	inst, foreign, err := r.dump(ctx, sess, counters)
	if err != nil {
		return Audit{}, fmt.Errorf("audit %016x: %w", r.dpid, err)
	}
	a := Audit{At: time.Now()}
	r.mu.Lock()
	if r.sess != sess {
		r.mu.Unlock()
		return Audit{}, fmt.Errorf("audit %016x: %w", r.dpid, ErrNotConnected)
	}
	for k, w := range r.desired {
		st := FlowOK
		if have, ok := inst[k]; !ok || !sameFlow(have, w.flow) {
			st = FlowMissing
			a.Missing++
		}
		if f, err := w.flow.Unpack(); err == nil {
			af := AuditFlow{Flow: f, State: st}
			if st == FlowOK {
				c := counters[k]
				af.Packets, af.Bytes = c.packets, c.bytes
			}
			a.Flows = append(a.Flows, af)
		}
	}
	for k, have := range inst {
		if !r.owns(have.Cookie) {
			continue
		}
		if w, ok := r.desired[k]; ok && sameFlow(have, w.flow) {
			continue
		}
		a.Extra++
		if f, err := have.Unpack(); err == nil {
			c := counters[k]
			a.Flows = append(a.Flows, AuditFlow{Flow: f, State: FlowExtra, Packets: c.packets, Bytes: c.bytes})
		}
	}
	// No pass runs while we hold the token: the dump is the truth to diff against next.
	r.installed, r.synced = inst, true
	r.fullDiff = true
	r.stats.ForeignLeft, r.stats.Foreign = foreign, foreign
	r.stats.Missing, r.stats.Extra = a.Missing, a.Extra
	r.stats.Audits++
	slices.SortFunc(a.Flows, func(x, y AuditFlow) int {
		if c := ofproto.CompareFlows(&x.Flow, &y.Flow); c != 0 {
			return c
		}
		return int(x.State) - int(y.State)
	})
	r.audit = &a
	drift := a.Missing+a.Extra > 0
	r.mu.Unlock()
	if drift {
		r.log.Info("audit found drift; repairing", zap.Int("missing", a.Missing), zap.Int("extra", a.Extra))
		r.kick()
	}
	return a, nil
}

func (r *Reconciler) cachedAudit(maxAge time.Duration) (Audit, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.audit == nil || time.Since(r.audit.At) >= maxAge {
		return Audit{}, false
	}
	return *r.audit, true
}
