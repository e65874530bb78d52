package ofsim

import (
	"encoding/binary"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Meter errors (OFPET_METER_MOD_FAILED), as Open vSwitch sends them.
const (
	errMeterModFailed uint16 = 12
	codeMeterExists   uint16 = 1 // OFPMMFC_METER_EXISTS
	codeInvalidMeter  uint16 = 2 // OFPMMFC_INVALID_METER
	codeUnknownMeter  uint16 = 3 // OFPMMFC_UNKNOWN_METER
)

// handleMeterMod keeps the set of meters: flows may only reference existing ones. Adding an
// existing meter and modifying or deleting a missing one are refused as OVS refuses them.
func (s *Switch) handleMeterMod(sess *session, h ofproto.Header, msg []byte) error {
	if len(msg) < 16 {
		return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
	}
	cmd := ofproto.MeterModCommand(binary.BigEndian.Uint16(msg[8:]))
	id := binary.BigEndian.Uint32(msg[12:])
	s.mu.Lock()
	_, exists := s.meters[id]
	var code uint16
	switch {
	case cmd == ofproto.MeterAdd && exists:
		code = codeMeterExists
	case (cmd == ofproto.MeterModify || cmd == ofproto.MeterDelete) && !exists:
		code = codeUnknownMeter
	case cmd == ofproto.MeterDelete:
		delete(s.meters, id)
	case cmd == ofproto.MeterAdd || cmd == ofproto.MeterModify:
		s.meters[id] = append([]byte(nil), msg[10:]...)
	default:
		code = 0xffff
	}
	s.mu.Unlock()
	switch code {
	case 0:
		return nil
	case 0xffff:
		return s.sendError(sess, h.Xid, errMeterModFailed, 0, msg) // OFPMMFC_UNKNOWN
	}
	return s.sendError(sess, h.Xid, errMeterModFailed, code, msg)
}

// Meters returns the IDs of the installed meters.
func (s *Switch) Meters() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint32, 0, len(s.meters))
	for id := range s.meters {
		out = append(out, id)
	}
	return out
}

// replyMeterConfig answers OFPMP_METER_CONFIG for meter id (ofproto.MeterAll: all of them,
// by ID), refusing an unknown single meter as Open vSwitch does.
func (s *Switch) replyMeterConfig(sess *session, h ofproto.Header, id uint32, msg []byte) error {
	s.mu.Lock()
	var ids []uint32
	for m := range s.meters {
		if id == ofproto.MeterAll || m == id {
			ids = append(ids, m)
		}
	}
	slices.Sort(ids)
	b := ofproto.Begin(nil, ofproto.TypeMultipartReply, h.Xid)
	b = binary.BigEndian.AppendUint16(b, ofproto.MultipartMeterConfig)
	b = append(b, 0, 0, 0, 0, 0, 0)
	for _, m := range ids {
		conf := s.meters[m] // flags, meter_id and bands, as the meter-mod gave them
		b = binary.BigEndian.AppendUint16(b, uint16(2+len(conf)))
		b = append(b, conf...)
	}
	s.mu.Unlock()
	if id != ofproto.MeterAll && len(ids) == 0 {
		return s.sendError(sess, h.Xid, errMeterModFailed, codeUnknownMeter, msg)
	}
	return sess.write(ofproto.Finish(b, 0))
}
