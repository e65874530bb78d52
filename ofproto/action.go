package ofproto

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
)

// Action is one OpenFlow 1.3 action. The set is closed: Output, PushVLAN, PopVLAN, SetField,
// DecNwTTL, Group, RegMove, the connection tracking and conjunction actions of conntrack.go
// (CT, CTClear, Conjunction) and RawAction (an action this package does not model, kept as
// its wire bytes so that a dumped flow is never truncated).
type Action interface {
	appendTo(b []byte) []byte // wire encoding
	// String renders the action in ovs-ofctl syntax, e.g. "output:3",
	// "set_field:fa:16:3f:00:00:01->eth_src", "pop_vlan", "NORMAL".
	String() string
}

// OpenFlow 1.3 action types (ofp_action_type).
const (
	actOutput       uint16 = 0
	actCopyTTLOut   uint16 = 11
	actCopyTTLIn    uint16 = 12
	actSetMPLSTTL   uint16 = 15
	actDecMPLSTTL   uint16 = 16
	actPushVLAN     uint16 = 17
	actPopVLAN      uint16 = 18
	actPushMPLS     uint16 = 19
	actPopMPLS      uint16 = 20
	actSetQueue     uint16 = 21
	actGroup        uint16 = 22
	actSetNwTTL     uint16 = 23
	actDecNwTTL     uint16 = 24
	actSetField     uint16 = 25
	actExperimenter uint16 = 0xffff
)

// Experimenter IDs.
const (
	ExperimenterNicira uint32 = 0x00002320
	ExperimenterONF    uint32 = 0x4f4e4600
)

const nxastRegMove uint16 = 6

// Output sends the packet to Port. MaxLen is the number of bytes sent to the controller
// when Port is PortController (ControllerMaxLenNoBuffer: the whole packet).
type Output struct {
	Port   uint32
	MaxLen uint16
}

// PushVLAN pushes a new VLAN header with the given TPID (normally EthTypeVLAN).
type PushVLAN struct{ EtherType uint16 }

// PopVLAN pops the outermost VLAN header.
type PopVLAN struct{}

// SetField writes Field (its Mask must be nil) into the packet or pipeline fields.
type SetField struct{ Field Field }

// DecNwTTL decrements the IP TTL.
type DecNwTTL struct{}

// Group sends the packet through group ID.
type Group struct{ ID uint32 }

// FieldRef names a bit range of a field, for RegMove: bits [Ofs, Ofs+n) of the field of
// Class/Type, whose full width is Bytes bytes.
type FieldRef struct {
	Class uint16
	Type  uint8
	Bytes uint8 // full field width in bytes
	Ofs   int   // first bit
}

// RegMove is Nicira's NXAST_REG_MOVE: copy NBits bits from Src to Dst ("move:" in ovs-ofctl).
// NBits 0 is not valid on the wire; use the field width to copy a whole field.
type RegMove struct {
	Src, Dst FieldRef
	NBits    int
}

// RawAction is an action this package does not model, kept verbatim (type, length and body
// as on the wire, including padding) so a decoded flow re-encodes to the same bytes.
type RawAction struct{ Bytes []byte }

// Field references for RegMove, as OVS names them in NXM form.
var (
	RefEthSrc = FieldRef{Class: ClassNXM0, Type: NXMOFEthSrc, Bytes: 6}
	RefEthDst = FieldRef{Class: ClassNXM0, Type: NXMOFEthDst, Bytes: 6}
	RefIPSrc  = FieldRef{Class: ClassNXM0, Type: NXMOFIPSrc, Bytes: 4}
	RefIPDst  = FieldRef{Class: ClassNXM0, Type: NXMOFIPDst, Bytes: 4}
	RefARPSPA = FieldRef{Class: ClassNXM0, Type: NXMOFARPSPA, Bytes: 4}
	RefARPTPA = FieldRef{Class: ClassNXM0, Type: NXMOFARPTPA, Bytes: 4}
	RefARPSHA = FieldRef{Class: ClassNXM1, Type: NXMNXARPSHA, Bytes: 6}
	RefARPTHA = FieldRef{Class: ClassNXM1, Type: NXMNXARPTHA, Bytes: 6}
)

