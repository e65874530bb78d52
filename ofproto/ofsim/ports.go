// The switch's ports: added, deleted and reported with OFPT_PORT_STATUS.

package ofsim

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
)

func appendPort(b []byte, p Port) []byte {
	b = binary.BigEndian.AppendUint32(b, p.No)
	b = append(b, 0, 0, 0, 0)
	mac := make([]byte, 6)
	copy(mac, p.HWAddr)
	b = append(b, mac...)
	b = append(b, 0, 0)
	var name [16]byte
	copy(name[:15], p.Name)
	b = append(b, name[:]...)
	b = binary.BigEndian.AppendUint32(b, 0) // config
	b = binary.BigEndian.AppendUint32(b, 4) // state: live
	for range 4 {
		b = binary.BigEndian.AppendUint32(b, 0) // curr, advertised, supported, peer
	}
	b = binary.BigEndian.AppendUint32(b, 10_000_000) // curr speed, kbps
	b = binary.BigEndian.AppendUint32(b, 10_000_000) // max speed
	return b
}

// AddPort adds (or replaces) a port and tells the controller with a port status.
func (s *Switch) AddPort(p Port) error {
	s.mu.Lock()
	_, had := s.ports[p.No]
	s.ports[p.No] = p
	connected := len(s.sessions) > 0
	s.mu.Unlock()
	reason := byte(0) // OFPPR_ADD
	if had {
		reason = 2 // OFPPR_MODIFY (a rename too, as OVS reports it)
	}
	if !connected {
		return nil
	}
	return s.portStatus(reason, p)
}

// DelPort removes a port and tells the controller.
func (s *Switch) DelPort(no uint32) error {
	s.mu.Lock()
	p, ok := s.ports[no]
	delete(s.ports, no)
	connected := len(s.sessions) > 0
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("ofsim: no port %d", no)
	}
	if !connected {
		return nil
	}
	return s.portStatus(1, p) // OFPPR_DELETE
}

// portStatus tells every controller connection, slaves too (OVS's default asynchronous
// configuration).
func (s *Switch) portStatus(reason byte, p Port) error {
	b := ofproto.Begin(nil, ofproto.TypePortStatus, 0)
	b = append(b, reason, 0, 0, 0, 0, 0, 0, 0)
	b = appendPort(b, p)
	return s.writeTo(func(*session) bool { return true }, ofproto.Finish(b, 0))
}

// Ports returns the switch's ports, ordered by number.
func (s *Switch) Ports() []Port {
	s.mu.Lock()
	out := make([]Port, 0, len(s.ports))
	for _, p := range s.ports {
		out = append(out, p)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Port) int { return cmp.Compare(a.No, b.No) })
	return out
}
