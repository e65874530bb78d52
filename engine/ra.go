// IPv6 router advertisements: answers to router solicitations, and unsolicited ones to
// every local port of an advertised network, now and then and as soon as it is plugged.

package engine

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// Default interval of unsolicited router advertisements: each round waits a random time
// between the two (RFC 4861 6.2.4's jitter, so that hosts do not advertise in step), well
// under RARouterLifetime.
const (
	defaultRAMinInterval = 10 * time.Second
	defaultRAMaxInterval = 30 * time.Second
)

// raRealizedPoll is how soon advertise looks again at a bridge whose flows were not
// realized yet.
const (
	raRealizedPoll = 50 * time.Millisecond
	raRealizedWait = 5 * time.Second
)

// onRS answers a router solicitation with the advertisements of its network, on the asking
// port. It runs on the switch's reader goroutine, from the current view.
func (e *Engine) onRS(pi *controller.PacketIn) {
	rs, err := ofproto.ParseND(pi.Data)
	if err != nil {
		return
	}
	var frames [][]byte
	e.ReadView(func(v *topology.View) {
		if v == nil {
			return
		}
		if host, _, ok := v.HostOfDPID(pi.Session.DPID()); ok {
			for _, ra := range apps.SolicitedAdverts(v, host, rs) {
				frames = append(frames, ofproto.AppendRouterAdvert(nil, &ra))
			}
		}
	})
	e.sendRAs(pi.Session, pi.InPort, frames)
}

// sendRAs sends frames out of port of sess, counting them.
func (e *Engine) sendRAs(sess *controller.Session, port uint32, frames [][]byte) {
	sent := 0
	for _, f := range frames {
		// PacketOutPort never waits: a full queue drops it, the next round sends it again.
		if err := sess.PacketOutPort(ofproto.PortController, port, f); err != nil {
			e.log.Debug("router advertisement not sent", zap.Uint64("dpid", sess.DPID()), zap.Error(err))
			continue
		}
		sent++
	}
	e.mu.Lock()
	e.stats.RASent += uint64(sent)
	e.mu.Unlock()
}

// raTarget is a port that heard the advertisements of its network: the switch, its
// OpenFlow port, the port's ID (a port number reused by another port is new) and a digest
// of the advertisements (a subnet attached or detached changes them: heard again at once).
type raTarget struct {
	dpid   uint64
	ofport uint32
	port   string
	digest uint64
}

// advertise sends the unsolicited router advertisements until ctx ends: every local port
// of an advertised network gets them each round, and a port that appears between rounds
// (the passes name its bridge, raPending) at once.
func (e *Engine) advertise(ctx context.Context) {
	heard := map[raTarget]bool{}
	waiting := map[uint64]time.Time{} // bridges whose flows are not realized yet, since
	interval := func() time.Duration {
		lo, hi := e.cfg.RAMinInterval, e.cfg.RAMaxInterval
		return lo + rand.N(hi-lo+1)
	}
	timer := time.NewTimer(interval())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			heard = e.advertiseRound(nil, nil)
			timer.Reset(interval())
		case <-e.raKick:
			e.mu.Lock()
			pending := e.raPending
			e.raPending = map[uint64]bool{}
			e.mu.Unlock()
			ready, wait := e.realizedBridges(pending, waiting)
			if len(ready) > 0 {
				e.advertiseRound(ready, heard)
			}
			if wait != nil {
				time.AfterFunc(raRealizedPoll, func() { e.kickRAs(wait) })
			}
		}
	}
}

