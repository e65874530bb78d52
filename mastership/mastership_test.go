package mastership_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/mastership"
	"github.com/dvrflow/dvrflow/topology"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	if os.Getenv(mastership.KeeperEnv) != "" { // run as a lease keeper (keeper_test.go)
		os.Exit(runTestKeeper())
	}
	os.Exit(pgtest.Main(m, &pg))
}

// cutStore is a store whose calls fail while cut, as a controller partitioned from
// PostgreSQL sees it.
type cutStore struct {
	*db.Store
	cut  atomic.Bool
	slow atomic.Int64 // a host table read takes this long (ns)
	late atomic.Int64 // a renewal's reply comes this long after PostgreSQL renewed (ns)
}

var errCut = errors.New("partitioned from PostgreSQL")

func (s *cutStore) RegisterController(ctx context.Context, spec db.ControllerSpec, lease time.Duration) error {
	if s.cut.Load() {
		return errCut
	}
	return s.Store.RegisterController(ctx, spec, lease)
}

func (s *cutStore) RenewLease(ctx context.Context, id, instance string, lease, settle time.Duration) (db.Lease, error) {
	if s.cut.Load() {
		return db.Lease{}, errCut
	}
	l, err := s.Store.RenewLease(ctx, id, instance, lease, settle)
	if d := time.Duration(s.late.Load()); d > 0 && err == nil {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return db.Lease{}, ctx.Err()
		}
	}
	return l, err
}

func (s *cutStore) HostMasters(ctx context.Context) ([]db.HostMaster, error) {
	if s.cut.Load() {
		return nil, errCut
	}
	if d := time.Duration(s.slow.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Store.HostMasters(ctx)
}

func (s *cutStore) ClaimMasterships(ctx context.Context, id, instance string, hosts []string) (map[string]int64, error) {
	if s.cut.Load() {
		return nil, errCut
	}
	return s.Store.ClaimMasterships(ctx, id, instance, hosts)
}

func (s *cutStore) HandOffMasterships(ctx context.Context, id string, to map[string]string) (int, error) {
	if s.cut.Load() {
		return 0, errCut
	}
	return s.Store.HandOffMasterships(ctx, id, to)
}

// roleLog records every role set a controller was given, with its time.
type roleLog struct {
	mu   sync.Mutex
	sets []roleSet
}

type roleSet struct {
	at    time.Time
	roles map[uint64]controller.Mastership
}

func (r *roleLog) SetRoles(m map[uint64]controller.Mastership) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sets = append(r.sets, roleSet{at: time.Now(), roles: maps.Clone(m)})
}

// masters returns the switches the controller masters now, with their terms.
func (r *roleLog) masters() map[uint64]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[uint64]uint64{}
	if len(r.sets) == 0 {
		return out
	}
	for id, m := range r.sets[len(r.sets)-1].roles {
		if m.Master {
			out[id] = m.Term
		}
	}
	return out
}

// spans returns, per switch, the intervals in which the controller was its master and in
// which term.
func (r *roleLog) spans(until time.Time) map[uint64][]span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[uint64][]span{}
	open := map[uint64]*span{}
	for _, s := range r.sets {
		for id, sp := range open {
			if m := s.roles[id]; !m.Master || m.Term != sp.term {
				sp.to = s.at
				out[id] = append(out[id], *sp)
				delete(open, id)
			}
		}
		for id, m := range s.roles {
			if m.Master && open[id] == nil {
				open[id] = &span{from: s.at, term: m.Term}
			}
		}
	}
	for id, sp := range open {
		sp.to = until
		out[id] = append(out[id], *sp)
	}
	return out
}

type span struct {
	from, to time.Time
	term     uint64
}

type ctl struct {
	id    string
	store *cutStore
	roles *roleLog
	loop  *mastership.Loop
	stop  context.CancelFunc
	done  chan error
}

