// IPv6 neighbour solicitations answered from the view.

package engine

import (
	"net"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// onND answers a neighbour solicitation for a known address with a neighbour advertisement
// on the asking port, as onARP answers ARP. It runs on the switch's reader goroutine: no
// database, only the current view. A solicitation the view cannot answer (a port's
// duplicate address detection of its own address, or an address gone since the flow was
// computed) is counted and not answered: it reached no other port.
func (e *Engine) onND(pi *controller.PacketIn) {
	ns, err := ofproto.ParseND(pi.Data)
	if err != nil {
		return
	}
	var mac net.HardwareAddr
	var flags ofproto.NAFlags
	known := false
	e.ReadView(func(v *topology.View) {
		if v == nil {
			return
		}
		if host, _, ok := v.HostOfDPID(pi.Session.DPID()); ok {
			mac, flags, known = apps.ResolveND(v, host, ns)
		}
	})
	e.mu.Lock()
	if known {
		e.stats.NDAnswered++
	} else {
		e.stats.NDUnanswered++
	}
	e.mu.Unlock()
	if !known {
		return
	}
	// PacketOutPort never waits: a full queue drops the advertisement, and the asker retries.
	if err := pi.Session.PacketOutPort(ofproto.PortController, pi.InPort, ofproto.NeighborAdvert(ns, mac, flags)); err != nil {
		e.log.Debug("neighbour advertisement not sent", zap.Error(err))
	}
}
