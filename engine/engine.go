// Package engine drives dvrflow's control loop: it follows the topology in PostgreSQL, turns
// each revision into an apps.View, gives every connected bridge the flows the apps compute
// for it (the controller's reconcilers send only the difference), answers ARP packet-ins,
// marks ports ACTIVE when their device appears on their host, allocates local VLANs, and
// publishes each host's namespace plan to the host helpers.
//
// It follows the change log: each batch of changes is applied to the View, which says which
// hosts it can affect, and only those hosts' bridges, plans and port statuses are computed
// again (a snapshot is taken at start and whenever the log cannot be followed). The
// reconcilers then send only the difference.
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
)

// Config tunes the engine.
type Config struct {
	// MeterRate is the packet-in budget of the controller meter on every bridge, in
	// packets per second (default 1000), with a burst of MeterBurst (default MeterRate).
	MeterRate, MeterBurst uint32
}

// Engine is the control loop. Create it with New, start it with Run.
type Engine struct {
	log   *zap.Logger
	cfg   Config
	store *db.Store
	sw    *controller.Server

	// view is written only by the control loop (Apply, under viewMu) and read by it
	// without the lock; other goroutines (ARP packet-ins, the status page) read it under
	// viewMu's read lock.
	viewMu sync.RWMutex
	view   *apps.View
	kick   chan struct{} // a switch event or a topology notification: run a pass

	// Carried between passes of the control loop (its goroutine only).
	pendingAll   bool
	pendingHosts map[string]bool            // hosts to recompute whole
	pendingParts map[string]map[string]bool // other hosts: flow parts to recompute
	pendingPlans map[string]bool            // other hosts: plans to recompute
	pendingMoves map[string]string          // VM ports whose binding moved -> the host they left
	allocatedAt  int64                      // view revision of the last pass that allocated local VLANs

	mu         sync.Mutex
	bridges    map[uint64]*bridge // connected switches by DPID
	dirtyDPIDs map[uint64]bool    // switches connected or changed ports since the last pass
	plans      map[string]*hostPlan
	planCh     chan struct{} // closed and replaced whenever a plan changes
	heldARP    []heldARP     // ARP requests waiting for the view to know their address
	stats      Stats
}

type bridge struct {
	dpid           uint64
	sess           *controller.Session
	ports          map[string]uint32
	meter          bool        // the controller meter is installed
	host           string      // the registered host it was last given flows for
	unknownCounted atomic.Bool // counted once in Stats.UnknownSwitches
}

type hostPlan struct {
	plan plan.Plan
	body []byte // JSON without the revision, to tell real changes apart
}

// Stats are the engine's counters, for the status page and metrics.
type Stats struct {
	Revision        int64
	Recomputes      uint64 // passes that computed something
	Snapshots       uint64 // full rebuilds of the view from a snapshot
	LastRecompute   time.Duration
	LastHosts       int // hosts the last pass recomputed
	LastBridges     int // bridges the last pass handed desired flows
	ARPAnswered     uint64
	ARPUnknown      uint64
	MissPacketIns   uint64
	UnknownSwitches uint64 // switches seen connecting that belong to no registered host
}

// New returns an engine over store and the OpenFlow server sw.
func New(log *zap.Logger, cfg Config, store *db.Store, sw *controller.Server) *Engine {
	if cfg.MeterRate == 0 {
		cfg.MeterRate = 1000
	}
	if cfg.MeterBurst == 0 {
		cfg.MeterBurst = cfg.MeterRate
	}
	return &Engine{
		log:          log.Named("engine"),
		cfg:          cfg,
		store:        store,
		sw:           sw,
		kick:         make(chan struct{}, 1),
		pendingHosts: map[string]bool{},
		pendingParts: map[string]map[string]bool{},
		pendingPlans: map[string]bool{},
		pendingMoves: map[string]string{},
		bridges:      map[uint64]*bridge{},
		dirtyDPIDs:   map[uint64]bool{},
		plans:        map[string]*hostPlan{},
		planCh:       make(chan struct{}),
	}
}

// ReadView calls fn with the current topology view (nil before the first snapshot) while
// no change is being applied to it. fn must not keep v nor block.
func (e *Engine) ReadView(fn func(v *apps.View)) {
	e.viewMu.RLock()
	defer e.viewMu.RUnlock()
	fn(e.view)
}