func start(t *testing.T, st *db.Store, id string, cfg mastership.Config) *ctl {
	t.Helper()
	c := &ctl{id: id, store: &cutStore{Store: st}, roles: &roleLog{}, done: make(chan error, 1)}
	cfg.ID = id
	var err error
	c.loop, err = mastership.New(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg, c.store, c.roles)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go func() { c.done <- c.loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func openStore(t *testing.T) *db.Store {
	t.Helper()
	st, err := db.Open(context.Background(), pg.NewDatabase(t), db.DefaultConfig(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// registerHosts registers n hosts h0..; host i has one bridge of datapath ID i+1.
func registerHosts(t *testing.T, st *db.Store, n int) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for i := range n {
		name := fmt.Sprintf("h%d", i)
		if _, _, err := st.RegisterHost(context.Background(), db.HostSpec{Name: name, TunnelIP: fmt.Sprintf("10.0.%d.%d", i/200, i%200+1),
			Mode: topology.HostModeDVR, Bridges: map[string]string{"br-int": fmt.Sprintf("%x", i+1)}}); err != nil {
			t.Fatal(err)
		}
		out[uint64(i+1)] = name
	}
	return out
}

func testConfig() mastership.Config {
	c := mastership.DefaultConfig()
	c.Lease, c.Renew, c.Settle = 600*time.Millisecond, 100*time.Millisecond, 1500*time.Millisecond
	return c
}

// waitSpread waits until every switch has exactly one master among ctls, the one Pick
// names among live.
func waitSpread(t *testing.T, dpids map[uint64]string, ctls []*ctl, live []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		bad := ""
		for id, host := range dpids {
			var who []string
			for _, c := range ctls {
				if _, ok := c.roles.masters()[id]; ok {
					who = append(who, c.id)
				}
			}
			if want := mastership.Pick(host, live); len(who) != 1 || who[0] != want {
				bad = fmt.Sprintf("host %s: masters %v, want %s", host, who, want)
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("masterships not spread within %s: %s", within, bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkOneWriter checks that no two controllers were ever master of a switch at the same
// time, and that every switch's terms grew with time.
func checkOneWriter(t *testing.T, ctls []*ctl) {
	t.Helper()
	now := time.Now()
	type owned struct {
		span
		who string
	}
	all := map[uint64][]owned{}
	for _, c := range ctls {
		for id, sps := range c.roles.spans(now) {
			for _, sp := range sps {
				all[id] = append(all[id], owned{sp, c.id})
			}
		}
	}
	for id, os := range all {
		for i, a := range os {
			for _, b := range os[i+1:] {
				if a.who != b.who && a.from.Before(b.to) && b.from.Before(a.to) {
					t.Errorf("switch %d: %s (term %d, %s-%s) and %s (term %d, %s-%s) masters at once", id,
						a.who, a.term, a.from.Format("15:04:05.000"), a.to.Format("15:04:05.000"),
						b.who, b.term, b.from.Format("15:04:05.000"), b.to.Format("15:04:05.000"))
				}
				if a.term == b.term && a.who != b.who {
					t.Errorf("switch %d: %s and %s both mastered it in term %d", id, a.who, b.who, a.term)
				}
				if (a.from.Before(b.from) && a.term > b.term) || (b.from.Before(a.from) && b.term > a.term) {
					t.Errorf("switch %d: term went down (%s term %d at %s, %s term %d at %s)", id,
						a.who, a.term, a.from.Format("15:04:05.000"), b.who, b.term, b.from.Format("15:04:05.000"))
				}
			}
		}
	}
}

// Three controllers spread 60 hosts by rendezvous hashing; one partitioned from the
// database stops mastering by its deadline, and only then do the others claim its hosts,
// in greater terms; back, it gets its share again, in new terms. Never two masters of a
// switch at once, never one term for two controllers.
func TestSpreadPartitionAndReturn(t *testing.T) {
	st := openStore(t)
	dpids := registerHosts(t, st, 60)
	cfg := testConfig()
	a, b, c := start(t, st, "ctl-a", cfg), start(t, st, "ctl-b", cfg), start(t, st, "ctl-c", cfg)
	ctls := []*ctl{a, b, c}
	waitSpread(t, dpids, ctls, []string{"ctl-a", "ctl-b", "ctl-c"}, 5*time.Second)
	share := len(b.roles.masters())
	if share < 10 || share > 30 {
		t.Errorf("ctl-b masters %d of 60 hosts, want about 20", share)
	}
	before := b.roles.masters()

	cut := time.Now()
	b.store.cut.Store(true)
	waitSpread(t, dpids, ctls, []string{"ctl-a", "ctl-c"}, 5*time.Second)
	if st := b.loop.Status(); st.Acting != 0 || st.Stats.Lapses == 0 {
		t.Errorf("partitioned controller: acting %d, lapses %d; want 0 and at least 1", st.Acting, st.Stats.Lapses)
	}
	// ctl-b stopped within its lease, give or take its deadline timer's latency (on a
	// loaded 2-core machine it fired 42 ms late once); the others took over after it, in
	// greater terms, which is what keeps two masters apart whenever their claims come.
	const timerSlack = 100 * time.Millisecond
	stopped := lastMaster(b.roles)
	if d := stopped.Sub(cut); d > cfg.Lease+timerSlack {
		t.Errorf("partitioned controller mastered %s after the cut, longer than its lease %s (+%s)", d, cfg.Lease, timerSlack)
	}
	for id, term := range before {
		for _, o := range []*ctl{a, c} {
			if got, ok := o.roles.masters()[id]; ok && got <= term {
				t.Errorf("switch %d: %s took it over in term %d, not above ctl-b's %d", id, o.id, got, term)
			}
		}
	}
	checkOneWriter(t, ctls)

	// Back, ctl-b is live again but gets its share only after it held its lease for
	// Settle: a controller that lapses repeatedly does not move hosts back and forth.
	b.store.cut.Store(false)
	for !time.Now().Before(b.loop.Status().Deadline) { // renewed again
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(cfg.Settle / 2) // time enough for claims, were it settled
	if n := len(b.roles.masters()); n != 0 {
		t.Errorf("ctl-b masters %d hosts %v after its return, before it settled (%v)", n, cfg.Settle/2, cfg.Settle)
	}
	waitSpread(t, dpids, ctls, []string{"ctl-a", "ctl-b", "ctl-c"}, cfg.Settle+5*time.Second)
	for id, term := range b.roles.masters() {
		if old, ok := before[id]; ok && term <= old {
			t.Errorf("switch %d: ctl-b back in term %d, not above its old %d", id, term, old)
		}
	}
	checkOneWriter(t, ctls)
}

func lastMaster(r *roleLog) time.Time {
	var last time.Time
	for _, sps := range r.spans(time.Now()) {
		for _, sp := range sps {
			if sp.to.After(last) {
				last = sp.to
			}
		}
	}
	return last
}

// A controller that stops gracefully releases its lease: the others take its hosts at
// once, not a lease later; one that joins gets its share handed over.
func TestStopAndJoin(t *testing.T) {
	st := openStore(t)
	dpids := registerHosts(t, st, 40)
	cfg := testConfig()
	cfg.Lease = 5 * time.Second // a takeover within a second can only come from the release
	a, b := start(t, st, "ctl-a", cfg), start(t, st, "ctl-b", cfg)
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-a", "ctl-b"}, 5*time.Second)
	b.stop()
	<-b.done
	b.done <- nil // for the cleanup
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-a"}, time.Second)
	c := start(t, st, "ctl-c", cfg)
	waitSpread(t, dpids, []*ctl{a, b, c}, []string{"ctl-a", "ctl-c"}, 2*time.Second)
	checkOneWriter(t, []*ctl{a, b, c})
}

// A second process with a live controller's id waits until the first one's lease ends,
// then takes its hosts in new terms; a new host is claimed as soon as it registers.
func TestSameIDWaitsAndNewHost(t *testing.T) {
	st := openStore(t)
	dpids := registerHosts(t, st, 5)
	cfg := testConfig()
	first := start(t, st, "ctl", cfg)
	waitSpread(t, dpids, []*ctl{first}, []string{"ctl"}, 5*time.Second)
	old := first.roles.masters()
	second := start(t, st, "ctl", cfg)
	time.Sleep(2 * cfg.Lease)
	if n := len(second.roles.masters()); n != 0 {
		t.Fatalf("second process of the id masters %d switches while the first runs", n)
	}
	first.stop()
	<-first.done
	first.done <- nil
	waitSpread(t, dpids, []*ctl{second}, []string{"ctl"}, 3*time.Second)
	for id, term := range second.roles.masters() {
		if term <= old[id] {
			t.Errorf("switch %d: term %d after the restart, not above %d", id, term, old[id])
		}
	}
	if _, _, err := st.RegisterHost(context.Background(), db.HostSpec{Name: "late", TunnelIP: "10.9.9.9",
		Mode: topology.HostModeDVR, Bridges: map[string]string{"br-int": "abc"}}); err != nil {
		t.Fatal(err)
	}
	dpids[0xabc] = "late"
	waitSpread(t, dpids, []*ctl{second}, []string{"ctl"}, time.Second)
}

func TestPickSpreads(t *testing.T) {
	live := []string{"a", "b", "c"}
	count := map[string]int{}
	for i := range 5000 {
		count[mastership.Pick(fmt.Sprintf("compute%d", i), live)]++
	}
	for _, c := range live {
		if count[c] < 1500 || count[c] > 1833 {
			t.Errorf("controller %s gets %d of 5,000 hosts, want 1,667 +- 10%%", c, count[c])
		}
	}
	// Removing one moves only its hosts.
	moved := 0
	for i := range 5000 {
		h := fmt.Sprintf("compute%d", i)
		if was := mastership.Pick(h, live); was != "b" && mastership.Pick(h, []string{"a", "c"}) != was {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d hosts of the surviving controllers moved", moved)
	}
	if mastership.Pick("h", nil) != "" {
		t.Error("Pick over no controller is not empty")
	}
}

// A host table read that takes three leases (a busy controller with thousands of hosts)
// does not hold up the renewals: the controller keeps its lease and its hosts meanwhile,
// and claims the new host when the read ends.
func TestSlowSyncKeepsTheLease(t *testing.T) {
	st := openStore(t)
	dpids := registerHosts(t, st, 20)
	cfg := testConfig()
	a, b := start(t, st, "ctl-a", cfg), start(t, st, "ctl-b", cfg)
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-a", "ctl-b"}, 5*time.Second)
	a.store.slow.Store(int64(3 * cfg.Lease))
	b.store.slow.Store(int64(3 * cfg.Lease))
	maps.Copy(dpids, map[uint64]string{0x100: "hnew"})
	if _, _, err := st.RegisterHost(context.Background(), db.HostSpec{Name: "hnew", TunnelIP: "10.0.9.9",
		Mode: topology.HostModeDVR, Bridges: map[string]string{"br-int": "100"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * cfg.Lease) // both are reading the host table now
	for _, c := range []*ctl{a, b} {
		if n := c.loop.Status().Stats.Lapses; n != 0 {
			t.Fatalf("%s: %d lapses while reading the host table slowly", c.id, n)
		}
	}
	a.store.slow.Store(0)
	b.store.slow.Store(0)
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-a", "ctl-b"}, 5*cfg.Lease)
	for _, c := range []*ctl{a, b} {
		if n := c.loop.Status().Stats.Lapses; n != 0 {
			t.Fatalf("%s: %d lapses", c.id, n)
		}
	}
	checkOneWriter(t, []*ctl{a, b})
}

// Renewals that come back ever later (250 ms, then 500 ms, then 1 s, against a lease of
// 600 ms renewed every 100 ms: an overloaded controller) do not cost the controller its
// hosts: it asks for longer leases, up to MaxLease, and the other controller sees it live
// all along. Quick again, it asks for shorter ones.
func TestSlowRenewalsStretchTheLease(t *testing.T) {
	st := openStore(t)
	dpids := registerHosts(t, st, 20)
	cfg := testConfig()
	cfg.MaxLease = 4 * time.Second
	a, b := start(t, st, "ctl-a", cfg), start(t, st, "ctl-b", cfg)
	live := []string{"ctl-a", "ctl-b"}
	waitSpread(t, dpids, []*ctl{a, b}, live, 5*time.Second)
	claimed := b.loop.Status().Stats.Claimed
	for _, late := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second} {
		a.store.late.Store(int64(late))
		time.Sleep(2 * time.Second)
		if n := a.loop.Status().Stats.Lapses; n != 0 {
			t.Fatalf("renewals %s late: %d lapses", late, n)
		}
	}
	peak := a.loop.Status().Stats
	if peak.Lease < 3*time.Second || peak.Lease > cfg.MaxLease {
		t.Errorf("asked for a lease of %s with renewals 1 s late, want 3 s to %s", peak.Lease, cfg.MaxLease)
	}
	if peak.Slow == 0 || peak.Slowest < time.Second {
		t.Errorf("slow renewals %d, slowest %s: the late ones not counted", peak.Slow, peak.Slowest)
	}
	a.store.late.Store(0)
	time.Sleep(3 * time.Second)
	if got := a.loop.Status().Stats.Lease; got >= peak.Lease {
		t.Errorf("asks for %s three seconds after renewals were quick again, %s at the slowest", got, peak.Lease)
	}
	waitSpread(t, dpids, []*ctl{a, b}, live, time.Second)
	for _, c := range []*ctl{a, b} {
		if n := c.loop.Status().Stats.Lapses; n != 0 {
			t.Errorf("%s: %d lapses", c.id, n)
		}
	}
	if n := b.loop.Status().Stats.Claimed - claimed; n != 0 {
		t.Errorf("ctl-b claimed %d hosts while ctl-a was slow", n)
	}
	checkOneWriter(t, []*ctl{a, b})
}

// A controller that dies while asking for a long lease is replaced within that lease.
func TestDeadSlowControllerReplacedWithinItsLease(t *testing.T) {
	st := openStore(t)
	dpids := registerHosts(t, st, 20)
	cfg := testConfig()
	cfg.MaxLease = 3 * time.Second
	a, b := start(t, st, "ctl-a", cfg), start(t, st, "ctl-b", cfg)
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-a", "ctl-b"}, 5*time.Second)
	a.store.late.Store(int64(time.Second))
	time.Sleep(3 * time.Second)
	asked := a.loop.Status().Stats.Lease
	if asked < 2*time.Second {
		t.Fatalf("asked for %s with renewals 1 s late", asked)
	}
	a.store.cut.Store(true) // dead to the database from now on
	cut := time.Now()
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-b"}, asked+2*time.Second)
	if took := time.Since(cut); took < asked/2 {
		t.Errorf("ctl-b took ctl-a's hosts %s after its last renewals, which asked for %s", took, asked)
	}
	checkOneWriter(t, []*ctl{a, b})
}
