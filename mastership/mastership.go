// Package mastership decides, when several dvrflowd run against one PostgreSQL, which of
// them is the master of each host's switches, and keeps the OpenFlow roles of this one's
// sessions to match.
//
// Each controller holds a lease in the controllers table and renews it every Renew; a
// host's master is named in masterships with the term it claimed the host in. The term
// comes from one sequence, so it only grows, and it is the generation_id of the master's
// ROLE_REQUEST: a master that lost its lease and still holds sockets is refused by the
// switch (OFPRRFC_STALE), never a second writer.
//
//   - Hosts are spread over the live controllers by rendezvous hashing, so a controller
//     that joins or leaves moves only its share. A controller gives a host whose target
//     is another live controller to it (handing off after it stopped writing to it), and
//     claims the hosts whose target it is and whose master is gone (lease expired) or
//     absent.
//   - A controller acts as master only until its lease could have expired in the
//     database: its deadline is the time it sent its last successful renewal plus the
//     lease (less 5%). At the deadline, renewed or not, it stops and asks its switches to
//     make it a slave; another controller claims its hosts only after the database's
//     clock passed the lease's end, in a new term.
//   - Every claim is a new term, also when a controller takes back a host it mastered
//     before (after a restart with the same --controller-id, or a lease that lapsed).
//
// Renewals are sent every Renew whether or not the one before has come back (four at most
// in flight, db.LeaseConns), and a renewal that comes back late still moves the deadline
// from when it was sent. A controller whose renewals come back slowly (an overloaded
// machine: the process waits for CPU, the Go scheduler for a free processor, PostgreSQL
// for its backend's turn) asks for a longer lease, four times its slowest renewal of late
// or the longest stall the Go runtime reported (a goroutine waiting for a processor, a
// collector pause), up to MaxLease: it is not declared dead, nor moves its hosts away and
// back, for being slow; a controller that dies is replaced within the lease it last asked
// for. With Config.Keeper the renewals run in a lease keeper process (keeper.go).
//
// The renewal reads a generation counter that every change of the host registry, the
// masterships and the controllers bumps, and the set of live controllers: the host table
// is read again only when one of them changed (or every Resync).
package mastership

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
)

// LeaseStore is the part of db.Store that renews leases (db.Leases: all a lease keeper
// process opens).
type LeaseStore interface {
	RegisterController(ctx context.Context, spec db.ControllerSpec, lease time.Duration) error
	RenewLease(ctx context.Context, id, instance string, lease, settle time.Duration) (db.Lease, error)
	ReleaseLease(ctx context.Context, id, instance string) error
}

// Store is the part of db.Store the loop uses.
type Store interface {
	LeaseStore
	HostMasters(ctx context.Context) ([]db.HostMaster, error)
	ClaimMasterships(ctx context.Context, id, instance string, hosts []string) (map[string]int64, error)
	HandOffMasterships(ctx context.Context, id string, to map[string]string) (int, error)
}

// Roles receives the role of every switch (controller.Server).
type Roles interface {
	SetRoles(map[uint64]controller.Mastership)
}

// Config tunes the loop.
type Config struct {
	// ID names this controller, stable across its restarts; OFAddr and APIURL are shown
	// to operators.
	ID, OFAddr, APIURL string
	// Lease is how long a controller's lease runs after a renewal (default 1.2 s): a dead
	// controller's switches get a new master within about Lease + Renew.
	Lease time.Duration
	// Renew is how often the lease is renewed (default 200 ms); at most Lease/3.
	Renew time.Duration
	// MaxLease bounds the lease a controller whose renewals are slow asks for (default
	// 8 s; equal to Lease: the lease never grows).
	MaxLease time.Duration
	// Resync is how often the host table is read even if nothing seems changed (default 10 s).
	Resync time.Duration
	// Keeper, when set, starts the lease keeper process that registers and renews the
	// lease (nil: this process renews it).
	Keeper *KeeperCommand `json:"-"`
	// Settle is how long a controller whose lease expired must hold it again before
	// hosts are spread over it (default 5 s): a controller that stalls repeatedly (an
	// overloaded machine, a flapping link to PostgreSQL) does not move hosts back and
	// forth, each move costing a dump and a recomputation. A starting process takes its
	// share at once.
	Settle time.Duration
}