// Plans returns every host's current namespace plan, by host name.
func (e *Engine) Plans() map[string]plan.Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]plan.Plan, len(e.plans))
	for h, hp := range e.plans {
		out[h] = hp.plan
	}
	return out
}

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run follows the topology and the switches until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	cancelSub := e.sw.Subscribe(e.onEvent)
	defer cancelSub()
	cancelARP := e.sw.HandlePacketIn(apps.IntARPResponder, apps.Cookie(apps.AppARP), apps.CookieOwnerMask|apps.CookieAppMask, e.onARP)
	defer cancelARP()
	cancelMiss := e.sw.HandlePacketIn(apps.IntTransient, apps.Cookie(apps.AppMiss), apps.CookieOwnerMask|apps.CookieAppMask, e.onMiss)
	defer cancelMiss()

	listenErr := make(chan error, 1)
	go func() {
		listenErr <- e.store.Listen(ctx, func(rev int64) {
			var known int64 = -1
			e.ReadView(func(v *apps.View) {
				if v != nil {
					known = v.Revision
				}
			})
			if rev != known {
				e.poke()
			}
		})
	}()
	e.poke()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-listenErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("topology listener: %w", err)
		case <-e.kick:
			if err := e.pass(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				e.log.Warn("recompute failed, retrying", zap.Error(err))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
				e.poke()
			}
		}
	}
}

// maxChangesPerPass bounds the change-log rows one pass applies; a longer backlog takes
// several passes, each pushing what it has.
const maxChangesPerPass = 20000

// pass brings the view up to the store's revision, allocates local VLANs for what the new
// placement needs, and recomputes flows, plans and port statuses of the affected hosts.
func (e *Engine) pass(ctx context.Context) error {
	start := time.Now()
	if err := e.follow(ctx); err != nil {
		return err
	}
	v := e.view
	e.followMoves(v)
	e.answerHeldARP()
	e.mu.Lock()
	dirty := e.dirtyDPIDs
	e.dirtyDPIDs = map[uint64]bool{}
	e.mu.Unlock()
	hosts := e.pendingHostList(v)
	if len(hosts) == 0 && len(dirty) == 0 && len(e.pendingParts) == 0 && len(e.pendingPlans) == 0 {
		e.mu.Lock()
		e.stats.Revision = v.Revision
		e.mu.Unlock()
		return nil
	}
	allocated, err := e.allocateVLANs(ctx, v, hosts)
	if err != nil {
		e.requeue(dirty)
		return err
	}
	if allocated && v.Revision != e.allocatedAt {
		// The allocations come back through the change log: the next pass applies them
		// and pushes everything pending at once.
		e.allocatedAt = v.Revision
		e.requeue(dirty)
		e.poke()
		return nil
	}
	if allocated {
		e.log.Warn("local VLAN allocation changed nothing visible: pushing without it", zap.Int64("rev", v.Revision))
	}
	affected, parts := e.pendingHosts, e.pendingParts
	all := e.pendingAll
	planHosts := hosts
	if len(e.pendingPlans) > 0 {
		set := maps.Clone(e.pendingPlans)
		for _, h := range hosts {
			set[h] = true
		}
		planHosts = slices.Sorted(maps.Keys(set))
	}
	e.pendingHosts, e.pendingParts, e.pendingPlans, e.pendingAll = map[string]bool{}, map[string]map[string]bool{}, map[string]bool{}, false
	bridges := e.pushFlows(v, all, affected, parts, dirty)
	e.updatePlans(v, planHosts)
	statusHosts := slices.Clone(hosts)
	for dpid := range dirty {
		if h, role, ok := v.HostOfDPID(dpid); ok && role == apps.BrInt && !affected[h] {
			statusHosts = append(statusHosts, h)
		}
	}
	if err := e.updatePortStatus(ctx, v, statusHosts); err != nil {
		return err
	}
	took := time.Since(start)
	e.mu.Lock()
	e.stats.Revision = v.Revision
	e.stats.Recomputes++
	e.stats.LastRecompute = took
	e.stats.LastHosts = len(hosts)
	e.stats.LastBridges = bridges
	e.mu.Unlock()
	e.log.Debug("pass", zap.Int64("rev", v.Revision), zap.Int("hosts", len(hosts)),
		zap.Int("bridges", bridges), zap.Duration("took", took))
	return nil
}