// realizedBridges splits pending into the bridges that hold the flows of their newest
// desired set, or have been waited for longer than raRealizedWait (a refused flow), and
// those to wait for (since when: waiting). A port hears its first advertisement once its
// bridge holds the flows of the pass that made it known: its kernel then autoconfigures
// its address and solicits for it at once (duplicate address detection), and the flow
// sending that to the controller must be there, or it floods into the tunnels.
func (e *Engine) realizedBridges(pending map[uint64]bool, waiting map[uint64]time.Time) (ready, wait map[uint64]bool) {
	ready = map[uint64]bool{}
	now := time.Now()
	for dpid := range pending {
		r, ok := e.sw.ReconcilerOf(dpid)
		since, waited := waiting[dpid]
		if ok && (!waited || now.Sub(since) <= raRealizedWait) {
			if st := r.Stats(); st.RealizedRevision < st.DesiredRevision {
				if !waited {
					waiting[dpid] = now
				}
				if wait == nil {
					wait = map[uint64]bool{}
				}
				wait[dpid] = true
				continue
			}
		}
		delete(waiting, dpid)
		ready[dpid] = true
	}
	return ready, wait
}

// advertiseRound sends the advertisements of every advertised network to its local ports
// on the br-int bridges of only (all when nil), skipping the ports in heard (none when
// nil), and returns the ports it sent to (and adds them to heard).
func (e *Engine) advertiseRound(only map[uint64]bool, heard map[raTarget]bool) map[raTarget]bool {
	type send struct {
		sess   *controller.Session
		target raTarget
		frames [][]byte
	}
	type br struct {
		sess  *controller.Session
		ports map[string]uint32
	}
	e.mu.Lock()
	bridges := make(map[uint64]br, len(e.bridges))
	for dpid, b := range e.bridges {
		if only == nil || only[dpid] {
			bridges[dpid] = br{b.sess, b.ports}
		}
	}
	e.mu.Unlock()
	var sends []send
	e.ReadView(func(v *topology.View) {
		if v == nil {
			return
		}
		for dpid, b := range bridges {
			host, kind, ok := v.HostOfDPID(dpid)
			if !ok || kind != topology.BrInt {
				continue
			}
			for netID, ls := range apps.RAListeners(v, &apps.BridgeState{Host: host, Bridge: kind, Ports: b.ports}) {
				var frames [][]byte
				digest := fnv.New64a()
				for _, ra := range apps.RouterAdverts(v, netID) {
					f := ofproto.AppendRouterAdvert(nil, &ra)
					frames = append(frames, f)
					digest.Write(f)
				}
				for _, l := range ls {
					t := raTarget{dpid, l.OFPort, l.Port.ID, digest.Sum64()}
					if !heard[t] {
						sends = append(sends, send{b.sess, t, frames})
					}
				}
			}
		}
	})
	if heard == nil {
		heard = map[raTarget]bool{}
	}
	for _, s := range sends {
		e.sendRAs(s.sess, s.target.ofport, s.frames)
		heard[s.target] = true
	}
	return heard
}

// kickRAs asks advertise to send at once to the ports of dpids that have not heard the
// advertisements of their network yet.
func (e *Engine) kickRAs(dpids map[uint64]bool) {
	if len(dpids) == 0 {
		return
	}
	e.mu.Lock()
	for d := range dpids {
		e.raPending[d] = true
	}
	e.mu.Unlock()
	select {
	case e.raKick <- struct{}{}:
	default:
	}
}

// raBridges returns the br-int bridges a pass may have given ports that have not heard
// router advertisements: those whose ports changed (dirty), of the hosts it recomputed and
// of the hosts with parts recomputed; every registered one when all.
func raBridges(v *topology.View, all bool, dirty map[uint64]bool, hosts []string, parts map[string]map[string]bool) map[uint64]bool {
	out := map[uint64]bool{}
	for dpid := range dirty {
		out[dpid] = true
	}
	add := func(h string) {
		if id, ok := v.Host(h).BridgeID(topology.BrInt); ok {
			out[id] = true
		}
	}
	if all {
		for _, h := range v.HostNames() {
			add(h)
		}
	}
	for _, h := range hosts {
		add(h)
	}
	for h := range parts {
		add(h)
	}
	return out
}
