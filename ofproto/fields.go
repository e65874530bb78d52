package ofproto

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
)

// valueFormat says how a field's value is written in ovs-ofctl syntax.
type valueFormat uint8

const (
	fmtDec  valueFormat = iota // decimal
	fmtHex                     // 0x... (masks as /0x...)
	fmtMAC                     // aa:bb:cc:dd:ee:ff
	fmtIPv4                    // dotted quad, masks as /len when CIDR
	fmtIPv6                    // RFC 5952
	fmtPort                    // port number or reserved name
	fmtVLAN                    // dl_vlan / vlan_tci special forms
	fmtHex4                    // 0x%04x (dl_type)
)

// fieldSpec describes one field this package knows by name.
type fieldSpec struct {
	class    uint16
	typ      uint8
	bytes    uint8
	name     string // name in a match as ovs-ofctl dump-flows prints it
	set      string // name in set_field as OVS prints it ("" = same as name)
	nxmName  string // NXM name used by move: (NXM_OF_ETH_SRC)
	format   valueFormat
	setFmt   valueFormat // format inside set_field
	encRank  int         // position in OVS's wire encoding order (nx_put_raw)
	textRank int         // position in OVS's match_format order
}

func (s *fieldSpec) setName() string {
	if s.set != "" {
		return s.set
	}
	return s.name
}