// note adds what a view change affected to what the next push recomputes.
func (e *Engine) note(aff apps.Affected) {
	e.pendingAll = e.pendingAll || aff.All
	for h := range aff.Hosts {
		e.pendingHosts[h] = true
	}
	maps.Copy(e.pendingPlans, aff.Plans)
	for h, ps := range aff.Parts {
		if e.pendingParts[h] == nil {
			e.pendingParts[h] = map[string]bool{}
		}
		maps.Copy(e.pendingParts[h], ps)
	}
}

// follow applies the change log since the view's revision, or builds the view from a
// snapshot when there is none yet or the log cannot be applied, and notes what is affected.
func (e *Engine) follow(ctx context.Context) error {
	if e.view != nil {
		changes, err := e.store.ChangesSince(ctx, e.view.Revision, maxChangesPerPass)
		if err != nil {
			return fmt.Errorf("change log: %w", err)
		}
		if len(changes) == 0 {
			return nil
		}
		e.viewMu.Lock()
		aff, err := e.view.Apply(changes)
		e.viewMu.Unlock()
		if err == nil {
			e.note(aff)
			maps.Copy(e.pendingMoves, aff.Moves)
			if len(changes) >= maxChangesPerPass {
				e.poke() // more to read
			}
			return nil
		}
		e.log.Warn("change log not applicable: rebuilding the view from a snapshot", zap.Error(err))
	}
	topo, rev, err := e.store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	v := apps.NewView(topo, rev)
	e.viewMu.Lock()
	e.view = v
	e.viewMu.Unlock()
	e.pendingAll = true
	e.mu.Lock()
	e.stats.Snapshots++
	e.mu.Unlock()
	return nil
}

// pendingHostList returns the hosts to recompute: every registered host and every host
// holding local VLANs after a snapshot or a host change, else the affected ones.
func (e *Engine) pendingHostList(v *apps.View) []string {
	if e.pendingAll {
		set := map[string]bool{}
		for _, h := range v.HostNames() {
			set[h] = true
		}
		for _, h := range v.VLANHosts() {
			set[h] = true
		}
		return slices.Sorted(maps.Keys(set))
	}
	return slices.Sorted(maps.Keys(e.pendingHosts))
}

// requeue puts switches back for the next pass after a pass stopped early.
func (e *Engine) requeue(dpids map[uint64]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range dpids {
		e.dirtyDPIDs[id] = true
	}
}

// allocateVLANs gives every network present on one of hosts a local VLAN there and frees
// those of networks gone from it. It reports whether it changed anything.
func (e *Engine) allocateVLANs(ctx context.Context, v *apps.View, hosts []string) (bool, error) {
	missing, stale := v.MissingVLANs(hosts), v.StaleVLANs(hosts)
	for h, nets := range stale {
		if len(nets) == 0 {
			delete(stale, h)
		}
	}
	if len(missing) > 0 {
		if _, err := e.store.EnsureLocalVLANsBulk(ctx, missing); err != nil {
			return false, fmt.Errorf("allocate local VLANs on %d hosts: %w", len(missing), err)
		}
	}
	if len(stale) > 0 {
		if err := e.store.ReleaseLocalVLANsBulk(ctx, stale); err != nil {
			return false, fmt.Errorf("release local VLANs on %d hosts: %w", len(stale), err)
		}
	}
	return len(missing)+len(stale) > 0, nil
}

// pushFlows hands the bridges of the affected hosts (all of them if all) and of the hosts
// with affected parts, and the switches that connected or changed ports, their desired flows
// at view v, computing them on every core. It returns how many bridges it pushed.
func (e *Engine) pushFlows(v *apps.View, all bool, hosts map[string]bool, parts map[string]map[string]bool, dpids map[uint64]bool) int {
	e.mu.Lock()
	var todo []push
	if all {
		for _, b := range e.bridges {
			todo = append(todo, push{b: b})
		}
	} else {
		// Visit the affected hosts' bridges, not every connected switch.
		whole := map[uint64]bool{}
		for id := range dpids {
			whole[id] = true
		}
		for h := range hosts {
			if hi := v.Host(h); hi != nil {
				for _, id := range hi.Bridges {
					whole[id] = true
				}
				continue
			}
			// A host deleted (or whose bridges changed): its switches lose their flows.
			for id, b := range e.bridges {
				if b.host == h {
					whole[id] = true
				}
			}
		}
		for id := range whole {
			if b := e.bridges[id]; b != nil {
				todo = append(todo, push{b: b})
			}
		}
		for h, ps := range parts {
			if hi := v.Host(h); hi != nil {
				for _, id := range hi.Bridges {
					if b := e.bridges[id]; b != nil && !whole[id] {
						todo = append(todo, push{b: b, parts: ps})
					}
				}
			}
		}
	}
	e.mu.Unlock()
	work := make(chan push)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(todo), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				e.pushBridge(v, p.b, p.parts)
			}
		}()
	}
	for _, p := range todo {
		work <- p
	}
	close(work)
	wg.Wait()
	return len(todo)
}