// RefReg references Nicira register n (NXM_NX_REGn), all 32 bits from bit 0.
func RefReg(n int) FieldRef { return FieldRef{Class: ClassNXM1, Type: NXMReg0 + uint8(n), Bytes: 4} }

// SetEthSrc sets the Ethernet source.
func SetEthSrc(mac net.HardwareAddr) SetField { return SetField{EthSrc(mac)} }

// SetEthDst sets the Ethernet destination.
func SetEthDst(mac net.HardwareAddr) SetField { return SetField{EthDst(mac)} }

// SetVLANVID sets the VLAN ID of the outermost tag (OFPVID_PRESENT is set for you).
func SetVLANVID(vid uint16) SetField { return SetField{VLANVID(vid)} }

// SetTunnelID sets the tunnel ID (VXLAN VNI) for output to a flow-based tunnel port.
func SetTunnelID(id uint64) SetField { return SetField{TunnelID(id)} }

// SetTunDst sets the outer IPv4 destination for output to a flow-based tunnel port
// (set_field of NXM_NX_TUN_IPV4_DST).
func SetTunDst(ip netip.Addr) SetField { return SetField{TunIPv4Dst(ip)} }

// SetARPOp sets the ARP opcode.
func SetARPOp(op uint16) SetField { return SetField{ARPOp(op)} }

// SetARPSHA sets the ARP sender hardware address.
func SetARPSHA(mac net.HardwareAddr) SetField { return SetField{ARPSHA(mac)} }

// SetARPTHA sets the ARP target hardware address.
func SetARPTHA(mac net.HardwareAddr) SetField { return SetField{ARPTHA(mac)} }

// SetARPSPA sets the ARP sender protocol address.
func SetARPSPA(ip netip.Addr) SetField { return SetField{ARPSPA(ip)} }

// SetARPTPA sets the ARP target protocol address.
func SetARPTPA(ip netip.Addr) SetField { return SetField{ARPTPA(ip)} }

// SetReg sets Nicira register n.
func SetReg(n int, v uint32) SetField { return SetField{Reg(n, v)} }

// SetMetadata is not an action in OpenFlow 1.3: use Flow.Metadata (write_metadata).

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func (a Output) appendTo(b []byte) []byte {
	b = appendU16(b, actOutput)
	b = appendU16(b, 16)
	b = appendU32(b, a.Port)
	b = appendU16(b, a.MaxLen)
	return append(b, 0, 0, 0, 0, 0, 0)
}

func (a PushVLAN) appendTo(b []byte) []byte {
	b = appendU16(b, actPushVLAN)
	b = appendU16(b, 8)
	b = appendU16(b, a.EtherType)
	return append(b, 0, 0)
}

func (PopVLAN) appendTo(b []byte) []byte {
	return append(b, 0, byte(actPopVLAN), 0, 8, 0, 0, 0, 0)
}

func (DecNwTTL) appendTo(b []byte) []byte {
	return append(b, 0, byte(actDecNwTTL), 0, 8, 0, 0, 0, 0)
}

func (a Group) appendTo(b []byte) []byte {
	b = append(b, 0, byte(actGroup), 0, 8)
	return appendU32(b, a.ID)
}

func (a SetField) appendTo(b []byte) []byte {
	n := 4 + 4 + len(a.Field.Value) + len(a.Field.Mask)
	padded := (n + 7) &^ 7
	b = appendU16(b, actSetField)
	b = appendU16(b, uint16(padded))
	b = appendOXM(b, a.Field)
	for ; n < padded; n++ {
		b = append(b, 0)
	}
	return b
}