// fieldSpecs lists the known fields. encRank follows lib/nx-match.c nx_put_raw and textRank
// lib/match.c match_format of Open vSwitch 3.1 (checked against ovs-ofctl in the fixtures).
var fieldSpecs = [...]fieldSpec{
	{ClassBasic, OXMInPort, 4, "in_port", "", "NXM_OF_IN_PORT", fmtPort, fmtPort, 10, 40},
	{ClassBasic, OXMEthSrc, 6, "dl_src", "eth_src", "NXM_OF_ETH_SRC", fmtMAC, fmtMAC, 20, 60},
	{ClassBasic, OXMEthDst, 6, "dl_dst", "eth_dst", "NXM_OF_ETH_DST", fmtMAC, fmtMAC, 21, 61},
	{ClassBasic, OXMEthType, 2, "dl_type", "eth_type", "NXM_OF_ETH_TYPE", fmtHex4, fmtHex4, 22, 62},
	{ClassBasic, OXMVLANVID, 2, "dl_vlan", "vlan_vid", "", fmtVLAN, fmtDec, 30, 50},
	{ClassBasic, OXMVLANPCP, 1, "dl_vlan_pcp", "vlan_pcp", "", fmtDec, fmtDec, 31, 51},
	{ClassBasic, OXMIPv4Src, 4, "nw_src", "ip_src", "NXM_OF_IP_SRC", fmtIPv4, fmtIPv4, 40, 70},
	{ClassBasic, OXMIPv4Dst, 4, "nw_dst", "ip_dst", "NXM_OF_IP_DST", fmtIPv4, fmtIPv4, 41, 71},
	{ClassBasic, OXMIPv6Src, 16, "ipv6_src", "", "NXM_NX_IPV6_SRC", fmtIPv6, fmtIPv6, 42, 72},
	{ClassBasic, OXMIPv6Dst, 16, "ipv6_dst", "", "NXM_NX_IPV6_DST", fmtIPv6, fmtIPv6, 43, 73},
	{ClassBasic, OXMIPDSCP, 1, "ip_dscp", "", "", fmtDec, fmtDec, 44, 90},
	{ClassBasic, OXMIPECN, 1, "nw_ecn", "ip_ecn", "", fmtDec, fmtDec, 45, 91},
	{ClassBasic, OXMIPProto, 1, "nw_proto", "", "NXM_OF_IP_PROTO", fmtDec, fmtDec, 47, 80},
	{ClassBasic, OXMTCPSrc, 2, "tp_src", "tcp_src", "NXM_OF_TCP_SRC", fmtDec, fmtDec, 50, 100},
	{ClassBasic, OXMTCPDst, 2, "tp_dst", "tcp_dst", "NXM_OF_TCP_DST", fmtDec, fmtDec, 51, 101},
	{ClassBasic, OXMUDPSrc, 2, "tp_src", "udp_src", "NXM_OF_UDP_SRC", fmtDec, fmtDec, 52, 102},
	{ClassBasic, OXMUDPDst, 2, "tp_dst", "udp_dst", "NXM_OF_UDP_DST", fmtDec, fmtDec, 53, 103},
	{ClassBasic, OXMICMPv4Type, 1, "icmp_type", "icmpv4_type", "NXM_OF_ICMP_TYPE", fmtDec, fmtDec, 54, 104},
	{ClassBasic, OXMICMPv4Code, 1, "icmp_code", "icmpv4_code", "NXM_OF_ICMP_CODE", fmtDec, fmtDec, 55, 105},
	{ClassBasic, OXMICMPv6Type, 1, "icmp_type", "icmpv6_type", "NXM_NX_ICMPV6_TYPE", fmtDec, fmtDec, 56, 104},
	{ClassBasic, OXMICMPv6Code, 1, "icmp_code", "icmpv6_code", "NXM_NX_ICMPV6_CODE", fmtDec, fmtDec, 57, 105},
	{ClassBasic, OXMIPv6NDTarget, 16, "nd_target", "", "NXM_NX_ND_TARGET", fmtIPv6, fmtIPv6, 58, 106},
	{ClassBasic, OXMIPv6NDSLL, 6, "nd_sll", "", "NXM_NX_ND_SLL", fmtMAC, fmtMAC, 59, 107},
	{ClassBasic, OXMIPv6NDTLL, 6, "nd_tll", "", "NXM_NX_ND_TLL", fmtMAC, fmtMAC, 59, 108},
	{ClassBasic, OXMARPOp, 2, "arp_op", "", "NXM_OF_ARP_OP", fmtDec, fmtDec, 60, 80},
	{ClassBasic, OXMARPSPA, 4, "arp_spa", "", "NXM_OF_ARP_SPA", fmtIPv4, fmtIPv4, 61, 70},
	{ClassBasic, OXMARPTPA, 4, "arp_tpa", "", "NXM_OF_ARP_TPA", fmtIPv4, fmtIPv4, 62, 71},
	{ClassBasic, OXMARPSHA, 6, "arp_sha", "", "NXM_NX_ARP_SHA", fmtMAC, fmtMAC, 63, 85},
	{ClassBasic, OXMARPTHA, 6, "arp_tha", "", "NXM_NX_ARP_THA", fmtMAC, fmtMAC, 64, 86},
	{ClassBasic, OXMTunnelID, 8, "tun_id", "", "NXM_NX_TUN_ID", fmtHex, fmtHex, 70, 20},
	{ClassNXM1, NXMTunIPv4Src, 4, "tun_src", "", "NXM_NX_TUN_IPV4_SRC", fmtIPv4, fmtIPv4, 72, 21},
	{ClassNXM1, NXMTunIPv4Dst, 4, "tun_dst", "", "NXM_NX_TUN_IPV4_DST", fmtIPv4, fmtIPv4, 73, 22},
	{ClassNXM1, 0, 4, "reg0", "", "NXM_NX_REG0", fmtHex, fmtHex, 80, 10},
	{ClassNXM1, 1, 4, "reg1", "", "NXM_NX_REG1", fmtHex, fmtHex, 81, 11},
	{ClassNXM1, 2, 4, "reg2", "", "NXM_NX_REG2", fmtHex, fmtHex, 82, 12},
	{ClassNXM1, 3, 4, "reg3", "", "NXM_NX_REG3", fmtHex, fmtHex, 83, 13},
	{ClassNXM1, 4, 4, "reg4", "", "NXM_NX_REG4", fmtHex, fmtHex, 84, 14},
	{ClassNXM1, 5, 4, "reg5", "", "NXM_NX_REG5", fmtHex, fmtHex, 85, 15},
	{ClassNXM1, 6, 4, "reg6", "", "NXM_NX_REG6", fmtHex, fmtHex, 86, 16},
	{ClassNXM1, 7, 4, "reg7", "", "NXM_NX_REG7", fmtHex, fmtHex, 87, 17},
	{ClassNXM1, NXMCTState, 4, "ct_state", "", "NXM_NX_CT_STATE", fmtHex, fmtHex, 88, 3},
	{ClassNXM1, NXMCTZone, 2, "ct_zone", "", "NXM_NX_CT_ZONE", fmtDec, fmtDec, 89, 4},
	{ClassNXM1, NXMCTMark, 4, "ct_mark", "", "NXM_NX_CT_MARK", fmtHex, fmtHex, 91, 5},
	{ClassBasic, OXMMetadata, 8, "metadata", "", "OXM_OF_METADATA", fmtHex, fmtHex, 95, 30},
	{ClassNXM1, NXMConjID, 4, "conj_id", "", "NXM_NX_CONJ_ID", fmtDec, fmtDec, 5, 1},
	// NXM_OF_* names only used as RegMove references (never in an OF1.3 match).
	{ClassNXM0, NXMOFEthSrc, 6, "", "", "NXM_OF_ETH_SRC", fmtMAC, fmtMAC, 200, 200},
	{ClassNXM0, NXMOFEthDst, 6, "", "", "NXM_OF_ETH_DST", fmtMAC, fmtMAC, 200, 200},
	{ClassNXM0, NXMOFIPSrc, 4, "", "", "NXM_OF_IP_SRC", fmtIPv4, fmtIPv4, 200, 200},
	{ClassNXM0, NXMOFIPDst, 4, "", "", "NXM_OF_IP_DST", fmtIPv4, fmtIPv4, 200, 200},
	{ClassNXM0, NXMOFARPSPA, 4, "", "", "NXM_OF_ARP_SPA", fmtIPv4, fmtIPv4, 200, 200},
	{ClassNXM0, NXMOFARPTPA, 4, "", "", "NXM_OF_ARP_TPA", fmtIPv4, fmtIPv4, 200, 200},
	{ClassNXM1, NXMNXARPSHA, 6, "", "", "NXM_NX_ARP_SHA", fmtMAC, fmtMAC, 200, 200},
	{ClassNXM1, NXMNXARPTHA, 6, "", "", "NXM_NX_ARP_THA", fmtMAC, fmtMAC, 200, 200},
	{ClassNXM1, NXMNXTunID, 8, "", "", "NXM_NX_TUN_ID", fmtHex, fmtHex, 200, 200},
}

