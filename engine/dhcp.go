// DHCPv4 answered from the view on the asking port's own switch.

package engine

import (
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
// only ever be answered for its own port.
func (e *Engine) onDHCP(pi *controller.PacketIn) {
	m, err := dhcp4.Parse(pi.Data)
	if err != nil {
		e.countDHCP("malformed")
		e.log.Debug("DHCP packet-in not understood", zap.Uint64("dpid", pi.Session.DPID()), zap.Error(err))
		return
	}
	name := e.portName(pi.Session.DPID(), pi.InPort)
	var frame *dhcp4.Frame
	outcome := apps.DHCPNotPort
	e.ReadView(func(v *topology.View) {
		if v == nil || name == "" {
			return
		}
		host, br, ok := v.HostOfDPID(pi.Session.DPID())
		if !ok || br != topology.BrInt {
			return
		}
		for _, p := range v.PortsBoundTo(host) {
			if apps.OVSPortName(p.Port) == name {
				frame, outcome = apps.AnswerDHCP(v, e.cfg.DHCP, p, m)
				return
			}
		}
	})
	e.countDHCP(outcome)
	if frame == nil {
		if outcome != apps.DHCPReleased && outcome != apps.DHCPOtherSrv {
			e.log.Debug("DHCP not answered", zap.Uint64("dpid", pi.Session.DPID()), zap.String("port", name),
				zap.Stringer("type", m.Type), zap.Stringer("chaddr", m.CHAddr), zap.String("why", outcome))
		}
		if outcome == apps.DHCPDeclined {
			e.log.Warn("DHCP client declined its address: another device on its network holds it",
				zap.String("port", name), zap.Stringer("chaddr", m.CHAddr), zap.Stringer("address", m.RequestedIP))
		}
		return
	}
	data := frame.AppendFrame(make([]byte, 0, 600))
	// PacketOutPort never waits: a full queue drops the reply, and the client retries.
	if err := pi.Session.PacketOutPort(ofproto.PortController, pi.InPort, data); err != nil {
		e.log.Debug("DHCP reply not sent", zap.Error(err))
	}
}

// portName returns the name of OpenFlow port no of switch dpid, "" when unknown.
func (e *Engine) portName(dpid uint64, no uint32) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.bridges[dpid]
	if b == nil {
		return ""
	}
	for name, n := range b.ports {
		if n == no {
			return name
		}
	}
	return ""
}

func (e *Engine) countDHCP(outcome string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stats.DHCP == nil {
		e.stats.DHCP = map[string]uint64{}
	}
	e.stats.DHCP[outcome]++
}
