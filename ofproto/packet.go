package ofproto

import (
	"encoding/binary"
	"fmt"
)

// AppendActions appends the wire encoding of an action list (as in a packet-out or an
// apply-actions instruction, without the instruction header).
func AppendActions(b []byte, acts []Action) []byte {
	for _, a := range acts {
		b = a.appendTo(b)
	}
	return b
}

// DecodeActions decodes an action list; unknown actions become RawAction. The actions do
// not alias b.
func DecodeActions(b []byte) ([]Action, error) {
	own := make([]byte, len(b))
	copy(own, b)
	return decodeActions(own)
}

// AppendPacketOut appends an OFPT_PACKET_OUT sending data (no switch buffer) as if received
// on inPort (PortController when it comes from the controller) through actions.
func AppendPacketOut(b []byte, xid, inPort uint32, actions []Action, data []byte) []byte {
	start := len(b)
	b = appendHeader(b, TypePacketOut, xid)
	b = appendU32(b, NoBuffer)
	b = appendU32(b, inPort)
	alen := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // actions_len, pad[6]
	b = AppendActions(b, actions)
	binary.BigEndian.PutUint16(b[alen:], uint16(len(b)-alen-8))
	b = append(b, data...)
	return finish(b, start)
}

// PacketOut is a decoded OFPT_PACKET_OUT.
type PacketOut struct {
	Xid      uint32
	BufferID uint32
	InPort   uint32
	Actions  []Action
	Data     []byte
}

// DecodePacketOut decodes an OFPT_PACKET_OUT (header included); the result does not alias
// msg.
func DecodePacketOut(msg []byte) (PacketOut, error) {
	h, err := checkMsg(msg, TypePacketOut, 24)
	if err != nil {
		return PacketOut{}, fmt.Errorf("packet-out: %w", err)
	}
	alen := int(binary.BigEndian.Uint16(msg[16:]))
	if 24+alen > len(msg) {
		return PacketOut{}, fmt.Errorf("packet-out: actions length %d of %d: %w", alen, len(msg)-24, ErrBadLength)
	}
	acts, err := DecodeActions(msg[24 : 24+alen])
	if err != nil {
		return PacketOut{}, fmt.Errorf("packet-out: %w", err)
	}
	return PacketOut{
		Xid:      h.Xid,
		BufferID: binary.BigEndian.Uint32(msg[8:]),
		InPort:   binary.BigEndian.Uint32(msg[12:]),
		Actions:  acts,
		Data:     append([]byte(nil), msg[24+alen:]...),
	}, nil
}

// Packet-in reasons (ofp_packet_in_reason).
const (
	ReasonNoMatch    uint8 = 0
	ReasonAction     uint8 = 1
	ReasonInvalidTTL uint8 = 2
)

// PacketIn is a decoded OFPT_PACKET_IN.
type PacketIn struct {
	Xid      uint32
	BufferID uint32
	TotalLen uint16
	Reason   uint8
	Table    uint8
	Cookie   uint64
	Match    Match // pipeline fields: in_port, metadata, tunnel, registers
	Data     []byte
}

// InPort returns the in_port of the packet-in's match (0 if absent).
func (p *PacketIn) InPort() uint32 {
	if f, ok := p.Match.Get(ClassBasic, OXMInPort); ok && len(f.Value) == 4 {
		return binary.BigEndian.Uint32(f.Value)
	}
	return 0
}

// AppendPacketIn appends an OFPT_PACKET_IN (for the fake switch).
func AppendPacketIn(b []byte, p *PacketIn) []byte {
	start := len(b)
	b = appendHeader(b, TypePacketIn, p.Xid)
	b = appendU32(b, p.BufferID)
	b = appendU16(b, p.TotalLen)
	b = append(b, p.Reason, p.Table)
	b = appendU64(b, p.Cookie)
	b = appendMatch(b, p.Match)
	b = append(b, 0, 0)
	b = append(b, p.Data...)
	return finish(b, start)
}

