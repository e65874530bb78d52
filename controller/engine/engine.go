// Package engine drives dvrflow's control loop: it follows the topology in PostgreSQL, turns
// each revision into an apps.View, gives every connected bridge the flows the apps compute
// for it (the controller's reconcilers send only the difference), answers ARP packet-ins,
// marks ports ACTIVE when their device appears on their host, allocates local VLANs, and
// publishes each host's namespace plan to the host helpers.
//
// It recomputes every bridge from a fresh snapshot on each change (the full recompute of
// STYLE.md: correct first; the reconcilers make the result cheap on the wire).
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/deploy/plan"
	"github.com/dvrflow/dvrflow/ofproto"
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

	view atomic.Pointer[apps.View]
	kick chan struct{} // a switch event or a topology notification: recompute

	mu      sync.Mutex
	bridges map[uint64]*bridge // connected switches by DPID
	plans   map[string]*hostPlan
	planCh  chan struct{} // closed and replaced whenever a plan changes
	stats   Stats
}

type bridge struct {
	dpid  uint64
	sess  *controller.Session
	ports map[string]uint32
	meter bool // the controller meter is installed
}

type hostPlan struct {
	plan plan.Plan
	body []byte // JSON without the revision, to tell real changes apart
}

// Stats are the engine's counters, for the status page and metrics.
type Stats struct {
	Revision        int64
	Recomputes      uint64
	LastRecompute   time.Duration
	ARPAnswered     uint64
	ARPUnknown      uint64
	MissPacketIns   uint64
	UnknownSwitches uint64
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
		log:     log.Named("engine"),
		cfg:     cfg,
		store:   store,
		sw:      sw,
		kick:    make(chan struct{}, 1),
		bridges: map[uint64]*bridge{},
		plans:   map[string]*hostPlan{},
		planCh:  make(chan struct{}),
	}
}

// View returns the current topology view (nil before the first snapshot).
func (e *Engine) View() *apps.View { return e.view.Load() }

