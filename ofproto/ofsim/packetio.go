// Packet-outs received and packet-ins sent.

package ofsim

import (
	"encoding/binary"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
)

func (s *Switch) handlePacketOut(sess *session, h ofproto.Header, msg []byte) error {
	if len(msg) < 24 {
		return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
	}
	inPort := binary.BigEndian.Uint32(msg[12:])
	alen := int(binary.BigEndian.Uint16(msg[16:]))
	if 24+alen > len(msg) {
		return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
	}
	acts, err := decodeActions(msg[24 : 24+alen])
	if err != nil {
		return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
	}
	s.mu.Lock()
	s.packetOuts = append(s.packetOuts, PacketOut{InPort: inPort, Actions: acts, Data: slices.Clone(msg[24+alen:])})
	s.mu.Unlock()
	return nil
}

// decodeActions decodes an action list by wrapping it in a flow-mod.
func decodeActions(acts []byte) ([]ofproto.Action, error) {
	if len(acts) == 0 {
		return nil, nil
	}
	b := ofproto.AppendFlowMod(nil, 0, ofproto.FlowAdd, &ofproto.Flow{}, 0)
	b = append(b, 0, 4) // OFPIT_APPLY_ACTIONS
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(acts)))
	b = append(b, 0, 0, 0, 0)
	b = append(b, acts...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	fm, err := ofproto.DecodeFlowMod(b)
	if err != nil {
		return nil, err
	}
	return fm.Flow.Actions, nil
}

// TakePacketOuts returns and forgets the packet-outs received so far.
func (s *Switch) TakePacketOuts() []PacketOut {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.packetOuts
	s.packetOuts = nil
	return p
}

// SendPacketIn sends a packet-in as if table/cookie had sent data from inPort to the
// controller: to the master and equal connections, never to a slave (OVS's default
// asynchronous configuration).
func (s *Switch) SendPacketIn(table uint8, cookie uint64, inPort uint32, data []byte) error {
	return s.writeTo(func(c *session) bool { return c.role != roleSlave }, appendPacketIn(nil, table, cookie, inPort, data))
}

func appendPacketIn(b []byte, table uint8, cookie uint64, inPort uint32, data []byte) []byte {
	start := len(b)
	b = ofproto.Begin(b, ofproto.TypePacketIn, 0)
	b = binary.BigEndian.AppendUint32(b, ofproto.NoBuffer)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	b = append(b, 1, table) // reason OFPR_ACTION
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = append(b, 0, 1, 0, 12, 0x80, 0, 0, 4) // OXM match with in_port
	b = binary.BigEndian.AppendUint32(b, inPort)
	b = append(b, 0, 0, 0, 0) // match padding
	b = append(b, 0, 0)       // pad
	b = append(b, data...)
	return ofproto.Finish(b, start)
}