// DefaultConfig returns the defaults, without ID.
func DefaultConfig() Config {
	return Config{Lease: 1200 * time.Millisecond, Renew: 200 * time.Millisecond, MaxLease: 8 * time.Second,
		Resync: 10 * time.Second, Settle: 5 * time.Second}
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if c.ID == "" || len(c.ID) > 255 {
		return errors.New("controller id must be 1-255 characters")
	}
	if c.Lease < 100*time.Millisecond || c.Renew <= 0 || c.Renew > c.Lease/3 {
		return fmt.Errorf("lease %s, renew %s: want a lease of at least 100ms renewed at least three times within it", c.Lease, c.Renew)
	}
	if c.MaxLease < c.Lease {
		return fmt.Errorf("max lease %s: want at least the lease, %s", c.MaxLease, c.Lease)
	}
	if c.Resync <= 0 {
		return errors.New("resync must be positive")
	}
	if c.Settle < 0 {
		return errors.New("settle must not be negative")
	}
	return nil
}

// Loop is one controller's side of the masterships. Create it with New, run it with Run.
type Loop struct {
	log      *zap.Logger
	cfg      Config
	instance string
	store    Store
	leases   LeaseStore
	remote   *keeperProc  // with Config.Keeper: the keeper process, and its deadline
	shared   *deadlineMem // in a keeper process: where the deadline is published
	roles    Roles
	kick     chan struct{}
	pubMu    sync.Mutex // serializes publish

	mu       sync.Mutex
	deadline time.Time        // act as master until then
	acting   map[string]int64 // hosts this controller masters -> the term it claimed them in
	hosts    []db.HostMaster  // as last read, updated by this controller's claims
	live     []string
	gen      int64
	lastRead time.Time
	force    bool // read the host table at the next renewal
	watchdog *time.Timer
	stats    Stats
	slowest  slowest   // the slowest renewal of late, or runtime stall, decaying
	probe    probe     // the runtime's view since the last renewal
	logged   time.Time // when a slow renewal was last logged
}

// Stats are the loop's counters.
type Stats struct {
	Claimed   uint64 // hosts claimed
	HandedOff uint64 // hosts handed to another controller
	Lapses    uint64 // times the lease ran out before a renewal
	Reads     uint64 // reads of the host table
	Stale     uint64 // switches that refused a role request as stale
	Renewals  uint64 // renewals that came back
	// Slow counts renewals that came back more than half the configured lease after
	// they were due; Slowest is the slowest (from due to reply) since the start.
	Slow    uint64
	Slowest time.Duration
	// RenewLatency counts renewals by their time from due to reply, in the buckets
	// RenewBuckets bound (the last counts the rest); RenewTime adds those times up.
	RenewLatency [len(RenewBuckets) + 1]uint64
	RenewTime    time.Duration
	// Lease is the lease the last renewal asked for: Config.Lease while renewals come back
	// quickly, longer (up to MaxLease) while they are slow. LongestLease is the longest
	// any asked for.
	Lease, LongestLease time.Duration
}

// RenewBuckets are the upper bounds of Stats.RenewLatency's buckets.
var RenewBuckets = [...]time.Duration{25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second}

// New returns the loop of controller cfg.ID over store, setting roles on sw.
func New(log *zap.Logger, cfg Config, store Store, sw Roles) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mastership: %w", err)
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("mastership: instance nonce: %w", err)
	}
	return &Loop{
		log:      log.Named("mastership").With(zap.String("controller", cfg.ID)),
		cfg:      cfg,
		instance: hex.EncodeToString(nonce[:]),
		store:    store,
		leases:   store,
		roles:    sw,
		kick:     make(chan struct{}, 1),
		acting:   map[string]int64{},
	}, nil
}

// Stale tells the loop that switch dpid refused a role request as stale: its view of the
// masterships is old, so the host table is read at the next renewal, which comes at once.
func (l *Loop) Stale(dpid uint64) {
	l.mu.Lock()
	l.force = true
	l.stats.Stale++
	l.mu.Unlock()
	l.poke()
}

func (l *Loop) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run registers the controller, then renews its lease and follows the masterships until
// ctx ends; it then releases the lease so that the others take over at once. With
// Config.Keeper, a lease keeper process registers and renews (runWithKeeper).
func (l *Loop) Run(ctx context.Context) error {
	if l.cfg.Keeper != nil {
		return l.runWithKeeper(ctx)
	}
	if err := l.register(ctx); err != nil {
		return err
	}
	l.log.Info("controller registered", zap.Duration("lease", l.cfg.Lease), zap.Duration("renew", l.cfg.Renew))
	syncs, stopSyncs := l.startSyncs(ctx)
	defer func() {
		stopSyncs() // before the lease is released: no claim after the release
		l.stop()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if err := l.leases.ReleaseLease(rctx, l.cfg.ID, l.instance); err != nil {
			l.log.Warn("releasing the lease: the others take over when it expires", zap.Error(err))
		}
	}()
	l.renewLoop(ctx, func(r renewal) { offer(syncs, r) })
	return nil
}