// ReadView calls fn with the current topology view (nil before the first snapshot) while
// no change is being applied to it. fn must not keep v nor block.
func (e *Engine) ReadView(fn func(v *apps.View)) { fn(e.view.Load()) }

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
			if v := e.view.Load(); v == nil || rev != v.Revision {
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
			if err := e.recompute(ctx); err != nil {
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

// recompute takes a snapshot, allocates what the new placement needs, and pushes flows,
// port status and plans.
func (e *Engine) recompute(ctx context.Context) error {
	start := time.Now()
	var v *apps.View
	for range 3 {
		topo, rev, err := e.store.Snapshot(ctx)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		v = apps.NewView(topo, rev)
		changed, err := e.allocateVLANs(ctx, v)
		if err != nil {
			return err
		}
		if !changed {
			break
		}
	}
	e.view.Store(v)
	e.pushFlows(v)
	e.updatePlans(v)
	if err := e.updatePortStatus(ctx, v); err != nil {
		return err
	}
	e.mu.Lock()
	e.stats.Revision = v.Revision
	e.stats.Recomputes++
	e.stats.LastRecompute = time.Since(start)
	e.mu.Unlock()
	e.log.Debug("recomputed", zap.Int64("rev", v.Revision), zap.Duration("took", time.Since(start)))
	return nil
}

// allocateVLANs gives every network present on a host a local VLAN and frees those of
// networks gone from it. It reports whether it changed anything (then the caller snapshots
// again).
func (e *Engine) allocateVLANs(ctx context.Context, v *apps.View) (bool, error) {
	changed := false
	for host, nets := range v.MissingVLANs() {
		if _, err := e.store.EnsureLocalVLANs(ctx, host, nets); err != nil {
			return false, fmt.Errorf("allocate local VLANs on %s: %w", host, err)
		}
		changed = true
	}
	for host, nets := range v.StaleVLANs() {
		if len(nets) == 0 {
			continue
		}
		if err := e.store.ReleaseLocalVLANs(ctx, host, nets); err != nil {
			return false, fmt.Errorf("release local VLANs on %s: %w", host, err)
		}
		changed = true
	}
	return changed, nil
}

func (e *Engine) pushFlows(v *apps.View) {
	e.mu.Lock()
	bridges := make([]*bridge, 0, len(e.bridges))
	for _, b := range e.bridges {
		bridges = append(bridges, b)
	}
	e.mu.Unlock()
	for _, b := range bridges {
		e.pushBridge(v, b)
	}
}

// pushBridge hands bridge b its desired flows at view v. A switch that is not (yet) a
// registered host's bridge is left untouched: its reconciler is never primed.
func (e *Engine) pushBridge(v *apps.View, b *bridge) {
	host, role, ok := v.HostOfDPID(b.dpid)
	log := e.log.With(zap.String("dpid", fmt.Sprintf("%016x", b.dpid)))
	if !ok {
		e.mu.Lock()
		e.stats.UnknownSwitches++
		e.mu.Unlock()
		log.Debug("switch of no registered host: left alone")
		return
	}
	log = log.With(zap.String("host", host), zap.String("bridge", string(role)))
	e.mu.Lock()
	st := &apps.BridgeState{Host: host, Role: role, Ports: make(map[string]uint32, len(b.ports))}
	for n, p := range b.ports {
		st.Ports[n] = p
	}
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
	flows := apps.Flows(v, st)
	if err := e.sw.Reconciler(b.dpid).SetDesired(flows); err != nil {
		log.Error("desired flows refused", zap.Error(err), zap.Int64("rev", v.Revision))
	}
}

// installMeter adds (or updates) the meter every controller-bound flow goes through.
func (e *Engine) installMeter(sess *controller.Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	band := []ofproto.MeterBandDrop{{Rate: e.cfg.MeterRate, BurstSize: e.cfg.MeterBurst}}
	flags := ofproto.MeterFlagPktps | ofproto.MeterFlagBurst | ofproto.MeterFlagStats
	for _, cmd := range []ofproto.MeterModCommand{ofproto.MeterAdd, ofproto.MeterModify} {
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
			continue // installed by an earlier run: make sure it has our rate
		}
		return fmt.Errorf("meter %d: %w", apps.MeterController, oe)
	}
	return nil
}

func (e *Engine) onEvent(ev controller.Event) {
	e.mu.Lock()
	var b *bridge
	switch ev := ev.(type) {
	case controller.SwitchConnected:
		b = &bridge{dpid: ev.DPID, sess: ev.Session, ports: map[string]uint32{}}
		for _, p := range ev.Ports {
			b.ports[p.Name] = p.No
		}
		e.bridges[ev.DPID] = b
	case controller.SwitchDisconnected:
		delete(e.bridges, ev.DPID)
	case controller.PortStatus:
		b = e.bridges[ev.DPID]
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
	}
	e.mu.Unlock()
	if b == nil {
		return
	}
	// The control loop recomputes and pushes: one goroutine hands out desired sets, so a
	// set computed from an older view can never land after a newer one.
	e.poke()
}

// updatePortStatus marks a VM port ACTIVE when its tap is on its host's br-int and DOWN when
// it is not.
func (e *Engine) updatePortStatus(ctx context.Context, v *apps.View) error {
	e.mu.Lock()
	present := map[string]map[string]bool{} // host -> br-int port names
	known := map[string]bool{}              // hosts whose br-int is connected
	for dpid, b := range e.bridges {
		host, role, ok := v.HostOfDPID(dpid)
		if !ok || role != apps.BrInt {
			continue
		}
		known[host] = true
		present[host] = map[string]bool{}
		for n := range b.ports {
			present[host][n] = true
		}
	}
	e.mu.Unlock()
	for _, p := range v.Ports() {
		if !apps.IsDVRServiced(p.DeviceOwner) || !known[p.HostID] {
			continue
		}
		want := db.PortStatusDown
		if present[p.HostID][apps.VMPortName(p.ID)] {
			want = db.PortStatusActive
		}
		if p.Status == want {
			continue
		}
		if err := e.store.SetPortStatus(ctx, p.ID, want); err != nil {
			var de *db.Error
			if errors.As(err, &de) && de.Class == db.ClassNotFound {
				continue // deleted meanwhile
			}
			return fmt.Errorf("port %s status %s: %w", p.ID, want, err)
		}
	}
	return nil
}

// updatePlans recomputes every host's namespace plan and wakes the helpers waiting for one
// that changed. A plan keeps the revision at which its content last changed.
func (e *Engine) updatePlans(v *apps.View) {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed := false
	for _, h := range v.HostNames() {
		p := apps.Plan(v, h)
		rev := p.Revision
		p.Revision = 0
		body, err := json.Marshal(p)
		if err != nil {
			e.log.Error("encoding plan", zap.String("host", h), zap.Error(err))
			continue
		}
		p.Revision = rev
		if old := e.plans[h]; old != nil && bytes.Equal(old.body, body) {
			continue
		}
		if err := p.Validate(); err != nil {
			e.log.Error("computed an invalid plan: not published", zap.String("host", h), zap.Error(err))
			continue
		}
		e.plans[h] = &hostPlan{plan: p, body: body}
		changed = true
	}
	if changed {
		close(e.planCh)
		e.planCh = make(chan struct{})
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
	v := e.view.Load()
	if v == nil {
		return
	}
	host, _, ok := v.HostOfDPID(pi.Session.DPID())
	if !ok {
		return
	}
	req, err := apps.ParseARPRequest(pi.Data)
	if err != nil {
		return
	}
	mac, ok := v.ResolveARP(host, req)
	if !ok {
		e.mu.Lock()
		e.stats.ARPUnknown++
		e.mu.Unlock()
		return
	}
	reply := apps.ARPReply(req, mac)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := pi.Session.PacketOut(ctx, ofproto.PortController, []ofproto.Action{ofproto.Output{Port: pi.InPort}}, reply); err != nil {
		e.log.Debug("ARP reply not sent", zap.Error(err))
		return
	}
	e.mu.Lock()
	e.stats.ARPAnswered++
	e.mu.Unlock()
}

// onMiss counts unknown unicast that reached the controller from TRANSIENT's miss flow (the
// meter already bounds it); the count is on the status page.
func (e *Engine) onMiss(pi *controller.PacketIn) {
	e.mu.Lock()
	e.stats.MissPacketIns++
	e.mu.Unlock()
}
