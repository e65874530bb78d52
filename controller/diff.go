// One reconcile pass: the diff of desired against installed, as ordered flow-mods.

package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Reconcile runs one pass now: dump the switch if the mirror is not valid, diff, send the
// difference and confirm it with a barrier (or a bundle commit).
func (r *Reconciler) Reconcile(ctx context.Context) (Result, error) {
	if err := r.lockPass(ctx); err != nil {
		return Result{}, fmt.Errorf("reconcile %016x: %w", r.dpid, err)
	}
	defer r.unlockPass()
	start := time.Now()
	r.mu.Lock()
	target := r.stats.DesiredRevision // what this pass diffs against, at least
	r.mu.Unlock()
	res, err := r.reconcile(ctx)
	took := time.Since(start)
	r.cfg.Observer.Reconciled(r.dpid, took, err)
	r.mu.Lock()
	r.stats.LastDuration = took
	r.stats.LastAt = start.Add(took)
	if err != nil {
		r.stats.LastError = err.Error()
	} else {
		r.stats.LastError = ""
		r.stats.Reconciles++
		if r.stats.Missing == 0 && target > r.stats.RealizedRevision {
			r.stats.RealizedRevision = target
		}
	}
	r.mu.Unlock()
	if err != nil {
		return res, fmt.Errorf("reconcile %016x: %w", r.dpid, err)
	}
	if res.FlowMods() > 0 || res.Failed > 0 {
		r.log.Info("reconciled", zap.Int("adds", res.Adds), zap.Int("modifies", res.Modifies),
			zap.Int("deletes", res.Deletes), zap.Bool("bundle", res.Bundled), zap.Bool("dumped", res.Dumped),
			zap.Int("failed", res.Failed), zap.Duration("took", time.Since(start)))
	}
	return res, nil
}

// lockPass waits for the pass token (or for ctx to end).
func (r *Reconciler) lockPass(ctx context.Context) error {
	select {
	case r.pass <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the running pass: %w", ctx.Err())
	}
}

func (r *Reconciler) unlockPass() { <-r.pass }

func (r *Reconciler) reconcile(ctx context.Context) (Result, error) {
	var res Result
	r.mu.Lock()
	sess, synced := r.sess, r.synced
	r.mu.Unlock()
	if sess == nil {
		return res, ErrNotConnected
	}
	if !synced {
		inst, foreign, err := r.dump(ctx, sess, nil)
		if err != nil {
			return res, err
		}
		res.Dumped = true
		r.mu.Lock()
		if r.sess != sess {
			r.mu.Unlock()
			return res, ErrNotConnected
		}
		r.installed, r.synced = inst, true
		r.fullDiff = true
		r.stats.Dumps++
		r.stats.ForeignLeft, r.stats.Foreign = foreign, foreign
		r.mu.Unlock()
	}

	r.mu.Lock()
	ops, deferred := r.diffLocked(time.Now())
	// What the diff looked at is settled (until the switch answers otherwise), but for the
	// deferred keys.
	r.fullDiff = false
	r.pending = make(map[ofproto.FlowKey]struct{}, len(r.deferred))
	for _, k := range r.deferred {
		r.pending[k] = struct{}{}
	}
	r.stats.Missing, r.stats.Extra = deferred, 0
	if len(ops) > 0 { // unconfirmed until the switch says otherwise
		r.stats.Missing, r.stats.Extra = opsDrift(ops, nil, deferred)
	}
	r.mu.Unlock()
	res.Deferred = deferred
	if len(ops) == 0 {
		return res, nil
	}
	r.observeSent(ops)
	for _, o := range ops {
		switch o.kind {
		case opAdd:
			res.Adds++
		case opModify:
			res.Modifies++
		case opDelete:
			res.Deletes++
		}
	}
	bundle := r.cfg.AlwaysBundle || (r.cfg.BundleThreshold > 0 && len(ops) >= r.cfg.BundleThreshold)
	failed, applied, bundled, err := r.send(ctx, sess, ops, bundle)
	res.Bundled = bundled
	res.Failed = len(failed)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Adds += uint64(res.Adds)
	r.stats.Modifies += uint64(res.Modifies)
	r.stats.Deletes += uint64(res.Deletes)
	r.stats.Errors += uint64(len(failed))
	if bundled && applied {
		r.stats.Bundles++
	}
	if err != nil {
		r.synced = false // state unknown: dump again next time
		return res, err
	}
	now := time.Now()
	if applied {
		r.stats.Missing, r.stats.Extra = opsDrift(ops, failed, deferred)
	}
	for i, o := range ops {
		if e, bad := failed[i]; bad {
			f := r.failed[o.key]
			if f == nil {
				f = &failure{}
				r.failed[o.key] = f
			}
			f.flow, f.err = o.kind.String()+" "+o.flow.String(), e
			f.attempts++
			f.next = now.Add(min(r.cfg.RetryBase<<min(f.attempts-1, 20), r.cfg.RetryMax))
			r.pending[o.key] = struct{}{} // diffed again at its retry
			r.log.Warn("switch refused flow", zap.String("flow", o.flow.String()), zap.Stringer("op", o.kind),
				zap.Error(e), zap.Int("attempts", f.attempts), zap.Time("retry_at", f.next))
			continue
		}
		if !applied {
			continue
		}
		delete(r.failed, o.key)
		if prev, ok := r.installed[o.key]; ok && !r.owns(prev.Cookie) {
			r.stats.Foreign-- // overwritten by a desired flow: ours now
		}
		switch o.kind {
		case opAdd, opModify:
			r.installed[o.key] = o.flow
		case opDelete:
			delete(r.installed, o.key)
		}
	}
	if !applied {
		// A refused bundle is rolled back as a whole: go again without the failed flows.
		r.dirty = true
		for _, o := range ops {
			r.pending[o.key] = struct{}{}
		}
	}
	return res, nil
}