// push is a bridge to push: every part of its flows (parts nil) or those listed.
type push struct {
	b     *bridge
	parts map[string]bool
}

// pushBridge hands bridge b its desired flows at view v: every part, or only the parts
// listed (a listed part no longer present is removed). A switch that is not (yet) a
// registered host's bridge is left untouched: its reconciler is never primed.
func (e *Engine) pushBridge(v *apps.View, b *bridge, only map[string]bool) {
	host, role, ok := v.HostOfDPID(b.dpid)
	log := e.log.With(zap.String("dpid", fmt.Sprintf("%016x", b.dpid)))
	if !ok {
		// No registered host claims the switch (its host was deleted, or is not
		// registered yet): dvrflow wants none of its flows there, foreign ones stay.
		e.mu.Lock()
		was := b.host
		b.host = ""
		first := b.unknownCounted.CompareAndSwap(false, true)
		if first {
			e.stats.UnknownSwitches++
		}
		e.mu.Unlock()
		if err := e.sw.Reconciler(b.dpid).SetParts(nil, true); err != nil {
			log.Error("clearing desired flows", zap.Error(err))
		}
		if first || was != "" {
			log.Info("switch of no registered host: dvrflow's flows removed, others left alone", zap.String("was_host", was))
		}
		return
	}
	log = log.With(zap.String("host", host), zap.String("bridge", string(role)))
	e.mu.Lock()
	b.host = host
	st := &apps.BridgeState{Host: host, Role: role, Ports: maps.Clone(b.ports)}
	needMeter := !b.meter
	sess := b.sess
	e.mu.Unlock()
	if needMeter {
		if err := e.installMeter(sess); err != nil {
			log.Warn("installing the controller meter", zap.Error(err))
		} else {
			e.mu.Lock()
			b.meter = true
			e.mu.Unlock()
		}
	}
	parts := map[string][]ofproto.Flow{}
	if only == nil {
		for _, part := range apps.Parts(v, st) {
			parts[part] = apps.FlowsOf(v, st, part)
		}
	} else {
		present := apps.Parts(v, st)
		for part := range only {
			if slices.Contains(present, part) {
				parts[part] = apps.FlowsOf(v, st, part)
			} else {
				parts[part] = nil
			}
		}
	}
	if err := e.sw.Reconciler(b.dpid).SetParts(parts, only == nil); err != nil {
		log.Error("desired flows refused", zap.Error(err), zap.Int64("rev", v.Revision))
	}
}

// installMeter adds (or updates) the meter every controller-bound flow goes through. It
// reads the switch's meters first, so that a controller restart sends no meter-mod and
// provokes no switch error (adding an existing meter is one).
func (e *Engine) installMeter(sess *controller.Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	band := []ofproto.MeterBandDrop{{Rate: e.cfg.MeterRate, BurstSize: e.cfg.MeterBurst}}
	flags := ofproto.MeterFlagPktps | ofproto.MeterFlagBurst | ofproto.MeterFlagStats
	cmds := []ofproto.MeterModCommand{ofproto.MeterAdd, ofproto.MeterModify}
	if parts, err := sess.RequestMultipart(ctx, ofproto.AppendMeterConfigRequest(nil, 0, ofproto.MeterAll)); err == nil {
		for _, body := range parts {
			mcs, err := ofproto.DecodeMeterConfigReply(body)
			if err != nil {
				return fmt.Errorf("meter %d: %w", apps.MeterController, err)
			}
			for _, mc := range mcs {
				if mc.MeterID != apps.MeterController {
					continue
				}
				if mc.Flags == flags && mc.Other == 0 && slices.Equal(mc.Bands, band) {
					return nil
				}
				cmds = []ofproto.MeterModCommand{ofproto.MeterModify}
			}
		}
	} else if errors.As(err, new(*controller.OFError)) {
		e.log.Info("switch cannot list its meters; adding the controller meter", zap.Uint64("dpid", sess.DPID()), zap.Error(err))
	} else {
		return fmt.Errorf("meter %d: reading the switch's meters: %w", apps.MeterController, err)
	}
	for _, cmd := range cmds {
		xid := sess.ReserveXIDs(1)
		var swErr atomic.Pointer[controller.OFError]
		stop := sess.WatchErrors(xid, 1, func(_ uint32, oe *controller.OFError) { swErr.Store(oe) })
		err := sess.Send(ctx, ofproto.AppendMeterMod(nil, xid, cmd, flags, apps.MeterController, band))
		if err == nil {
			err = sess.Barrier(ctx)
		}
		stop()
		if err != nil {
			return fmt.Errorf("meter %d: %w", apps.MeterController, err)
		}
		oe := swErr.Load()
		if oe == nil {
			return nil
		}
		if cmd == ofproto.MeterAdd && oe.Code == ofproto.ErrCodeMeterExists {
			// Installed by an earlier run, on a switch that cannot list its meters:
			// make sure it has our rate. The switch counted an error: say which.
			e.log.Info("controller meter exists; modifying it", zap.Uint64("dpid", sess.DPID()), zap.Error(oe))
			continue
		}
		return fmt.Errorf("meter %d: %w", apps.MeterController, oe)
	}
	return nil
}