// startSyncs runs syncs on their own goroutine, one for each lease sent on the channel it
// returns (the newest replacing one not taken yet: offer), until ctx ends; wait waits for
// it to end. Reading the host table, claiming and publishing roles take long on a busy
// controller with thousands of hosts, and a renewal that waited for them would let the
// lease of a live controller lapse.
func (l *Loop) startSyncs(ctx context.Context) (syncs chan db.Lease, wait func()) {
	syncs = make(chan db.Lease, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.syncLoop(ctx, syncs)
	}()
	return syncs, wg.Wait
}

// offer gives the lease r renewed to the syncs when r says the host table needs a read.
func offer(syncs chan db.Lease, r renewal) {
	if !r.need {
		return
	}
	select { // the newest lease replaces one not taken yet
	case <-syncs:
	default:
	}
	syncs <- r.lease
}

// stop makes the controller master of nothing, for good.
func (l *Loop) stop() {
	l.mu.Lock()
	if l.watchdog != nil {
		l.watchdog.Stop()
	}
	l.mu.Unlock()
	l.stopActing("stopping")
}

// renewLoop renews the lease every Renew and whenever l.kick receives, until ctx ends,
// giving each renewal that held the lease to renewed. Renewals run on goroutines of their
// own, one per tick while fewer than maxInFlight are out: one that comes back late does
// not hold up the next. When another process took the controller id over, it registers
// again.
func (l *Loop) renewLoop(ctx context.Context, renewed func(renewal)) {
	results := make(chan renewal, maxInFlight)
	inFlight := 0
	send := func(due time.Time) {
		if inFlight == maxInFlight {
			return
		}
		inFlight++
		go func() { results <- l.renew(ctx, due) }()
	}
	defer func() { // none may renew after the release
		for ; inFlight > 0; inFlight-- {
			<-results
		}
	}()
	t := time.NewTicker(l.cfg.Renew)
	defer t.Stop()
	send(time.Now())
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case due := <-t.C:
			send(due)
		case <-l.kick:
			send(time.Now())
		case r := <-results:
			inFlight--
			err := r.err
			if err == nil && !r.lease.Held {
				l.stopActing("another process registered this controller id after its lease expired")
				err = l.register(ctx)
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if !failing {
					l.log.Warn("lease renewal failing", zap.Error(err))
				}
				failing = true
				continue
			}
			if failing {
				l.log.Info("lease renewed again")
				failing = false
			}
			if r.lease.Held {
				renewed(r)
			}
		}
	}
}

// syncLoop runs a sync for each lease it is given, until ctx ends.
func (l *Loop) syncLoop(ctx context.Context, syncs <-chan db.Lease) {
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case lease := <-syncs:
			if err := l.sync(ctx, lease); err != nil {
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				l.force = true // read again at the next renewal
				l.mu.Unlock()
				if !failing {
					l.log.Warn("reading or claiming masterships failing", zap.Error(err))
				}
				failing = true
			} else {
				failing = false
			}
		}
	}
}

// register registers the controller, waiting while another live process holds its id.
func (l *Loop) register(ctx context.Context) error {
	spec := db.ControllerSpec{ID: l.cfg.ID, Instance: l.instance, OFAddr: l.cfg.OFAddr, APIURL: l.cfg.APIURL}
	warned := false
	for {
		err := l.leases.RegisterController(ctx, spec, l.cfg.Lease)
		if err == nil {
			return nil
		}
		if !warned {
			l.log.Warn("cannot register yet, retrying", zap.Error(err))
			warned = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mastership: register %s: %w", l.cfg.ID, ctx.Err())
		case <-time.After(l.cfg.Renew):
		}
	}
}

// expire runs at the deadline: the lease may have expired in the database, so this
// controller stops being anyone's master.
func (l *Loop) expire() {
	l.mu.Lock()
	l.readDeadlineLocked()
	if time.Now().Before(l.deadline) {
		l.armLocked() // moved by a renewal meanwhile (a keeper's, which arms nothing here)
		l.mu.Unlock()
		return
	}
	if len(l.acting) == 0 {
		l.mu.Unlock()
		return
	}
	l.stats.Lapses++
	l.mu.Unlock()
	l.stopActing("lease not renewed in time")
}

// stopActing makes this controller master of nothing and its switches' slave.
func (l *Loop) stopActing(why string) {
	l.mu.Lock()
	n := len(l.acting)
	l.acting = map[string]int64{}
	l.force = true
	l.mu.Unlock()
	l.publish()
	if n > 0 {
		l.log.Warn("stopped mastering every host", zap.String("why", why), zap.Int("hosts", n))
	}
}

