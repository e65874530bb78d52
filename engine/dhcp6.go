// DHCPv6 answered from the view on the asking port's own switch.

package engine

import (
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/dhcp6"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// onDHCPv6 answers a DHCPv6 client message that DHCP_IPV6 sent up, with a packet-out on the
// port it came in by, as onDHCP answers DHCPv4: on the switch's reader goroutine, from the
// view alone, for the port plugged as the packet's in_port; a message from a port the view
// does not know yet is held until a pass has applied it.
func (e *Engine) onDHCPv6(pi *controller.PacketIn) {
	m, err := dhcp6.Parse(pi.Data)
	if err != nil {
		e.countDHCPv6(dhcpMalformed)
		e.log.Debug("DHCPv6 packet-in not understood", zap.Uint64("dpid", pi.Session.DPID()), zap.Error(err))
		return
	}
	if e.answerDHCPv6(pi.Session, pi.InPort, m) {
		return
	}
	if !e.heldDHCPv6.hold(&e.mu, pi.Session, pi.InPort, m) {
		e.countDHCPv6(apps.DHCPv6NotPort)
	}
}

// answerHeldDHCPv6 answers the held messages whose port is known now and drops the stale
// ones (the client retransmits).
func (e *Engine) answerHeldDHCPv6() {
	for range e.heldDHCPv6.retry(&e.mu, e.answerDHCPv6) {
		e.countDHCPv6(apps.DHCPv6NotPort)
	}
}

// answerDHCPv6 answers m, received on sess's port inPort, if the view knows that port. It
// reports whether it did (an answer that is due but could not be sent counts as given:
// the client retransmits).
func (e *Engine) answerDHCPv6(sess *controller.Session, inPort uint32, m *dhcp6.Message) bool {
	var frame *dhcp6.Frame
	outcome := ""
	name := e.withBoundPort(sess, inPort, func(v *topology.View, p *topology.PortInfo) {
		frame, outcome = apps.AnswerDHCPv6(v, e.cfg.DHCP, p, m)
	})
	if outcome == "" {
		return false
	}
	e.countDHCPv6(outcome)
	if outcome == apps.DHCPv6Declined {
		e.log.Warn("DHCPv6 client declined its address: another device on its network holds it",
			zap.String("port", name), zap.Stringer("mac", m.SrcMAC), zap.Stringers("addresses", m.Addrs()))
	}
	if frame == nil {
		e.log.Debug("DHCPv6 not answered", zap.Uint64("dpid", sess.DPID()), zap.String("port", name),
			zap.Stringer("type", m.Type), zap.Stringer("mac", m.SrcMAC), zap.String("why", outcome))
		return true
	}
	data := frame.AppendFrame(make([]byte, 0, 300))
	// PacketOutPort never waits: a full queue drops the reply, and the client retries.
	if err := sess.PacketOutPort(ofproto.PortController, inPort, data); err != nil {
		e.log.Debug("DHCPv6 reply not sent", zap.Error(err))
	}
	return true
}

// dhcp6Counts counts DHCPv6 messages by outcome (apps.DHCPv6Outcomes, then malformed ones),
// without a lock: every switch's reader counts.
type dhcp6Counts [len(apps.DHCPv6Outcomes) + 1]atomic.Uint64

func (e *Engine) countDHCPv6(outcome string) {
	countOutcome(e.dhcpCount6[:], apps.DHCPv6Outcomes[:], outcome)
}

// dhcp6Stats returns the DHCPv6 counts by outcome, those that happened.
func (e *Engine) dhcp6Stats() map[string]uint64 {
	return outcomeStats(e.dhcpCount6[:], apps.DHCPv6Outcomes[:])
}
