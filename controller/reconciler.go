package controller

import (
	"context"
	"errors"
	"slices"
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
	DumpDecoded             uint64 // dumped flows decoded: not byte for byte a desired flow
	Errors                  uint64 // OFPT_ERRORs received for flow-mods
	ForeignOverwritten      uint64 // foreign flows replaced by a desired flow
	ForeignLeft             int    // foreign flows seen at the last dump and left alone
	Foreign                 int    // foreign flows in the mirror now (ForeignLeft less those overwritten since)
	Installed, Desired      int    // flows in the mirror (foreign ones included) and desired
	// Missing and Extra are the drift the last pass (or audit) left: desired flows not
	// installed as desired (refused, deferred or unconfirmed), and flows we own installed but
	// not desired.
	Missing, Extra int
	// DesiredRevision is the topology revision of the desired set (Update.Revision);
	// RealizedRevision the newest one a pass installed without drift.
	DesiredRevision, RealizedRevision int64
	Audits                            uint64    // audits that dumped the switch
	LastAt                            time.Time // end of the last pass (successful or not)
	LastDuration                      time.Duration
	LastError                         string
	Failed                            []FailedFlow
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
	partKeys map[string]map[ofproto.FlowKey]struct{}            // the keys of each private part of the desired set
	shared   map[string]*SharedPart                             // the shared parts held
	merged   map[ofproto.FlowKey]map[string]*ofproto.PackedFlow // keys several parts hold: each one's flow
	deferred []ofproto.FlowKey                                  // keys the last diff deferred
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
		log:       log.Named("reconciler").With(zap.String("dpid", ofproto.DPID(dpid).String())),
		cfg:       cfg.withDefaults(),
		dpid:      dpid,
		pass:      make(chan struct{}, 1),
		desired:   map[ofproto.FlowKey]want{},
		installed: map[ofproto.FlowKey]*ofproto.PackedFlow{},
		failed:    map[ofproto.FlowKey]*failure{},
		pending:   map[ofproto.FlowKey]struct{}{},
		fullDiff:  true,
		partKeys:  map[string]map[ofproto.FlowKey]struct{}{},
		shared:    map[string]*SharedPart{},
		merged:    map[ofproto.FlowKey]map[string]*ofproto.PackedFlow{},
	}
}

// owns reports whether a cookie is in this controller's ownership.
func (r *Reconciler) owns(cookie uint64) bool {
	return cookie&r.cfg.CookieMask == r.cfg.CookieValue
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