func (e *Engine) onEvent(ev controller.Event) {
	e.mu.Lock()
	var dpid uint64
	switch ev := ev.(type) {
	case controller.SwitchConnected:
		b := &bridge{dpid: ev.DPID, sess: ev.Session, ports: map[string]uint32{}}
		for _, p := range ev.Ports {
			b.ports[p.Name] = p.No
		}
		e.bridges[ev.DPID] = b
		dpid = ev.DPID
	case controller.SwitchDisconnected:
		delete(e.bridges, ev.DPID)
		delete(e.dirtyDPIDs, ev.DPID)
	case controller.PortStatus:
		b := e.bridges[ev.DPID]
		if b == nil {
			break
		}
		if ev.OldName != "" {
			delete(b.ports, ev.OldName)
		}
		if ev.Reason == controller.PortDeleted {
			delete(b.ports, ev.Port.Name)
		} else {
			b.ports[ev.Port.Name] = ev.Port.No
		}
		dpid = ev.DPID
	}
	if dpid != 0 {
		e.dirtyDPIDs[dpid] = true
	}
	e.mu.Unlock()
	if dpid == 0 {
		return
	}
	// The control loop computes and pushes: one goroutine hands out desired sets, so a set
	// computed from an older view can never land after a newer one.
	e.poke()
}

// updatePortStatus sets the status of the ports realized on hosts, as Neutron reports it:
// a VM port is ACTIVE while its tap is on its host's br-int, DOWN when not; a router
// interface, SNAT, gateway or agent gateway port is ACTIVE while its namespace end is on
// the br-int of a host where the view places it, DOWN when it is on none of them. Ports
// are left as they are while a br-int that decides is not connected.
func (e *Engine) updatePortStatus(ctx context.Context, v *apps.View, hosts []string) error {
	e.mu.Lock()
	brInt := map[string]map[string]uint32{} // host -> its connected br-int's ports
	portsOf := func(host string) (map[string]uint32, bool) {
		if ps, ok := brInt[host]; ok {
			return ps, ps != nil
		}
		var ps map[string]uint32
		if id, ok := v.Host(host).BridgeID(apps.BrInt); ok {
			if b := e.bridges[id]; b != nil {
				ps = maps.Clone(b.ports)
			}
		}
		brInt[host] = ps
		return ps, ps != nil
	}
	want := map[string]string{}
	seen := map[string]bool{}
	// realized decides a router-owned port over every host the view places it on.
	realized := func(p *apps.PortInfo) {
		if p == nil || seen[p.ID] {
			return
		}
		seen[p.ID] = true
		st, decided := db.PortStatusDown, true
		for _, h := range v.PortHosts(p) {
			ps, ok := portsOf(h)
			if !ok {
				decided = false
				continue
			}
			if _, ok := ps[apps.OVSPortName(p.Port)]; ok {
				st, decided = db.PortStatusActive, true
				break
			}
		}
		if decided && p.Status != st {
			want[p.ID] = st
		}
	}
	for _, host := range hosts {
		present, ok := portsOf(host)
		if !ok {
			continue
		}
		for _, p := range v.PortsOn(host) {
			switch {
			case apps.IsDVRServiced(p.DeviceOwner):
				st := db.PortStatusDown
				if _, ok := present[apps.VMPortName(p.ID)]; ok {
					st = db.PortStatusActive
				}
				if p.Status != st {
					want[p.ID] = st
				}
			case p.DeviceOwner == db.OwnerFloatingIPAgentGateway:
				realized(p)
			}
		}
		for _, rid := range append(v.RoutersOn(host), v.SNATRoutersOn(host)...) {
			r := v.Router(rid)
			if r == nil {
				continue
			}
			for _, s := range r.Interfaces {
				if s.RouterIf != nil {
					realized(s.RouterIf)
				}
				if s.SNATPort != nil {
					realized(s.SNATPort)
				}
			}
			if r.GatewayPort != nil {
				realized(r.GatewayPort)
			}
		}
	}
	e.mu.Unlock()
	if err := e.store.SetPortStatuses(ctx, want); err != nil {
		return fmt.Errorf("status of %d ports: %w", len(want), err)
	}
	return nil
}

