// DHCPv4 answered from the view on the asking port's own switch.

package engine

import (
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// onDHCP answers a DHCP client message that DHCP_IPV4 sent up, with a packet-out on the
// port it came in by. It runs on the switch's reader goroutine: no database, only the view.
// The port is the one of the switch's host plugged as the packet's in_port, so a VM can
// only ever be answered for its own port. A message from a port the controller does not
// know yet (a VM booting as it is plugged: its port-status, or the API's change, still on
// the way) is held until a pass has applied them, as an ARP request is.
func (e *Engine) onDHCP(pi *controller.PacketIn) {
	m, err := dhcp4.Parse(pi.Data)
	if err != nil {
		e.countDHCP(dhcpMalformed)
		e.log.Debug("DHCP packet-in not understood", zap.Uint64("dpid", pi.Session.DPID()), zap.Error(err))
		return
	}
	if e.answerDHCP(pi.Session, pi.InPort, m) {
		return
	}
	if !e.heldDHCP.hold(&e.mu, pi.Session, pi.InPort, m) {
		e.countDHCP(apps.DHCPNotPort)
	}
}

// answerHeldDHCP answers the held messages whose port is known now and drops the stale
// ones (the client retransmits).
func (e *Engine) answerHeldDHCP() {
	for range e.heldDHCP.retry(&e.mu, e.answerDHCP) {
		e.countDHCP(apps.DHCPNotPort)
	}
}

// answerDHCP answers m, received on sess's port inPort, if the view knows that port. It
// reports whether it did (an answer that is due but could not be sent counts as given:
// the client retransmits).
func (e *Engine) answerDHCP(sess *controller.Session, inPort uint32, m *dhcp4.Message) bool {
	var frame *dhcp4.Frame
	outcome := ""
	name := e.withBoundPort(sess, inPort, func(v *topology.View, p *topology.PortInfo) {
		frame, outcome = apps.AnswerDHCP(v, e.cfg.DHCP, p, m)
	})
	if outcome == "" {
		return false
	}
	e.countDHCP(outcome)
	if frame == nil {
		if outcome != apps.DHCPReleased && outcome != apps.DHCPOtherSrv {
			e.log.Debug("DHCP not answered", zap.Uint64("dpid", sess.DPID()), zap.String("port", name),
				zap.Stringer("type", m.Type), zap.Stringer("chaddr", m.CHAddr), zap.String("why", outcome))
		}
		if outcome == apps.DHCPDeclined {
			e.log.Warn("DHCP client declined its address: another device on its network holds it",
				zap.String("port", name), zap.Stringer("chaddr", m.CHAddr), zap.Stringer("address", m.RequestedIP))
		}
		return true
	}
	data := frame.AppendFrame(make([]byte, 0, 600))
	// PacketOutPort never waits: a full queue drops the reply, and the client retries.
	if err := sess.PacketOutPort(ofproto.PortController, inPort, data); err != nil {
		e.log.Debug("DHCP reply not sent", zap.Error(err))
	}
	return true
}

const (
	maxHeldDHCP = 4096            // messages held at most, beyond that they count as not-port
	heldDHCPFor = 2 * time.Second // then a message counts as not-port (dhclient retransmits after 1-10 s)
)

// withBoundPort calls f, under the view's read lock, with the view and the port bound to
// sess's host that is plugged into sess's br-int as OpenFlow port inPort, if the view knows
// one. It returns the OpenFlow port's name ("" when the switch does not know it).
func (e *Engine) withBoundPort(sess *controller.Session, inPort uint32, f func(*topology.View, *topology.PortInfo)) string {
	name := e.portName(sess.DPID(), inPort)
	e.ReadView(func(v *topology.View) {
		if v == nil || name == "" {
			return
		}
		host, br, ok := v.HostOfDPID(sess.DPID())
		if !ok || br != topology.BrInt {
			return
		}
		for _, p := range v.PortsBoundTo(host) {
			if apps.HasOVSPortName(p.Port, name) {
				f(v, p)
				return
			}
		}
	})
	return name
}

// portName returns the name of OpenFlow port no of switch dpid, "" when unknown.
func (e *Engine) portName(dpid uint64, no uint32) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b := e.bridges[dpid]; b != nil {
		return b.names[no]
	}
	return ""
}

// dhcpCounts counts DHCP messages by outcome (apps.DHCPOutcomes, then malformed ones),
// without a lock: every switch's reader counts.
type dhcpCounts [len(apps.DHCPOutcomes) + 1]atomic.Uint64

func (e *Engine) countDHCP(outcome string) {
	countOutcome(e.dhcpCounts[:], apps.DHCPOutcomes[:], outcome)
}

// dhcpStats returns the counts by outcome, those that happened.
func (e *Engine) dhcpStats() map[string]uint64 {
	return outcomeStats(e.dhcpCounts[:], apps.DHCPOutcomes[:])
}

// countOutcome counts outcome in counts, one per name of names and a last one for the
// malformed messages (and any name not in names).
func countOutcome(counts []atomic.Uint64, names []string, outcome string) {
	i := slices.Index(names, outcome)
	if i < 0 {
		i = len(names)
	}
	counts[i].Add(1)
}

// outcomeStats returns counts by name (dhcpMalformed for the last), those that happened.
func outcomeStats(counts []atomic.Uint64, names []string) map[string]uint64 {
	out := map[string]uint64{}
	for i := range counts {
		name := dhcpMalformed
		if i < len(names) {
			name = names[i]
		}
		if n := counts[i].Load(); n > 0 {
			out[name] = n
		}
	}
	return out
}

// dhcpMalformed counts packet-ins of DHCP_IPV4 (DHCP_IPV6) that are no client's DHCP
// (DHCPv6) message.
const dhcpMalformed = "malformed"