// sync reads the host table, hands off the hosts another live controller should master,
// claims those it should and may, and sets the switches' roles.
func (l *Loop) sync(ctx context.Context, lease db.Lease) error {
	hms, err := l.store.HostMasters(ctx)
	if err != nil {
		return err
	}
	me := l.cfg.ID
	var claim []string
	handoff := map[string]string{}
	l.mu.Lock()
	l.stats.Reads++
	l.gen, l.live, l.lastRead, l.force = lease.Gen, lease.Live, time.Now(), false
	registered := make(map[string]bool, len(hms))
	for _, hm := range hms {
		registered[hm.Host] = true
		target := Pick(hm.Host, lease.Live)
		switch {
		case hm.Controller == me && target != me:
			handoff[hm.Host] = target
			delete(l.acting, hm.Host)
		case hm.Controller == me:
			if l.acting[hm.Host] != hm.Term {
				delete(l.acting, hm.Host)
				claim = append(claim, hm.Host)
			}
		case hm.Controller == "" || !slices.Contains(lease.Live, hm.Controller):
			delete(l.acting, hm.Host)
			if target == me {
				claim = append(claim, hm.Host)
			}
		default:
			delete(l.acting, hm.Host)
		}
	}
	for h := range l.acting {
		if !registered[h] {
			delete(l.acting, h)
		}
	}
	l.hosts = hms
	l.mu.Unlock()
	// Stopped writing to the hosts it hands off before they are handed off.
	l.publish()
	if len(handoff) > 0 {
		n, err := l.store.HandOffMasterships(ctx, me, handoff)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.stats.HandedOff += uint64(n)
		l.mu.Unlock()
		l.log.Info("handed hosts off", zap.Int("hosts", n), zap.Strings("live", lease.Live))
	}
	if len(claim) == 0 {
		return nil
	}
	claimed, err := l.store.ClaimMasterships(ctx, me, l.instance, claim)
	if err != nil {
		return err
	}
	l.mu.Lock()
	for i := range l.hosts {
		if t, ok := claimed[l.hosts[i].Host]; ok {
			l.hosts[i].Controller, l.hosts[i].Term, l.hosts[i].ClaimedAt = me, t, time.Now()
			l.acting[l.hosts[i].Host] = t
		}
	}
	l.stats.Claimed += uint64(len(claimed))
	l.mu.Unlock()
	l.publish()
	if len(claimed) > 0 {
		l.log.Info("claimed hosts", zap.Int("hosts", len(claimed)), zap.Int("asked", len(claim)), zap.Strings("live", lease.Live))
	}
	return nil
}

// publish gives the switches the roles of this moment. Publications are serialized and
// each computes its roles when it runs, so the last one given is never older than the
// state it follows: a deadline passing between a sync and its publication wins.
func (l *Loop) publish() {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	l.mu.Lock()
	roles := l.rolesLocked()
	l.mu.Unlock()
	l.roles.SetRoles(roles)
}

// rolesLocked returns every known switch's role: master where this controller acts for
// its host (and its deadline has not passed), slave in the host's term elsewhere. l.mu is held.
func (l *Loop) rolesLocked() map[uint64]controller.Mastership {
	out := make(map[uint64]controller.Mastership, 3*len(l.hosts))
	l.readDeadlineLocked()
	valid := time.Now().Before(l.deadline)
	for _, hm := range l.hosts {
		m := controller.Mastership{Term: uint64(hm.Term)}
		if t, ok := l.acting[hm.Host]; ok && valid {
			m = controller.Mastership{Master: true, Term: uint64(t)}
		}
		if m.Term == 0 {
			continue
		}
		for _, id := range hm.DPIDs {
			out[id] = m
		}
	}
	return out
}

// Pick returns the controller of live that should master host: the highest rendezvous
// hash of (controller, host); "" when live is empty.
func Pick(host string, live []string) string {
	best, bestScore := "", uint64(0)
	for _, c := range live {
		h := fnv.New64a()
		_, _ = h.Write([]byte(c))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(host))
		if s := mix(h.Sum64()); best == "" || s > bestScore || (s == bestScore && c < best) {
			best, bestScore = c, s
		}
	}
	return best
}

// mix is MurmurHash3's 64-bit finalizer: FNV alone leaves names that differ in their
// last characters (compute1, compute2) with correlated scores, and the spread uneven.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Status is what the loop knows, for the status page, metrics and dvrctl.
type Status struct {
	ID       string
	Deadline time.Time // this controller masters hosts until then unless it renews
	Live     []string  // controllers whose lease ran at the last read
	Hosts    []db.HostMaster
	Acting   int // hosts this controller masters
	Stats    Stats
}

// Status returns a copy of what the loop knows.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readDeadlineLocked()
	st := Status{ID: l.cfg.ID, Deadline: l.deadline, Live: slices.Clone(l.live), Hosts: slices.Clone(l.hosts),
		Stats: l.stats}
	if time.Now().Before(l.deadline) {
		st.Acting = len(l.acting)
	}
	return st
}