// opsDrift counts the drift left by ops of which failed were refused (nil: all unconfirmed)
// and deferred desired flows were not sent: missing desired flows and extra owned flows.
func opsDrift(ops []op, failed map[int]error, deferred int) (missing, extra int) {
	missing = deferred
	for i, o := range ops {
		if failed != nil {
			if _, bad := failed[i]; !bad {
				continue
			}
		}
		if o.kind == opDelete {
			extra++
		} else {
			missing++
		}
	}
	return missing, extra
}

// observeSent tells the observer how many flow-mods of each cookie a pass sends.
func (r *Reconciler) observeSent(ops []op) {
	byCookie := map[uint64]int{}
	for _, o := range ops {
		byCookie[o.flow.Cookie]++
	}
	for c, n := range byCookie {
		r.cfg.Observer.FlowModsSent(r.dpid, c, n)
	}
}

// diffLocked computes the ordered flow-mods: adds and modifies first, deletes last, so no
// table is ever left empty on the way.
func (r *Reconciler) diffLocked(now time.Time) (ops []op, deferred int) {
	r.deferred = r.deferred[:0]
	if r.fullDiff {
		for k := range r.desired {
			if r.diffKeyLocked(k, now, &ops) {
				deferred++
			}
		}
		for k := range r.installed {
			if _, ok := r.desired[k]; !ok {
				r.diffKeyLocked(k, now, &ops)
			}
		}
	} else {
		for k := range r.pending {
			if r.diffKeyLocked(k, now, &ops) {
				deferred++
			}
		}
	}
	slices.SortStableFunc(ops, func(a, b op) int {
		if (a.kind == opDelete) != (b.kind == opDelete) {
			if a.kind == opDelete {
				return 1
			}
			return -1
		}
		if a.key.Table != b.key.Table {
			return int(a.key.Table) - int(b.key.Table)
		}
		return int(b.key.Priority) - int(a.key.Priority)
	})
	return ops, deferred
}

// diffKeyLocked appends the flow-mod key k needs, if any. It reports whether k is a desired
// flow deferred until its retry time (noted in r.deferred).
func (r *Reconciler) diffKeyLocked(k ofproto.FlowKey, now time.Time, ops *[]op) bool {
	w, isDesired := r.desired[k]
	have, isInstalled := r.installed[k]
	if !isDesired {
		if isInstalled && r.owns(have.Cookie) {
			*ops = append(*ops, op{kind: opDelete, key: k, flow: have})
		}
		return false
	}
	want := w.flow
	if f := r.failed[k]; f != nil && now.Before(f.next) {
		r.deferred = append(r.deferred, k)
		return true
	}
	switch {
	case !isInstalled:
		*ops = append(*ops, op{kind: opAdd, key: k, flow: want})
	case have == want || sameFlow(have, want): // the same pointer once we installed it
	case !r.owns(have.Cookie):
		r.stats.ForeignOverwritten++
		r.log.Warn("overwriting a foreign flow with a desired one", zap.String("foreign", have.String()),
			zap.String("desired", want.String()))
		*ops = append(*ops, op{kind: opAdd, key: k, flow: want})
	case have.Cookie == want.Cookie && have.IdleTimeout == want.IdleTimeout && have.HardTimeout == want.HardTimeout:
		*ops = append(*ops, op{kind: opModify, key: k, flow: want}) // keeps the counters
	default:
		*ops = append(*ops, op{kind: opAdd, key: k, flow: want}) // cookie or timeouts changed
	}
	return false
}

type opKind uint8

const (
	opAdd opKind = iota
	opModify
	opDelete
)

type op struct {
	kind opKind
	key  ofproto.FlowKey
	flow *ofproto.PackedFlow // desired flow (add, modify) or installed flow (delete)
}

func (k opKind) String() string {
	switch k {
	case opAdd:
		return "add"
	case opModify:
		return "modify"
	}
	return "delete"
}

func (k opKind) command() ofproto.FlowModCommand {
	switch k {
	case opModify:
		return ofproto.FlowModifyStrict
	case opDelete:
		return ofproto.FlowDeleteStrict
	}
	return ofproto.FlowAdd
}
