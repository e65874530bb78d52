// IPv6 neighbour discovery frames (RFC 4861): solicitations parsed as they reach the
// controller, neighbour and router advertisements built.

package ofproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ND option types (RFC 4861 4.6).
const (
	ndOptSourceLL = 1
	ndOptTargetLL = 2
	ndOptPrefix   = 3
	ndOptMTU      = 5
)

// ndHopLimit is the hop limit of every ND message: a receiver drops one with another
// (RFC 4861 7.1.1, 6.1.2), so no router can have forwarded it.
const ndHopLimit = 255

// NDMessage is a parsed neighbour or router solicitation, as it reaches the controller
// (tagged with the local VLAN of its network).
type NDMessage struct {
	VLAN   uint16
	Type   uint8 // ICMPv6NeighborSolicitation or ICMPv6RouterSolicitation
	EthSrc net.HardwareAddr
	Src    netip.Addr // :: for duplicate address detection
	Dst    netip.Addr
	Target netip.Addr       // a neighbour solicitation's
	SLL    net.HardwareAddr // the source link-layer address option, if present
}

// ErrNotND is returned by ParseND for frames that are not an IPv6 neighbour or router
// solicitation.
var ErrNotND = errors.New("not an IPv6 neighbour or router solicitation")

// ParseND parses an Ethernet frame (with at most one 802.1Q tag) carrying an ICMPv6
// neighbour solicitation or router solicitation, with no extension header, hop limit 255
// and code 0 as RFC 4861 requires. The checksum is not checked: the switch matched the
// frame, and a bad one only gets an answer the asker's kernel drops.
func ParseND(frame []byte) (NDMessage, error) {
	var m NDMessage
	vlan, et, ip, err := EthPayload(frame)
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrNotND, err)
	}
	m.VLAN = vlan
	if et != EthTypeIPv6 || len(ip) < 40+8 || ip[0]>>4 != 6 || ip[6] != IPProtoICMPv6 || ip[7] != ndHopLimit {
		return m, ErrNotND
	}
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	if plen < 8 || 40+plen > len(ip) {
		return m, fmt.Errorf("payload length %d of %d: %w", plen, len(ip)-40, ErrNotND)
	}
	icmp := ip[40 : 40+plen]
	m.Type = icmp[0]
	var opts []byte
	switch {
	case m.Type == ICMPv6NeighborSolicitation && icmp[1] == 0 && len(icmp) >= 24:
		m.Target = netip.AddrFrom16([16]byte(icmp[8:24]))
		opts = icmp[24:]
	case m.Type == ICMPv6RouterSolicitation && icmp[1] == 0:
		opts = icmp[8:]
	default:
		return m, ErrNotND
	}
	m.EthSrc = net.HardwareAddr(append([]byte(nil), frame[6:12]...))
	m.Src = netip.AddrFrom16([16]byte(ip[8:24]))
	m.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
	for len(opts) >= 8 {
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			return m, fmt.Errorf("option of %d bytes: %w", n, ErrNotND)
		}
		if opts[0] == ndOptSourceLL && n == 8 {
			m.SLL = net.HardwareAddr(append([]byte(nil), opts[2:8]...))
		}
		opts = opts[n:]
	}
	return m, nil
}

// NAFlags are a neighbour advertisement's flags.
type NAFlags uint8

// Neighbour advertisement flags (RFC 4861 4.4).
const (
	NARouter    NAFlags = 0x80
	NASolicited NAFlags = 0x40
	NAOverride  NAFlags = 0x20
)

// NeighborAdvert builds the untagged Ethernet frame answering solicitation ns with mac for
// its target: from the target, to the asker (to all nodes when it asked from ::, doing
// duplicate address detection, RFC 4861 7.2.4), with the target link-layer address
// option.
func NeighborAdvert(ns NDMessage, mac net.HardwareAddr, flags NAFlags) []byte {
	dst, dstMAC := ns.Src, ns.EthSrc
	if !dst.IsValid() || dst.IsUnspecified() {
		dst, dstMAC = allNodes, MulticastMAC(allNodes)
		flags &^= NASolicited
	}
	body := make([]byte, 0, 32)
	body = append(body, ICMPv6NeighborAdvertisement, 0, 0, 0, byte(flags), 0, 0, 0)
	t := ns.Target.As16()
	body = append(body, t[:]...)
	body = append(body, ndOptTargetLL, 1)
	body = append(body, mac...)
	return appendICMPv6(nil, dstMAC, mac, ns.Target, dst, body)
}

// allNodes is ff02::1, the link-local all-nodes multicast address.
var allNodes = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 1})

// AllNodes returns ff02::1, where unsolicited router advertisements go.
func AllNodes() netip.Addr { return allNodes }

// MulticastMAC is the Ethernet address of IPv6 multicast address a (RFC 2464 7):
// 33:33 and its last 32 bits.
func MulticastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// LinkLocal is the link-local address fe80::/64 a host derives from MAC by modified
// EUI-64 (RFC 4291 2.5.1, appendix A): what Linux configures by default.
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	return EUI64(netip.MustParsePrefix("fe80::/64"), mac)
}

