// Switch events: connects, disconnects and port changes mark bridges for the next pass.

package engine

import (
	"maps"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
)

func (e *Engine) onEvent(ev controller.Event) {
	e.mu.Lock()
	var dpid uint64
	whole := true // every part of the bridge, not only apps.PortParts
	switch ev := ev.(type) {
	case controller.SwitchConnected:
		b := &bridge{dpid: ev.DPID, sess: ev.Session, ports: map[string]uint32{}}
		for _, p := range ev.Ports {
			b.ports[p.Name] = p.No
		}
		b.names = namesOf(b.ports)
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
		b.ports = maps.Clone(b.ports) // pushes in flight hold the old map
		if ev.OldName != "" {
			delete(b.ports, ev.OldName)
		}
		if ev.Reason == controller.PortDeleted {
			delete(b.ports, ev.Port.Name)
		} else {
			b.ports[ev.Port.Name] = ev.Port.No
		}
		b.names = namesOf(b.ports)
		dpid = ev.DPID
		whole = apps.FixedPort(ev.Port.Name) || apps.FixedPort(ev.OldName)
	}
	if dpid != 0 {
		e.dirtyDPIDs[dpid] = e.dirtyDPIDs[dpid] || whole
	}
	e.mu.Unlock()
	if dpid == 0 {
		return
	}
	// The control loop computes and pushes: one goroutine hands out desired sets, so a set
	// computed from an older view can never land after a newer one.
	e.poke()
}

// namesOf returns the port names of ports by number.
func namesOf(ports map[string]uint32) map[uint32]string {
	names := make(map[uint32]string, len(ports))
	for name, no := range ports {
		names[no] = name
	}
	return names
}
