package ofproto

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
)

// OXM classes.
const (
	ClassNXM0  uint16 = 0x0000 // NXM_OF_*: Nicira's original OpenFlow 1.0 fields
	ClassNXM1  uint16 = 0x0001 // NXM_NX_*: Nicira extension fields (registers, tunnel)
	ClassBasic uint16 = 0x8000 // OFPXMC_OPENFLOW_BASIC
)

// OpenFlow basic OXM field numbers (oxm_ofb_match_fields).
const (
	OXMInPort       uint8 = 0
	OXMInPhyPort    uint8 = 1
	OXMMetadata     uint8 = 2
	OXMEthDst       uint8 = 3
	OXMEthSrc       uint8 = 4
	OXMEthType      uint8 = 5
	OXMVLANVID      uint8 = 6
	OXMVLANPCP      uint8 = 7
	OXMIPDSCP       uint8 = 8
	OXMIPECN        uint8 = 9
	OXMIPProto      uint8 = 10
	OXMIPv4Src      uint8 = 11
	OXMIPv4Dst      uint8 = 12
	OXMTCPSrc       uint8 = 13
	OXMTCPDst       uint8 = 14
	OXMUDPSrc       uint8 = 15
	OXMUDPDst       uint8 = 16
	OXMICMPv4Type   uint8 = 19
	OXMICMPv4Code   uint8 = 20
	OXMARPOp        uint8 = 21
	OXMARPSPA       uint8 = 22
	OXMARPTPA       uint8 = 23
	OXMARPSHA       uint8 = 24
	OXMARPTHA       uint8 = 25
	OXMIPv6Src      uint8 = 26
	OXMIPv6Dst      uint8 = 27
	OXMICMPv6Type   uint8 = 29
	OXMICMPv6Code   uint8 = 30
	OXMIPv6NDTarget uint8 = 31
	OXMIPv6NDSLL    uint8 = 32
	OXMIPv6NDTLL    uint8 = 33
	OXMTunnelID     uint8 = 38
)

// Nicira NXM_NX_* field numbers (class ClassNXM1) and NXM_OF_* (class ClassNXM0) used here.
const (
	NXMReg0       uint8 = 0 // NXM_NX_REG0..7 are 0..7, class ClassNXM1
	NXMTunIPv4Src uint8 = 31
	NXMTunIPv4Dst uint8 = 32

	NXMOFInPort  uint8 = 0 // class ClassNXM0
	NXMOFEthDst  uint8 = 1
	NXMOFEthSrc  uint8 = 2
	NXMOFEthType uint8 = 3
	NXMOFIPSrc   uint8 = 7
	NXMOFIPDst   uint8 = 8
	NXMOFARPOp   uint8 = 15
	NXMOFARPSPA  uint8 = 16
	NXMOFARPTPA  uint8 = 17
	NXMNXARPSHA  uint8 = 17 // class ClassNXM1
	NXMNXARPTHA  uint8 = 18 // class ClassNXM1
	NXMNXTunID   uint8 = 16 // class ClassNXM1
)

// VLAN VID flags.
const (
	VIDPresent uint16 = 0x1000 // OFPVID_PRESENT
	VIDNone    uint16 = 0x0000 // OFPVID_NONE
)

// Field is one OXM TLV of a match or a set_field action.
type Field struct {
	Class uint16 // OXM class: ClassBasic (OpenFlowBasic), ClassNXM0, ClassNXM1
	Type  uint8  // OXM field number (without the has-mask bit)
	Value []byte
	Mask  []byte // nil: exact match; same length as Value otherwise
}

// Match is a set of fields, kept in canonical order (see Canonical) so that equal matches
// encode to equal bytes.
type Match []Field

// Equal reports whether f and g are the same field with the same value and mask.
func (f Field) Equal(g Field) bool {
	return f.Class == g.Class && f.Type == g.Type && string(f.Value) == string(g.Value) &&
		(f.Mask == nil) == (g.Mask == nil) && string(f.Mask) == string(g.Mask)
}