func (a RegMove) appendTo(b []byte) []byte {
	b = appendU16(b, actExperimenter)
	b = appendU16(b, 24)
	b = appendU32(b, ExperimenterNicira)
	b = appendU16(b, nxastRegMove)
	b = appendU16(b, uint16(a.NBits))
	b = appendU16(b, uint16(a.Src.Ofs))
	b = appendU16(b, uint16(a.Dst.Ofs))
	b = appendOXMHeader(b, a.Src.Class, a.Src.Type, false, a.Src.Bytes)
	return appendOXMHeader(b, a.Dst.Class, a.Dst.Type, false, a.Dst.Bytes)
}

func (a RawAction) appendTo(b []byte) []byte { return append(b, a.Bytes...) }

// appendOXMHeader appends an OXM/NXM header: class, field<<1|hasmask, payload length.
func appendOXMHeader(b []byte, class uint16, typ uint8, hasMask bool, valueLen uint8) []byte {
	l := valueLen
	ft := typ << 1
	if hasMask {
		l *= 2
		ft |= 1
	}
	b = appendU16(b, class)
	return append(b, ft, l)
}

// appendOXM appends one OXM TLV.
func appendOXM(b []byte, f Field) []byte {
	b = appendOXMHeader(b, f.Class, f.Type, f.Mask != nil, uint8(len(f.Value)))
	b = append(b, f.Value...)
	return append(b, f.Mask...)
}

// String implements Action.
func (a Output) String() string {
	switch a.Port {
	case PortController:
		return "CONTROLLER:" + strconv.Itoa(int(a.MaxLen))
	case PortInPort, PortNormal, PortFlood, PortAll, PortLocal, PortTable:
		return portName(a.Port)
	}
	return "output:" + portName(a.Port)
}

// String implements Action.
func (a PushVLAN) String() string {
	return "push_vlan:0x" + strconv.FormatUint(uint64(a.EtherType), 16)
}

// String implements Action.
func (PopVLAN) String() string { return "pop_vlan" }

// String implements Action.
func (DecNwTTL) String() string { return "dec_ttl" }

// String implements Action.
func (a Group) String() string { return "group:" + strconv.FormatUint(uint64(a.ID), 10) }

// String implements Action.
func (a SetField) String() string {
	spec := lookupField(a.Field.Class, a.Field.Type)
	return "set_field:" + spec.formatValue(a.Field, true) + "->" + spec.setName()
}

// String implements Action.
func (a RegMove) String() string {
	return "move:" + a.Src.String(a.NBits) + "->" + a.Dst.String(a.NBits)
}

// String implements Action.
func (a RawAction) String() string {
	const hex = "0123456789abcdef"
	b := []byte("raw:")
	for _, c := range a.Bytes {
		b = append(b, hex[c>>4], hex[c&15])
	}
	return string(b)
}

// String formats r as OVS does for an n-bit slice: "NXM_OF_ETH_SRC[]" for the whole field,
// "NXM_NX_REG0[0..15]" for a part.
func (r FieldRef) String(nbits int) string {
	name := lookupField(r.Class, r.Type).nxmName
	if name == "" {
		name = "OXM_" + strconv.Itoa(int(r.Class)) + "_" + strconv.Itoa(int(r.Type))
	}
	if r.Ofs == 0 && nbits == int(r.Bytes)*8 {
		return name + "[]"
	}
	if nbits == 1 {
		return name + "[" + strconv.Itoa(r.Ofs) + "]"
	}
	return name + "[" + strconv.Itoa(r.Ofs) + ".." + strconv.Itoa(r.Ofs+nbits-1) + "]"
}

// portName renders a port number as ovs-ofctl does.
func portName(p uint32) string {
	switch p {
	case PortInPort:
		return "IN_PORT"
	case PortTable:
		return "TABLE"
	case PortNormal:
		return "NORMAL"
	case PortFlood:
		return "FLOOD"
	case PortAll:
		return "ALL"
	case PortController:
		return "CONTROLLER"
	case PortLocal:
		return "LOCAL"
	case PortAny:
		return "ANY"
	}
	return strconv.FormatUint(uint64(p), 10)
}
