package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// ErrNotConnected is returned by Reconcile when the bridge has no session.
var ErrNotConnected = errors.New("bridge not connected")

// ReconcilerConfig configures a Reconciler. Zero fields take the defaults shown.
type ReconcilerConfig struct {
	// CookieMask and CookieValue define the flows this controller owns: those whose cookie c
	// has c&CookieMask == CookieValue. Owned flows that are not desired are deleted; other
	// flows are left alone unless a desired flow has their key. The default (0, 0) owns
	// every flow.
	CookieMask, CookieValue uint64
	// BundleThreshold is the diff size from which the changes are sent in one atomic ONF
	// bundle instead of plain flow-mods (default 64; negative: never, unless AlwaysBundle).
	BundleThreshold int
	// AlwaysBundle sends every diff in a bundle.
	AlwaysBundle bool
	// RetryBase and RetryMax bound the backoff of a failed flow (default 1s and 1m).
	RetryBase, RetryMax time.Duration
	// PassTimeout bounds one background reconcile pass (default 5m).
	PassTimeout time.Duration
	// Observer is told the flow-mods sent and each pass's duration (nil: nobody).
	Observer Observer
}

func (c ReconcilerConfig) withDefaults() ReconcilerConfig {
	if c.BundleThreshold == 0 {
		c.BundleThreshold = 64
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.PassTimeout <= 0 {
		c.PassTimeout = 5 * time.Minute
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

// FailedFlow is a desired flow the switch refused.
type FailedFlow struct {
	Flow     string // the flow in ovs-ofctl syntax
	Err      string
	Attempts int
	NextTry  time.Time
}

// ReconcilerStats are the reconciler's counters, for the status page.
type ReconcilerStats struct {
	Adds, Modifies, Deletes uint64 // flow-mods sent, by kind
	Bundles                 uint64 // bundles committed
	Reconciles              uint64 // passes completed
	Dumps                   uint64 // full flow dumps (on connect or after an error)
	Errors                  uint64 // OFPT_ERRORs received for flow-mods
	ForeignOverwritten      uint64 // foreign flows replaced by a desired flow
	ForeignLeft             int    // foreign flows seen at the last dump and left alone
	Foreign                 int    // foreign flows in the mirror now (ForeignLeft less those overwritten since)
	Installed, Desired      int    // flows in the mirror (foreign ones included) and desired
	// Missing and Extra are the drift the last pass (or audit) left: desired flows not
	// installed as desired (refused, deferred or unconfirmed), and flows we own installed but
	// not desired.
	Missing, Extra int
	Audits         uint64    // audits that dumped the switch
	LastAt         time.Time // end of the last pass (successful or not)
	LastDuration   time.Duration
	LastError      string
	Failed         []FailedFlow
}

// Result describes one reconcile pass.
type Result struct {
	Adds, Modifies, Deletes int
	Bundled                 bool
	Dumped                  bool
	Failed                  int // flow-mods refused by the switch in this pass
	Deferred                int // failed flows waiting for their retry time
}

// FlowMods is the number of flow-mods the pass sent.
func (r Result) FlowMods() int { return r.Adds + r.Modifies + r.Deletes }

type failure struct {
	flow     string // the refused flow, ovs-ofctl syntax
	err      error
	attempts int
	next     time.Time
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

// Reconciler keeps one bridge's flows equal to a desired set with the fewest flow-mods.
// On (re)connect it dumps the switch's flows and sends only the difference; in steady state
// it diffs the desired set against its mirror of what is installed, without dumping.
type Reconciler struct {
	log  *zap.Logger
	cfg  ReconcilerConfig
	dpid uint64

	pass chan struct{}  // a token: one pass (or audit) at a time
	bg   sync.WaitGroup // the background pass goroutine

	mu        sync.Mutex
	desired   map[ofproto.FlowKey]want
	installed map[ofproto.FlowKey]*ofproto.PackedFlow // mirror, valid when synced
	synced    bool
	primed    bool // a desired set was given: until then no pass runs (an empty set would delete everything)
	sess      *Session
	ctx       context.Context
	failed    map[ofproto.FlowKey]*failure
	// pending are the keys whose desired or installed flow may differ since the last diff;
	// fullDiff makes the next diff look at every key (after a dump or a new mirror).
	pending  map[ofproto.FlowKey]struct{}
	fullDiff bool
	partKeys map[string]map[ofproto.FlowKey]struct{} // the keys of each part of the desired set
	deferred []ofproto.FlowKey                       // keys the last diff deferred
	running  bool
	dirty    bool
	retry    *time.Timer
	stats    ReconcilerStats
	bundleID uint32
	audit    *Audit // the last audit, if any
}

// NewReconciler returns a reconciler for bridge dpid with an empty desired set.
func NewReconciler(log *zap.Logger, dpid uint64, cfg ReconcilerConfig) *Reconciler {
	return &Reconciler{
		log:       log.Named("reconciler").With(zap.String("dpid", fmt.Sprintf("%016x", dpid))),
		cfg:       cfg.withDefaults(),
		dpid:      dpid,
		pass:      make(chan struct{}, 1),
		desired:   map[ofproto.FlowKey]want{},
		installed: map[ofproto.FlowKey]*ofproto.PackedFlow{},
		failed:    map[ofproto.FlowKey]*failure{},
		pending:   map[ofproto.FlowKey]struct{}{},
		fullDiff:  true,
		partKeys:  map[string]map[ofproto.FlowKey]struct{}{},
	}
}

// owns reports whether a cookie is in this controller's ownership.
func (r *Reconciler) owns(cookie uint64) bool {
	return cookie&r.cfg.CookieMask == r.cfg.CookieValue
}

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
	r.mu.Unlock()
	r.kick()
	return nil
}

// Update adds or replaces the flows in upsert and removes the keys in remove from the
// desired set (of part ""). An invalid update is refused as a whole and changes nothing.
func (r *Reconciler) Update(upsert []ofproto.Flow, remove []ofproto.FlowKey) error {
	d, err := r.check(upsert)
	if err != nil {
		return fmt.Errorf("update desired flows of %016x: %w", r.dpid, err)
	}
	r.mu.Lock()
	for _, k := range remove {
		if w, ok := r.desired[k]; ok {
			delete(r.partKeys[w.part], k)
		}
		delete(r.desired, k)
		delete(r.failed, k)
		r.pending[k] = struct{}{}
	}
	for k, f := range d {
		if old, ok := r.desired[k]; !ok || !sameFlow(old.flow, f) {
			delete(r.failed, k)
		}
		if old, ok := r.desired[k]; ok {
			delete(r.partKeys[old.part], k)
		}
		r.desired[k] = want{flow: f}
		if r.partKeys[""] == nil {
			r.partKeys[""] = map[ofproto.FlowKey]struct{}{}
		}
		r.partKeys[""][k] = struct{}{}
		r.pending[k] = struct{}{}
	}
	r.primed = true
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
	sortFlows(out)
	return out
}

func sortFlows(fs []ofproto.Flow) {
	slices.SortFunc(fs, func(a, b ofproto.Flow) int {
		if a.Table != b.Table {
			return int(a.Table) - int(b.Table)
		}
		if a.Priority != b.Priority {
			return int(b.Priority) - int(a.Priority)
		}
		ka, kb := a.Key(), b.Key()
		switch {
		case ka.Match < kb.Match:
			return -1
		case ka.Match > kb.Match:
			return 1
		}
		return 0
	})
}

// Bind sets the session the reconciler talks to without starting a background pass; the
// next Reconcile dumps the switch first. Used by Attach and by tests that drive passes.
func (r *Reconciler) Bind(s *Session) {
	r.mu.Lock()
	r.sess = s
	r.synced = false
	r.installed = map[ofproto.FlowKey]*ofproto.PackedFlow{}
	r.fullDiff = true
	r.mu.Unlock()
}

// Attach binds a newly connected session and reconciles it in the background (with ctx
// bounding the background work).
func (r *Reconciler) Attach(ctx context.Context, s *Session) {
	r.Bind(s)
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	r.kick()
}

func (r *Reconciler) bound(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sess == s
}

// Detach forgets s if it is the bound session.
func (r *Reconciler) Detach(s *Session) {
	r.mu.Lock()
	if r.sess == s {
		r.sess = nil
		r.synced = false
		if r.retry != nil {
			r.retry.Stop()
		}
	}
	r.mu.Unlock()
}

// kick starts a background pass, or asks the running one to go again.
func (r *Reconciler) kick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess == nil || r.ctx == nil || !r.primed {
		return
	}
	if r.running {
		r.dirty = true
		return
	}
	r.running = true
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		r.loop()
	}()
}

// wait waits for the background pass, if any, to end.
func (r *Reconciler) wait() { r.bg.Wait() }

func (r *Reconciler) loop() {
	for {
		r.mu.Lock()
		r.dirty = false
		sess, base := r.sess, r.ctx
		r.mu.Unlock()
		if sess == nil || base.Err() != nil {
			r.mu.Lock()
			r.running = false
			r.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(base, r.cfg.PassTimeout)
		go func() {
			select {
			case <-sess.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		res, err := r.Reconcile(ctx)
		cancel()
		r.mu.Lock()
		if err != nil && !errors.Is(err, ErrNotConnected) && r.sess == sess && base.Err() == nil {
			r.log.Warn("reconcile failed; retrying", zap.Error(err))
			r.scheduleLocked(r.cfg.RetryBase)
		}
		if res.Deferred > 0 {
			r.scheduleRetryLocked()
		}
		if !r.dirty {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// scheduleLocked kicks again after d (one timer at a time, the earliest wins).
func (r *Reconciler) scheduleLocked(d time.Duration) {
	if r.retry != nil {
		r.retry.Stop()
	}
	r.retry = time.AfterFunc(d, r.kick)
}

func (r *Reconciler) scheduleRetryLocked() {
	var next time.Time
	for _, f := range r.failed {
		if next.IsZero() || f.next.Before(next) {
			next = f.next
		}
	}
	if !next.IsZero() {
		r.scheduleLocked(max(time.Until(next), time.Millisecond))
	}
}

// Stats returns the counters.
func (r *Reconciler) Stats() ReconcilerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Installed, st.Desired = len(r.installed), len(r.desired)
	st.Failed = nil
	for _, f := range r.failed {
		st.Failed = append(st.Failed, FailedFlow{Flow: f.flow, Err: f.err.Error(), Attempts: f.attempts, NextTry: f.next})
	}
	slices.SortFunc(st.Failed, func(a, b FailedFlow) int {
		switch {
		case a.Flow < b.Flow:
			return -1
		case a.Flow > b.Flow:
			return 1
		}
		return 0
	})
	return st
}

// Reconcile runs one pass now: dump the switch if the mirror is not valid, diff, send the
// difference and confirm it with a barrier (or a bundle commit).
func (r *Reconciler) Reconcile(ctx context.Context) (Result, error) {
	if err := r.lockPass(ctx); err != nil {
		return Result{}, fmt.Errorf("reconcile %016x: %w", r.dpid, err)
	}
	defer r.unlockPass()
	start := time.Now()
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

func (k opKind) String() string {
	switch k {
	case opAdd:
		return "add"
	case opModify:
		return "modify"
	}
	return "delete"
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

// dump reads every flow of the switch. Flows we do not own are kept in the mirror (so a
// desired flow with their key is known to overwrite them) but never deleted. A non-nil
// counters gets each flow's packet and byte counters.
func (r *Reconciler) dump(ctx context.Context, sess *Session, counters map[ofproto.FlowKey]flowCounters) (map[ofproto.FlowKey]*ofproto.PackedFlow, int, error) {
	parts, err := sess.RequestMultipart(ctx, ofproto.AppendFlowStatsRequest(nil, 0, ofproto.TableAll, 0, 0, nil))
	if err != nil {
		return nil, 0, fmt.Errorf("dumping flows: %w", err)
	}
	inst := map[ofproto.FlowKey]*ofproto.PackedFlow{}
	foreign := 0
	for _, body := range parts {
		flows, err := ofproto.DecodeFlowStats(nil, body)
		if err != nil {
			return nil, 0, fmt.Errorf("decoding flow dump: %w", err)
		}
		packed := make([]ofproto.PackedFlow, len(flows))
		for i := range flows {
			packed[i] = ofproto.Pack(&flows[i].Flow)
			if !r.owns(flows[i].Flow.Cookie) {
				foreign++
			}
			if counters != nil {
				counters[packed[i].Key] = flowCounters{flows[i].PacketCount, flows[i].ByteCount}
			}
		}
		r.mu.Lock() // once per reply part, not per flow
		for i := range packed {
			p := &packed[i]
			if w, ok := r.desired[p.Key]; ok && sameFlow(w.flow, p) {
				inst[p.Key] = w.flow // share the desired flow's memory
			} else {
				q := *p // its own copy: the part's array is not kept for it
				inst[p.Key] = &q
			}
		}
		r.mu.Unlock()
	}
	return inst, foreign, nil
}

// chunkSize is how many bytes of encoded flow-mods are handed to the writer at once.
const chunkSize = 64 << 10

// send sends ops, plain or in a bundle, and waits for the barrier or commit. failed maps op
// indexes to the switch's errors; applied says whether the successful ops took effect (a
// bundle that failed to commit applied nothing); bundled whether a bundle was used.
func (r *Reconciler) send(ctx context.Context, sess *Session, ops []op, bundle bool) (failed map[int]error, applied, bundled bool, err error) {
	n := uint32(len(ops))
	first := sess.ReserveXIDs(n)
	var mu sync.Mutex
	failed = map[int]error{}
	stop := sess.WatchErrors(first, n, func(xid uint32, e *OFError) {
		mu.Lock()
		failed[int(xid-first)] = e
		mu.Unlock()
	})
	defer stop()

	var bundleID uint32
	if bundle {
		r.mu.Lock()
		r.bundleID++
		bundleID = r.bundleID
		r.mu.Unlock()
		_, err := sess.Request(ctx, ofproto.AppendBundleControl(nil, 0, bundleID, ofproto.BundleOpenRequest, bundleFlags), ofproto.TypeExperimenter)
		var ofe *OFError
		switch {
		case errors.As(err, &ofe):
			// The switch has no ONF bundles: send plain flow-mods confirmed by a barrier.
			r.log.Warn("switch refused to open a bundle; sending plain flow-mods", zap.Error(err))
			bundle = false
		case err != nil:
			return nil, false, bundle, fmt.Errorf("opening bundle: %w", err)
		}
	}
	buf := make([]byte, 0, chunkSize+1024)
	var scratch []byte
	for i := range ops {
		o := &ops[i]
		xid := first + uint32(i)
		switch {
		case bundle:
			scratch = o.flow.AppendFlowMod(scratch[:0], xid, o.kind.command(), 0)
			buf = ofproto.AppendBundleAdd(buf, xid, bundleID, bundleFlags, scratch)
		default:
			// Strict deletes name the flow by table, priority and match with cookie mask 0:
			// the mirror proves it is ours, and a cookie mask makes OVS walk its cookie
			// index, which every flow of an app shares, on each delete.
			buf = o.flow.AppendFlowMod(buf, xid, o.kind.command(), 0)
		}
		if len(buf) >= chunkSize {
			if err := sess.Send(ctx, buf); err != nil {
				return nil, false, bundle, fmt.Errorf("sending flow-mods: %w", err)
			}
			buf = make([]byte, 0, chunkSize+1024)
		}
	}
	if len(buf) > 0 {
		if err := sess.Send(ctx, buf); err != nil {
			return nil, false, bundle, fmt.Errorf("sending flow-mods: %w", err)
		}
	}
	applied = true
	if bundle {
		_, cerr := sess.Request(ctx, ofproto.AppendBundleControl(nil, 0, bundleID, ofproto.BundleCommitRequest, bundleFlags), ofproto.TypeExperimenter)
		var ofe *OFError
		switch {
		case errors.As(cerr, &ofe):
			applied = false // rolled back; the failing flow-mods were reported by xid
		case cerr != nil:
			return nil, false, bundle, fmt.Errorf("committing bundle: %w", cerr)
		}
	}
	// The barrier also guarantees every error for the batch has been routed to us.
	if err := sess.Barrier(ctx); err != nil {
		return nil, false, bundle, err
	}
	mu.Lock()
	defer mu.Unlock()
	if !applied && len(failed) == 0 {
		return nil, false, bundle, errors.New("bundle commit refused without naming a flow")
	}
	return failed, applied, bundle, nil
}

const bundleFlags = ofproto.BundleAtomic | ofproto.BundleOrdered

func (k opKind) command() ofproto.FlowModCommand {
	switch k {
	case opModify:
		return ofproto.FlowModifyStrict
	case opDelete:
		return ofproto.FlowDeleteStrict
	}
	return ofproto.FlowAdd
}

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
		if c := cmpFlows(&x.Flow, &y.Flow); c != 0 {
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

func cmpFlows(a, b *ofproto.Flow) int {
	if a.Table != b.Table {
		return int(a.Table) - int(b.Table)
	}
	if a.Priority != b.Priority {
		return int(b.Priority) - int(a.Priority)
	}
	ka, kb := a.Key(), b.Key()
	return strings.Compare(ka.Match, kb.Match)
}