// updatePlans recomputes the namespace plans of hosts and wakes the helpers waiting for one
// that changed. A plan keeps the revision at which its content last changed.
func (e *Engine) updatePlans(v *apps.View, hosts []string) {
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

// onARP answers an ARP request for a known address with a packet-out on the asking port.
// It runs on the switch's reader goroutine: no database, only the current view.
func (e *Engine) onARP(pi *controller.PacketIn) {
	req, err := apps.ParseARPRequest(pi.Data)
	if err != nil {
		return
	}
	if e.answerARP(pi.Session, pi.InPort, req) {
		return
	}
	// Not known (yet): a router asking for a port the API just created can be faster than
	// the change log. Hold the request until the next pass has applied the newest changes.
	e.mu.Lock()
	if len(e.heldARP) < maxHeldARP {
		e.heldARP = append(e.heldARP, heldARP{sess: pi.Session, inPort: pi.InPort, req: req, at: time.Now()})
	} else {
		e.stats.ARPUnknown++
	}
	e.mu.Unlock()
	// No poke: the change that makes the address known wakes the loop, which answers then.
}

// heldARP is an ARP request for an address the view did not know when it came.
type heldARP struct {
	sess   *controller.Session
	inPort uint32
	req    apps.ARPRequest
	at     time.Time
}

const (
	maxHeldARP = 4096            // requests held at most, beyond that they count as unknown
	heldARPFor = 2 * time.Second // then a request counts as unknown (the asker retries after 1 s)
)

// answerHeldARP answers the held requests the view knows now and drops the stale ones.
func (e *Engine) answerHeldARP() {
	e.mu.Lock()
	held := e.heldARP
	e.heldARP = nil
	e.mu.Unlock()
	var keep []heldARP
	now := time.Now()
	for _, h := range held {
		if e.answerARP(h.sess, h.inPort, h.req) {
			continue
		}
		if now.Sub(h.at) < heldARPFor {
			keep = append(keep, h)
			continue
		}
		e.mu.Lock()
		e.stats.ARPUnknown++
		e.mu.Unlock()
	}
	if len(keep) > 0 {
		e.mu.Lock()
		e.heldARP = append(keep, e.heldARP...)
		e.mu.Unlock()
	}
}

// answerARP replies to req on sess's port inPort if the view knows the address. It reports
// whether it knew (a reply that could not be sent counts as answered: the asker retries).
func (e *Engine) answerARP(sess *controller.Session, inPort uint32, req apps.ARPRequest) bool {
	var mac net.HardwareAddr
	known := false
	e.ReadView(func(v *apps.View) {
		if v == nil {
			return
		}
		if host, _, ok := v.HostOfDPID(sess.DPID()); ok {
			mac, known = v.ResolveARP(host, req)
		}
	})
	if !known {
		return false
	}
	// PacketOutPort never waits (no timer per reply): a full queue drops the reply.
	if err := sess.PacketOutPort(ofproto.PortController, inPort, apps.ARPReply(req, mac)); err != nil {
		e.log.Debug("ARP reply not sent", zap.Error(err))
		return true
	}
	e.mu.Lock()
	e.stats.ARPAnswered++
	e.mu.Unlock()
	return true
}

// onMiss counts unknown unicast that reached the controller from TRANSIENT's miss flow (the
// meter already bounds it); the count is on the status page.
func (e *Engine) onMiss(pi *controller.PacketIn) {
	e.mu.Lock()
	e.stats.MissPacketIns++
	e.mu.Unlock()
}