// DecodePacketIn decodes an OFPT_PACKET_IN (header included); the result does not alias msg.
func DecodePacketIn(msg []byte) (PacketIn, error) {
	h, err := checkMsg(msg, TypePacketIn, 32)
	if err != nil {
		return PacketIn{}, fmt.Errorf("packet-in: %w", err)
	}
	own := append([]byte(nil), msg...)
	p := PacketIn{
		Xid:      h.Xid,
		BufferID: binary.BigEndian.Uint32(own[8:]),
		TotalLen: binary.BigEndian.Uint16(own[12:]),
		Reason:   own[14],
		Table:    own[15],
		Cookie:   binary.BigEndian.Uint64(own[16:]),
	}
	rest, err := decodeMatch(own[24:], &p.Match)
	if err != nil {
		return PacketIn{}, fmt.Errorf("packet-in: %w", err)
	}
	if len(rest) < 2 {
		return PacketIn{}, fmt.Errorf("packet-in: no pad after match: %w", ErrTruncated)
	}
	p.Data = rest[2:]
	return p, nil
}

// ErrorMsg is a decoded OFPT_ERROR.
type ErrorMsg struct {
	Xid  uint32 // the xid of the request that failed
	Type uint16
	Code uint16
	Data []byte // normally the start of the failed request
}

// Error types (ofp_error_type) dvrflow reports by name.
const (
	ErrTypeHelloFailed   uint16 = 0
	ErrTypeBadRequest    uint16 = 1
	ErrTypeBadAction     uint16 = 2
	ErrTypeBadInstr      uint16 = 3
	ErrTypeBadMatch      uint16 = 4
	ErrTypeFlowModFailed uint16 = 5
	ErrTypeGroupModFail  uint16 = 6
	ErrTypeRoleRequest   uint16 = 11
	ErrTypeMeterModFail  uint16 = 12
	ErrTypeBundleFailed  uint16 = 17 // ONF bundles (OFPET14_BUNDLE_FAILED)
)

var errTypeNames = map[uint16]string{
	0: "HELLO_FAILED", 1: "BAD_REQUEST", 2: "BAD_ACTION", 3: "BAD_INSTRUCTION", 4: "BAD_MATCH",
	5: "FLOW_MOD_FAILED", 6: "GROUP_MOD_FAILED", 7: "PORT_MOD_FAILED", 8: "TABLE_MOD_FAILED",
	9: "QUEUE_OP_FAILED", 10: "SWITCH_CONFIG_FAILED", 11: "ROLE_REQUEST_FAILED",
	12: "METER_MOD_FAILED", 13: "TABLE_FEATURES_FAILED", 17: "BUNDLE_FAILED", 0xffff: "EXPERIMENTER",
}

// Error implements error: "FLOW_MOD_FAILED code 1 (xid 7)".
func (e ErrorMsg) Error() string {
	name, ok := errTypeNames[e.Type]
	if !ok {
		name = "type " + itoa(uint64(e.Type))
	}
	return "OFPT_ERROR " + name + " code " + itoa(uint64(e.Code)) + " (xid " + itoa(uint64(e.Xid)) + ")"
}

// DecodeError decodes an OFPT_ERROR (header included); the result does not alias msg.
func DecodeError(msg []byte) (ErrorMsg, error) {
	h, err := ParseHeader(msg)
	if err != nil {
		return ErrorMsg{}, fmt.Errorf("error message: %w", err)
	}
	if h.Type != TypeError || int(h.Length) != len(msg) || len(msg) < 12 {
		return ErrorMsg{}, fmt.Errorf("error message: type %s length %d of %d: %w", h.Type, h.Length, len(msg), ErrMalformed)
	}
	return ErrorMsg{
		Xid:  h.Xid,
		Type: binary.BigEndian.Uint16(msg[8:]),
		Code: binary.BigEndian.Uint16(msg[10:]),
		Data: append([]byte(nil), msg[12:]...),
	}, nil
}

// checkMsg checks version, type and length of a whole message.
func checkMsg(msg []byte, t MsgType, minLen int) (Header, error) {
	h, err := ParseHeader(msg)
	if err != nil {
		return h, err
	}
	if h.Version != Version || h.Type != t {
		return h, fmt.Errorf("got version %d type %s: %w", h.Version, h.Type, ErrMalformed)
	}
	if int(h.Length) != len(msg) || len(msg) < minLen {
		return h, fmt.Errorf("header length %d, message %d bytes: %w", h.Length, len(msg), ErrBadLength)
	}
	return h, nil
}