// Canonical puts m in canonical form, in place, and returns it: fields sorted in the order in
// which Open vSwitch encodes a match (in_port first, then Ethernet, VLAN, L3, L4, tunnel,
// registers, metadata), which makes our flow-mods byte-for-byte equal to ovs-ofctl's and
// FlowKey stable, and masks of all ones dropped (an exact match, as OVS reports it back).
func (m Match) Canonical() Match {
	for i := range m {
		if m[i].Mask != nil && allOnes(m[i].Mask) {
			m[i].Mask = nil
		}
	}
	slices.SortStableFunc(m, cmpField)
	return m
}

func allOnes(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// isCanonical reports whether Canonical would leave m unchanged.
func (m Match) isCanonical() bool {
	for i := range m {
		if m[i].Mask != nil && allOnes(m[i].Mask) {
			return false
		}
	}
	return slices.IsSortedFunc(m, cmpField)
}

// Has reports whether m matches on the field (class, typ).
func (m Match) Has(class uint16, typ uint8) bool {
	_, ok := m.Get(class, typ)
	return ok
}

// Get returns the field (class, typ) of m, if present.
func (m Match) Get(class uint16, typ uint8) (Field, bool) {
	for _, f := range m {
		if f.Class == class && f.Type == typ {
			return f, true
		}
	}
	return Field{}, false
}

// Equal reports whether m and n hold the same fields in the same order.
func (m Match) Equal(n Match) bool {
	return slices.EqualFunc(m, n, Field.Equal)
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func basic(t uint8, v []byte) Field { return Field{Class: ClassBasic, Type: t, Value: v} }
func basicMasked(t uint8, v, m []byte) Field {
	return Field{Class: ClassBasic, Type: t, Value: v, Mask: m}
}

func mac6(mac net.HardwareAddr) []byte {
	b := make([]byte, 6)
	copy(b, mac)
	return b
}

func ip4(a netip.Addr) []byte {
	v := a.Unmap().As4()
	return v[:]
}

// InPort matches the OpenFlow ingress port.
func InPort(port uint32) Field { return basic(OXMInPort, u32(port)) }

// Metadata matches the 64-bit metadata register exactly.
func Metadata(v uint64) Field { return basic(OXMMetadata, u64(v)) }

// MetadataMasked matches the bits of metadata selected by mask.
func MetadataMasked(v, mask uint64) Field {
	return basicMasked(OXMMetadata, u64(v&mask), u64(mask))
}

// EthDst matches the Ethernet destination.
func EthDst(mac net.HardwareAddr) Field { return basic(OXMEthDst, mac6(mac)) }

// EthDstMasked matches the bits of the Ethernet destination selected by mask.
func EthDstMasked(mac, mask net.HardwareAddr) Field {
	v, m := mac6(mac), mac6(mask)
	for i := range v {
		v[i] &= m[i]
	}
	return basicMasked(OXMEthDst, v, m)
}

// EthSrc matches the Ethernet source.
func EthSrc(mac net.HardwareAddr) Field { return basic(OXMEthSrc, mac6(mac)) }

// EthSrcMasked matches the bits of the Ethernet source selected by mask.
func EthSrcMasked(mac, mask net.HardwareAddr) Field {
	v, m := mac6(mac), mac6(mask)
	for i := range v {
		v[i] &= m[i]
	}
	return basicMasked(OXMEthSrc, v, m)
}

// EthType matches the Ethernet type (after VLAN headers).
func EthType(t uint16) Field { return basic(OXMEthType, u16(t)) }

// Common Ethernet types.
const (
	EthTypeIPv4 uint16 = 0x0800
	EthTypeARP  uint16 = 0x0806
	EthTypeVLAN uint16 = 0x8100
	EthTypeIPv6 uint16 = 0x86dd
)

// IP protocol numbers the match builders know the fields of.
const (
	IPProtoICMP = 1
	IPProtoTCP  = 6
	IPProtoUDP  = 17
)

// VLANVID matches packets tagged with VLAN vid (OFPVID_PRESENT is set for you).
func VLANVID(vid uint16) Field { return basic(OXMVLANVID, u16(vid&0x0fff|VIDPresent)) }

// VLANNone matches packets without a VLAN tag.
func VLANNone() Field { return basic(OXMVLANVID, u16(VIDNone)) }

// VLANAny matches packets with any VLAN tag.
func VLANAny() Field {
	return basicMasked(OXMVLANVID, u16(VIDPresent), u16(VIDPresent))
}

// IPProto matches the IP protocol number (needs eth_type IPv4 or IPv6).
func IPProto(p uint8) Field { return basic(OXMIPProto, []byte{p}) }

// IPv4Src matches the IPv4 source address.
func IPv4Src(a netip.Addr) Field { return basic(OXMIPv4Src, ip4(a)) }

// IPv4Dst matches the IPv4 destination address.
func IPv4Dst(a netip.Addr) Field { return basic(OXMIPv4Dst, ip4(a)) }

// IPv4SrcMasked matches an IPv4 source prefix; a /32 is an exact match.
func IPv4SrcMasked(p netip.Prefix) Field { return prefixField(OXMIPv4Src, p) }

// IPv4DstMasked matches an IPv4 destination prefix; a /32 is an exact match.
func IPv4DstMasked(p netip.Prefix) Field { return prefixField(OXMIPv4Dst, p) }

func prefixField(t uint8, p netip.Prefix) Field {
	p = p.Masked()
	bits := p.Bits()
	if bits < 0 {
		bits = 0
	}
	if bits >= 32 {
		return basic(t, ip4(p.Addr()))
	}
	return basicMasked(t, ip4(p.Addr()), u32(^uint32(0)<<(32-bits)))
}

// TCPDst matches the TCP destination port.
func TCPDst(p uint16) Field { return basic(OXMTCPDst, u16(p)) }

// UDPDst matches the UDP destination port.
func UDPDst(p uint16) Field { return basic(OXMUDPDst, u16(p)) }

// TCPSrc matches the TCP source port.
func TCPSrc(p uint16) Field { return basic(OXMTCPSrc, u16(p)) }

// UDPSrc matches the UDP source port.
func UDPSrc(p uint16) Field { return basic(OXMUDPSrc, u16(p)) }

// TCPDstMasked matches the bits of the TCP destination port selected by mask (a port
// range is a few of these).
func TCPDstMasked(p, mask uint16) Field { return basicMasked(OXMTCPDst, u16(p&mask), u16(mask)) }

// UDPDstMasked matches the bits of the UDP destination port selected by mask.
func UDPDstMasked(p, mask uint16) Field { return basicMasked(OXMUDPDst, u16(p&mask), u16(mask)) }

// ICMPv4Code matches the ICMP code.
func ICMPv4Code(c uint8) Field { return basic(OXMICMPv4Code, []byte{c}) }

// ICMPv4Type matches the ICMPv4 type.
func ICMPv4Type(t uint8) Field { return basic(OXMICMPv4Type, []byte{t}) }

// ICMPv6Type matches the ICMPv6 type.
func ICMPv6Type(t uint8) Field { return basic(OXMICMPv6Type, []byte{t}) }

// ICMPv6Code matches the ICMPv6 code.
func ICMPv6Code(c uint8) Field { return basic(OXMICMPv6Code, []byte{c}) }

// IPv6Src matches the IPv6 source address.
func IPv6Src(a netip.Addr) Field { return basic(OXMIPv6Src, ip6(a)) }

// IPv6Dst matches the IPv6 destination address.
func IPv6Dst(a netip.Addr) Field { return basic(OXMIPv6Dst, ip6(a)) }

// IPv6SrcMasked matches an IPv6 source prefix; a /128 is an exact match.
func IPv6SrcMasked(p netip.Prefix) Field { return prefix6Field(OXMIPv6Src, p) }

// IPv6DstMasked matches an IPv6 destination prefix; a /128 is an exact match.
func IPv6DstMasked(p netip.Prefix) Field { return prefix6Field(OXMIPv6Dst, p) }

func prefix6Field(t uint8, p netip.Prefix) Field {
	p = p.Masked()
	bits := max(p.Bits(), 0)
	if bits >= 128 {
		return basic(t, ip6(p.Addr()))
	}
	m := make([]byte, 16)
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return basicMasked(t, ip6(p.Addr()), m)
}

func ip6(a netip.Addr) []byte {
	b := a.As16()
	return b[:]
}

// ICMPv6 types of neighbour discovery (RFC 4861).
const (
	ICMPv6RouterSolicitation    = 133
	ICMPv6RouterAdvertisement   = 134
	ICMPv6NeighborSolicitation  = 135
	ICMPv6NeighborAdvertisement = 136
)

// IPProtoICMPv6 is ICMPv6's next header number.
const IPProtoICMPv6 = 58

// NDTarget matches the target address of a neighbour solicitation or advertisement (needs
// icmpv6_type 135 or 136).
func NDTarget(a netip.Addr) Field { return basic(OXMIPv6NDTarget, ip6(a)) }

// NDTargetMasked matches a prefix of neighbour discovery targets; a /128 is an exact match.
func NDTargetMasked(p netip.Prefix) Field { return prefix6Field(OXMIPv6NDTarget, p) }

// ARPOp matches the ARP opcode (1 request, 2 reply).
func ARPOp(op uint16) Field { return basic(OXMARPOp, u16(op)) }

// ARPSPA matches the ARP sender protocol address.
func ARPSPA(a netip.Addr) Field { return basic(OXMARPSPA, ip4(a)) }

// ARPSPAMasked matches an ARP sender protocol address prefix; a /32 is an exact match.
func ARPSPAMasked(p netip.Prefix) Field { return prefixField(OXMARPSPA, p) }

// ARPTPA matches the ARP target protocol address.
func ARPTPA(a netip.Addr) Field { return basic(OXMARPTPA, ip4(a)) }

// ARPSHA matches the ARP sender hardware address.
func ARPSHA(mac net.HardwareAddr) Field { return basic(OXMARPSHA, mac6(mac)) }

// ARPTHA matches the ARP target hardware address.
func ARPTHA(mac net.HardwareAddr) Field { return basic(OXMARPTHA, mac6(mac)) }

// TunnelID matches the tunnel ID (VXLAN VNI), tun_id in OVS.
func TunnelID(id uint64) Field { return basic(OXMTunnelID, u64(id)) }

// TunIPv4Dst matches the outer IPv4 destination of a received tunnel packet (NXM_NX_TUN_IPV4_DST).
func TunIPv4Dst(a netip.Addr) Field {
	return Field{Class: ClassNXM1, Type: NXMTunIPv4Dst, Value: ip4(a)}
}

// TunIPv4Src matches the outer IPv4 source of a received tunnel packet (NXM_NX_TUN_IPV4_SRC).
func TunIPv4Src(a netip.Addr) Field {
	return Field{Class: ClassNXM1, Type: NXMTunIPv4Src, Value: ip4(a)}
}

// Reg matches Nicira register n (0..7, NXM_NX_REGn) exactly.
func Reg(n int, v uint32) Field {
	return Field{Class: ClassNXM1, Type: NXMReg0 + uint8(n), Value: u32(v)}
}

// RegMasked matches the bits of register n selected by mask.
func RegMasked(n int, v, mask uint32) Field {
	return Field{Class: ClassNXM1, Type: NXMReg0 + uint8(n), Value: u32(v & mask), Mask: u32(mask)}
}
