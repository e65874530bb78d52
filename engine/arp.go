// ARP answered from the view, requests held until their address is known, table misses.

package engine

import (
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// onARP answers an ARP request for a known address with a packet-out on the asking port.
// It runs on the switch's reader goroutine: no database, only the current view.
func (e *Engine) onARP(pi *controller.PacketIn) {
	req, err := ofproto.ParseARPRequest(pi.Data)
	if err != nil {
		return
	}
	if e.answerARP(pi.Session, pi.InPort, req) {
		return
	}
	// Not known (yet): a router asking for a port the API just created can be faster than
	// the change log. Hold the request until the next pass has applied the newest changes.
	if !e.heldARP.hold(&e.mu, pi.Session, pi.InPort, req) {
		e.mu.Lock()
		e.stats.ARPUnknown++
		e.mu.Unlock()
	}
	// No poke: the change that makes the address known wakes the loop, which answers then.
}

// answerHeldARP answers the held requests the view knows now and drops the stale ones.
func (e *Engine) answerHeldARP() {
	if stale := e.heldARP.retry(&e.mu, e.answerARP); stale > 0 {
		e.mu.Lock()
		e.stats.ARPUnknown += uint64(stale)
		e.mu.Unlock()
	}
}

// answerARP replies to req on sess's port inPort if the view knows the address. It reports
// whether it knew (a reply that could not be sent counts as answered: the asker retries).
func (e *Engine) answerARP(sess *controller.Session, inPort uint32, req ofproto.ARPRequest) bool {
	var mac net.HardwareAddr
	known := false
	e.ReadView(func(v *topology.View) {
		if v == nil {
			return
		}
		if host, _, ok := v.HostOfDPID(sess.DPID()); ok {
			mac, known = apps.ResolveARP(v, host, req)
		}
	})
	if !known {
		return false
	}
	// PacketOutPort never waits (no timer per reply): a full queue drops the reply.
	if err := sess.PacketOutPort(ofproto.PortController, inPort, ofproto.ARPReply(req, mac)); err != nil {
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

const (
	maxHeldARP = 4096            // requests held at most, beyond that they count as unknown
	heldARPFor = 2 * time.Second // then a request counts as unknown (the asker retries after 1 s)
)