// EUI64 is the address in /64 prefix whose interface identifier is MAC's modified
// EUI-64, as Neutron computes SLAAC addresses.
func EUI64(prefix netip.Prefix, mac net.HardwareAddr) netip.Addr {
	b := prefix.Masked().Addr().As16()
	if len(mac) != 6 {
		return netip.Addr{}
	}
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// RAPrefix is the prefix information option of a router advertisement (RFC 4861 4.6.2).
type RAPrefix struct {
	Prefix     netip.Prefix
	OnLink     bool // L: the prefix is on the link
	Autonomous bool // A: hosts configure an address in it by themselves (SLAAC)
	Valid      uint32
	Preferred  uint32 // lifetimes in seconds
}

// RouterAdvert is a router advertisement (RFC 4861 4.2).
type RouterAdvert struct {
	EthSrc, EthDst net.HardwareAddr
	Src, Dst       netip.Addr // Src a link-local address of the router
	CurHopLimit    uint8      // 0: unspecified
	Managed        bool       // M: addresses from DHCPv6
	Other          bool       // O: other configuration from DHCPv6
	RouterLifetime uint16     // seconds; 0: not a default router
	MTU            uint32     // 0: no MTU option
	Prefixes       []RAPrefix
}

// AppendRouterAdvert appends the untagged Ethernet frame of ra to b, with the source
// link-layer address option.
func AppendRouterAdvert(b []byte, ra *RouterAdvert) []byte {
	body := make([]byte, 0, 16+8+8+32*len(ra.Prefixes))
	var flags byte
	if ra.Managed {
		flags |= 0x80
	}
	if ra.Other {
		flags |= 0x40
	}
	body = append(body, ICMPv6RouterAdvertisement, 0, 0, 0, ra.CurHopLimit, flags)
	body = binary.BigEndian.AppendUint16(body, ra.RouterLifetime)
	body = append(body, 0, 0, 0, 0, 0, 0, 0, 0) // reachable time, retrans timer: unspecified
	body = append(body, ndOptSourceLL, 1)
	body = append(body, ra.EthSrc...)
	if ra.MTU != 0 {
		body = append(body, ndOptMTU, 1, 0, 0)
		body = binary.BigEndian.AppendUint32(body, ra.MTU)
	}
	for _, p := range ra.Prefixes {
		var pf byte
		if p.OnLink {
			pf |= 0x80
		}
		if p.Autonomous {
			pf |= 0x40
		}
		body = append(body, ndOptPrefix, 4, byte(p.Prefix.Bits()), pf)
		body = binary.BigEndian.AppendUint32(body, p.Valid)
		body = binary.BigEndian.AppendUint32(body, p.Preferred)
		body = append(body, 0, 0, 0, 0)
		a := p.Prefix.Masked().Addr().As16()
		body = append(body, a[:]...)
	}
	return appendICMPv6(b, ra.EthDst, ra.EthSrc, ra.Src, ra.Dst, body)
}

// appendICMPv6 appends an untagged Ethernet frame carrying ICMPv6 message body (its
// checksum field zero) from src to dst with hop limit 255, the checksum filled in.
func appendICMPv6(b []byte, dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, body []byte) []byte {
	b = append(b, dstMAC...)
	b = append(b, srcMAC...)
	b = binary.BigEndian.AppendUint16(b, EthTypeIPv6)
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	b = append(b, IPProtoICMPv6, ndHopLimit)
	s, d := src.As16(), dst.As16()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	start := len(b)
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[start+2:], ICMPv6Checksum(src, dst, b[start:]))
	return b
}

// ICMPv6Checksum is the checksum of ICMPv6 message msg from src to dst (RFC 4443 2.3).
// Over a message whose checksum field holds it, it is 0.
func ICMPv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	return IPv6Checksum(src, dst, IPProtoICMPv6, msg)
}

// IPv6Checksum is the checksum of upper-layer message msg of protocol proto (ICMPv6, UDP,
// TCP) from src to dst: over the IPv6 pseudo-header and the message (RFC 8200 8.1). Over a
// message whose checksum field holds it, it is 0.
func IPv6Checksum(src, dst netip.Addr, proto uint8, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint32(len(msg)) + uint32(proto)
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// AppendNeighborSolicit appends the frame of a neighbour solicitation from mac/src for
// target, to target's solicited-node multicast address, tagged with vlan unless it is 0
// (what a host sends to resolve target; src :: for duplicate address detection, then
// without the source link-layer address option).
func AppendNeighborSolicit(b []byte, vlan uint16, mac net.HardwareAddr, src, target netip.Addr) []byte {
	t := target.As16()
	dst := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	body := append([]byte{ICMPv6NeighborSolicitation, 0, 0, 0, 0, 0, 0, 0}, t[:]...)
	if !src.IsUnspecified() {
		body = append(body, ndOptSourceLL, 1)
		body = append(body, mac...)
	}
	return appendTagged(b, vlan, appendICMPv6(nil, MulticastMAC(dst), mac, src, dst, body))
}

// AppendRouterSolicit appends the frame of a router solicitation from mac/src to all
// routers (ff02::2), tagged with vlan unless it is 0.
func AppendRouterSolicit(b []byte, vlan uint16, mac net.HardwareAddr, src netip.Addr) []byte {
	dst := netip.AddrFrom16([16]byte{0xff, 0x02, 15: 2})
	body := []byte{ICMPv6RouterSolicitation, 0, 0, 0, 0, 0, 0, 0, ndOptSourceLL, 1}
	body = append(body, mac...)
	return appendTagged(b, vlan, appendICMPv6(nil, MulticastMAC(dst), mac, src, dst, body))
}

// appendTagged appends frame to b with an 802.1Q tag of vlan after its addresses, or as
// it is for vlan 0.
func appendTagged(b []byte, vlan uint16, frame []byte) []byte {
	if vlan == 0 {
		return append(b, frame...)
	}
	b = append(b, frame[:12]...)
	b = binary.BigEndian.AppendUint16(b, EthTypeVLAN)
	b = binary.BigEndian.AppendUint16(b, vlan&0x0fff)
	return append(b, frame[12:]...)
}
