package ofproto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The packet-in hot path: ReadPacketIn reads an OFPT_PACKET_IN in place, without copying
// the frame or decoding the match into a Match, and AppendPacketOutPort encodes the
// packet-out that answers it with a single output action. Both allocate nothing of their
// own (the caller owns the buffers).

// ErrNoInPort is returned by ReadPacketIn for a packet-in whose match lacks OXM_OF_IN_PORT,
// which OpenFlow 1.3 requires in every packet-in.
var ErrNoInPort = errors.New("packet-in match has no in_port")

// PacketInRef is an OFPT_PACKET_IN read in place by ReadPacketIn: Data aliases the message.
type PacketInRef struct {
	Xid      uint32
	BufferID uint32
	TotalLen uint16
	Reason   uint8
	Table    uint8
	Cookie   uint64
	InPort   uint32 // OXM_OF_IN_PORT of the match
	Data     []byte // the frame (or its first miss_send_len bytes), aliasing the message
}

// packetInFixed is the size of ofp_packet_in up to its match: header, buffer_id, total_len,
// reason, table_id, cookie.
const packetInFixed = 24

// ReadPacketIn reads an OFPT_PACKET_IN (header included, exactly one message) into p. The
// message's version, type and length must agree with msg; the match must be an OXM match
// whose length fits the message, whose TLVs fit the match, that carries an unmasked 4-byte
// in_port, and that is followed by its padding and the 2 pad bytes. On error p is left
// unchanged.
func ReadPacketIn(msg []byte, p *PacketInRef) error {
	if _, err := checkMsg(msg, TypePacketIn, packetInFixed+8+2); err != nil {
		return fmt.Errorf("packet-in: %w", err)
	}
	m := msg[packetInFixed:]
	if t := binary.BigEndian.Uint16(m); t != 1 {
		return fmt.Errorf("packet-in: match type %d (want OXM): %w", t, ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(m[2:]))
	padded := (n + 7) &^ 7
	if n < 4 || padded+2 > len(m) {
		return fmt.Errorf("packet-in: match length %d of %d bytes: %w", n, len(m), ErrBadLength)
	}
	inPort, found := uint32(0), false
	for oxms := m[4:n]; len(oxms) > 0; {
		if len(oxms) < 4 {
			return fmt.Errorf("packet-in: OXM header of %d bytes: %w", len(oxms), ErrTruncated)
		}
		l := 4 + int(oxms[3])
		if l > len(oxms) {
			return fmt.Errorf("packet-in: OXM of %d bytes in %d: %w", l, len(oxms), ErrBadLength)
		}
		class, field, hasMask := binary.BigEndian.Uint16(oxms), oxms[2]>>1, oxms[2]&1 != 0
		if class == uint16(ClassBasic) && field == uint8(OXMInPort) && !found { // the first, as Match.Get
			if hasMask || l != 8 {
				return fmt.Errorf("packet-in: in_port OXM of %d bytes (mask %t): %w", l-4, hasMask, ErrMalformed)
			}
			inPort, found = binary.BigEndian.Uint32(oxms[4:]), true
		}
		oxms = oxms[l:]
	}
	if !found {
		return fmt.Errorf("packet-in: %w", ErrNoInPort)
	}
	*p = PacketInRef{
		Xid:      binary.BigEndian.Uint32(msg[4:]),
		BufferID: binary.BigEndian.Uint32(msg[8:]),
		TotalLen: binary.BigEndian.Uint16(msg[12:]),
		Reason:   msg[14],
		Table:    msg[15],
		Cookie:   binary.BigEndian.Uint64(msg[16:]),
		InPort:   inPort,
		Data:     m[padded+2:],
	}
	return nil
}

// packetOutPortLen is the size of a packet-out with one output action, before its data:
// header, buffer_id, in_port, actions_len, pad[6], ofp_action_output.
const packetOutPortLen = 24 + 16

// MaxPacketOutPortData is the largest frame AppendPacketOutPort can carry.
const MaxPacketOutPortData = 0xffff - packetOutPortLen

// AppendPacketOutPort appends an OFPT_PACKET_OUT sending data (no switch buffer), as if
// received on inPort, to outPort: the same bytes as AppendPacketOut with the single action
// Output{Port: outPort}, written directly. Data that would not fit a message's 16-bit length
// is an error and leaves b unchanged.
func AppendPacketOutPort(b []byte, xid, inPort, outPort uint32, data []byte) ([]byte, error) {
	if len(data) > MaxPacketOutPortData {
		return b, fmt.Errorf("packet-out of %d data bytes (at most %d): %w", len(data), MaxPacketOutPortData, ErrBadLength)
	}
	b = append(b, Version, byte(TypePacketOut))
	b = appendU16(b, uint16(packetOutPortLen+len(data)))
	b = appendU32(b, xid)
	b = appendU32(b, NoBuffer)
	b = appendU32(b, inPort)
	b = append(b, 0, 16, 0, 0, 0, 0, 0, 0) // actions_len 16, pad[6]
	b = appendU16(b, actOutput)
	b = appendU16(b, 16)
	b = appendU32(b, outPort)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // max_len 0, pad[6]
	return append(b, data...), nil
}