// unknownSpec describes a field this package has no name for.
var unknownSpec = fieldSpec{format: fmtHex, setFmt: fmtHex, encRank: 1000, textRank: 1000}

func lookupField(class uint16, typ uint8) *fieldSpec {
	for i := range fieldSpecs {
		if fieldSpecs[i].class == class && fieldSpecs[i].typ == typ {
			return &fieldSpecs[i]
		}
	}
	return &unknownSpec
}

// fieldRank is the position of a field in canonical (OVS encoding) order.
func fieldRank(class uint16, typ uint8) int {
	if class == ClassBasic && typ == OXMInPort { // the most common field: skip the scan
		return 10
	}
	return lookupField(class, typ).encRank
}

// displayName returns the ovs-ofctl name of the field, or an OXM description for unknown ones.
func (s *fieldSpec) displayName(f Field) string {
	if s.name != "" {
		return s.name
	}
	return "oxm_" + strconv.FormatUint(uint64(f.Class), 16) + "_" + strconv.Itoa(int(f.Type))
}

func hexBytes(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2+2*len(b))
	out = append(out, '0', 'x')
	i := 0
	for i < len(b)-1 && b[i] == 0 {
		i++
	}
	if i < len(b) {
		if b[i] >= 16 {
			out = append(out, digits[b[i]>>4])
		}
		out = append(out, digits[b[i]&15])
		for _, c := range b[i+1:] {
			out = append(out, digits[c>>4], digits[c&15])
		}
	} else {
		out = append(out, '0')
	}
	return string(out)
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// formatValue writes f's value (and mask) in ovs-ofctl syntax. set selects the set_field form.
func (s *fieldSpec) formatValue(f Field, set bool) string {
	format := s.format
	if set {
		format = s.setFmt
	}
	if len(f.Value) != int(s.bytes) && s != &unknownSpec {
		format = fmtHex
	}
	switch format {
	case fmtDec:
		if f.Mask != nil { // masked: both in hex, as OVS's format_*_masked
			return hexBytes(f.Value) + "/" + hexBytes(f.Mask)
		}
		return strconv.FormatUint(beUint(f.Value), 10)
	case fmtPort:
		return portName(uint32(beUint(f.Value)))
	case fmtHex4:
		v := beUint(f.Value)
		return "0x" + string([]byte{hexDigit(v >> 12), hexDigit(v >> 8), hexDigit(v >> 4), hexDigit(v)})
	case fmtMAC:
		v := net.HardwareAddr(f.Value).String()
		if f.Mask != nil {
			v += "/" + net.HardwareAddr(f.Mask).String()
		}
		return v
	case fmtIPv4:
		a := netip.AddrFrom4([4]byte(f.Value))
		if f.Mask == nil {
			return a.String()
		}
		m := binary.BigEndian.Uint32(f.Mask)
		if n := cidrLen(m); n >= 0 {
			return a.String() + "/" + strconv.Itoa(n)
		}
		return a.String() + "/" + netip.AddrFrom4([4]byte(f.Mask)).String()
	case fmtIPv6:
		a := netip.AddrFrom16([16]byte(f.Value))
		if f.Mask == nil {
			return a.String()
		}
		if n := cidrLen6(f.Mask); n >= 0 {
			return a.String() + "/" + strconv.Itoa(n)
		}
		return a.String() + "/" + netip.AddrFrom16([16]byte(f.Mask)).String()
	case fmtVLAN:
		v := binary.BigEndian.Uint16(f.Value)
		if f.Mask == nil && v&VIDPresent != 0 {
			return strconv.Itoa(int(v & 0x0fff))
		}
		return "" // handled by the caller (vlan_tci form)
	}
	v := hexBytes(f.Value)
	if f.Mask != nil {
		v += "/" + hexBytes(f.Mask)
	}
	return v
}

func hexDigit(v uint64) byte { return "0123456789abcdef"[v&15] }

// cidrLen returns the prefix length of a contiguous netmask, or -1.
func cidrLen(m uint32) int {
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	if m != 0 {
		return -1
	}
	return n
}

// cidrLen6 is the prefix length of a 16-byte mask, or -1 when it is not a prefix.
func cidrLen6(m []byte) int {
	n := 0
	for n < 128 && m[n/8]&(0x80>>(n%8)) != 0 {
		n++
	}
	for i := n; i < 128; i++ {
		if m[i/8]&(0x80>>(i%8)) != 0 {
			return -1
		}
	}
	return n
}
