// Desired flows handed to each bridge's reconciler, and the controller meter.

package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// pushFlows hands the bridges of the affected hosts (all of them if all) and of the hosts
// with affected parts, and the switches that connected or changed ports, their desired flows
// at view v, computing them on every core. It returns how many bridges it pushed.
func (e *Engine) pushFlows(v *topology.View, all bool, hosts map[string]bool, parts map[string]map[string]bool, dpids map[uint64]bool) int {
	e.mu.Lock()
	todo := e.pushesOf(v, all, hosts, parts, dpids)
	e.mu.Unlock()
	e.installMeters(v, todo)
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

// pushesOf returns what pushFlows pushes: every part of the bridges of hosts and of the
// switches in dpids marked whole (connected), the port parts (apps.PortParts) of the other
// switches in dpids (ports changed), and the parts listed for other hosts. e.mu is held.
func (e *Engine) pushesOf(v *topology.View, all bool, hosts map[string]bool, parts map[string]map[string]bool, dpids map[uint64]bool) []push {
	var todo []push
	if all {
		for _, b := range e.bridges {
			todo = append(todo, push{b: b})
		}
		return todo
	}
	// Visit the affected hosts' bridges, not every connected switch.
	whole := map[uint64]bool{}
	for id, w := range dpids {
		if w {
			whole[id] = true
		}
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
	some := map[uint64]map[string]bool{}
	for id, w := range dpids {
		if w || whole[id] {
			continue
		}
		// Only ports other than the fixed ones changed: a network node's br-int has a
		// part for each of its thousands of DVR peers, which name none of them.
		h, _, ok := v.HostOfDPID(id)
		if !ok {
			whole[id] = true
			continue
		}
		some[id] = apps.PortParts(v, h)
	}
	for h, ps := range parts {
		if hi := v.Host(h); hi != nil {
			for br, id := range hi.Bridges {
				if whole[id] {
					continue
				}
				if on := apps.PartsOn(br, ps); len(on) > 0 {
					if some[id] == nil {
						some[id] = on
					} else {
						maps.Copy(some[id], on)
					}
				}
			}
		}
	}
	for id := range whole {
		if b := e.bridges[id]; b != nil {
			todo = append(todo, push{b: b})
		}
	}
	for id, ps := range some {
		if b := e.bridges[id]; b != nil {
			todo = append(todo, push{b: b, parts: ps})
		}
	}
	return todo
}

// maxMeterRequests bounds the meter installations in flight at once.
const maxMeterRequests = 256

// installMeters installs the controller meter on the bridges of todo that belong to a
// registered host and have none yet, many at once: each is a round trip to its switch
// (the meters read, then maybe a meter-mod and a barrier), not work for a core, and the
// bridges' flows, which use the meter, are computed after. Thousands of bridges at once
// (a cold start, a controller taking over another's switches) would otherwise wait for
// their round trips one by one on the computing workers. A bridge whose meter failed
// tries again in pushBridge.
func (e *Engine) installMeters(v *topology.View, todo []push) {
	sem := make(chan struct{}, maxMeterRequests)
	var wg sync.WaitGroup
	for _, p := range todo {
		e.mu.Lock()
		need, sess := !p.b.meter, p.b.sess
		e.mu.Unlock()
		if _, _, ok := v.HostOfDPID(p.b.dpid); !need || !ok {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := e.installMeter(sess); err != nil {
				return // logged by pushBridge's own attempt
			}
			e.mu.Lock()
			p.b.meter = true
			e.mu.Unlock()
		}()
	}
	wg.Wait()
}

// push is a bridge to push: every part of its flows (parts nil) or those listed.
type push struct {
	b     *bridge
	parts map[string]bool
}

// pushBridge hands bridge b its desired flows at view v: every part, or only the parts
// listed (a listed part no longer present is removed). A switch that is not (yet) a
// registered host's bridge is left untouched: its reconciler is never primed.
func (e *Engine) pushBridge(v *topology.View, b *bridge, only map[string]bool) {
	host, br, ok := v.HostOfDPID(b.dpid)
	// The loggers are made only to log: a port joining a group pushes thousands of bridges.
	log := func() *zap.Logger { return e.log.With(zap.String("dpid", ofproto.DPID(b.dpid).String())) }
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
			log().Error("clearing desired flows", zap.Error(err))
		}
		if first || was != "" {
			log().Info("switch of no registered host: dvrflow's flows removed, others left alone", zap.String("was_host", was))
		}
		return
	}
	log = func() *zap.Logger {
		return e.log.With(zap.String("dpid", ofproto.DPID(b.dpid).String()), zap.String("host", host), zap.String("bridge", string(br)))
	}
	e.mu.Lock()
	b.host = host
	st := &apps.BridgeState{Host: host, Bridge: br, Ports: b.ports} // port events replace the map, never change it
	needMeter := !b.meter
	sess := b.sess
	e.mu.Unlock()
	if needMeter {
		if err := e.installMeter(sess); err != nil {
			log().Warn("installing the controller meter", zap.Error(err))
		} else {
			e.mu.Lock()
			b.meter = true
			e.mu.Unlock()
		}
	}
	u := controller.Update{Revision: v.Revision, Parts: map[string][]ofproto.Flow{}, Shared: map[string]*controller.SharedPart{}, Complete: only == nil}
	var todo []string
	if only == nil {
		todo = apps.Parts(v, st)
	} else {
		for part := range only {
			if apps.HasPart(v, st, part) {
				todo = append(todo, part)
			} else if apps.Shared(part) {
				u.Shared[part] = nil
			} else {
				u.Parts[part] = nil
			}
		}
	}
	for _, part := range todo {
		if apps.Shared(part) {
			sp, err := e.shared.get(v, part)
			if err != nil {
				log().Error("computed flow breaks its table's declaration; desired set kept", zap.Error(err), zap.Int64("rev", v.Revision))
				return
			}
			u.Shared[part] = sp
			continue
		}
		u.Parts[part] = apps.FlowsOf(v, st, part)
	}
	// Every flow is checked against its table's declaration as it is built, not only in
	// tests (Faucet's habit): about 4% of the computing time at 5,000 hosts
	// (BenchmarkScaleView/FlowsEveryBridgeChecked); shared parts once, when computed. A flow
	// that breaks it is a bug: the bridge keeps its previous desired set.
	for part, fs := range u.Parts {
		for i := range fs {
			if err := apps.Check(br, &fs[i]); err != nil {
				log().Error("computed flow breaks its table's declaration; desired set kept", zap.String("part", part),
					zap.Error(err), zap.Int64("rev", v.Revision))
				return
			}
		}
	}
	if err := e.sw.Reconciler(b.dpid).Set(u); err != nil {
		log().Error("desired flows refused", zap.Error(err), zap.Int64("rev", v.Revision))
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
