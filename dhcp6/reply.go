// The server's reply: options encoded, the message, and the whole frame around it.

package dhcp6

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Option is one option of a reply: its code and its value, already encoded.
type Option struct {
	Code uint16
	Data []byte
}

// Answer is the server's message to a client (ADVERTISE or REPLY): its type, the client's
// transaction ID, and its options in the order they go on the wire.
type Answer struct {
	Type    MessageType
	XID     uint32
	Options []Option
}

// Get returns the value of the first option code.
func (r *Answer) Get(code uint16) ([]byte, bool) {
	for _, o := range r.Options {
		if o.Code == code {
			return o.Data, true
		}
	}
	return nil, false
}

// Frame is a reply with the addresses it travels with.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	SrcIP, DstIP   netip.Addr
	Answer         *Answer
}

// DUIDLL is the DUID-LL (RFC 8415 11.4) of an Ethernet interface: type 3, hardware type 1,
// the MAC.
func DUIDLL(mac net.HardwareAddr) []byte { return AppendDUIDLL(make([]byte, 0, 4+len(mac)), mac) }

// AppendDUIDLL appends DUIDLL(mac) to b.
func AppendDUIDLL(b []byte, mac net.HardwareAddr) []byte {
	b = append(b, 0, 3, 0, 1)
	return append(b, mac...)
}

// AppendIA appends the value of IA_NA option ia to b: its fixed part, an IA Address option
// per address, then its Status Code option if it has one.
func AppendIA(b []byte, ia *IA) []byte {
	b = binary.BigEndian.AppendUint32(b, ia.IAID)
	b = binary.BigEndian.AppendUint32(b, ia.T1)
	b = binary.BigEndian.AppendUint32(b, ia.T2)
	for _, a := range ia.Addrs {
		b = binary.BigEndian.AppendUint16(b, OptIAAddr)
		b = binary.BigEndian.AppendUint16(b, iaAddrLen)
		v := a.Addr.As16()
		b = append(b, v[:]...)
		b = binary.BigEndian.AppendUint32(b, a.Preferred)
		b = binary.BigEndian.AppendUint32(b, a.Valid)
	}
	if ia.Status != nil {
		b = binary.BigEndian.AppendUint16(b, OptStatusCode)
		b = binary.BigEndian.AppendUint16(b, uint16(2+len(ia.Status.Message)))
		b = AppendStatus(b, ia.Status.Code, ia.Status.Message)
	}
	return b
}

// AppendStatus appends the value of a Status Code option to b.
func AppendStatus(b []byte, code StatusCode, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, msg...)
}

// AppendAddrs appends IPv6 addresses to b, as the DNS Recursive Name Server option holds
// them (IPv4 and invalid ones are left out).
func AppendAddrs(b []byte, addrs ...netip.Addr) []byte {
	for _, a := range addrs {
		if a.Is6() && !a.Is4In6() {
			v := a.As16()
			b = append(b, v[:]...)
		}
	}
	return b
}

// AppendDomains appends domain names to b as the Domain Search List option holds them:
// RFC 1035 labels, uncompressed (RFC 8415 10). A name with an empty or over-long label
// is left out.
func AppendDomains(b []byte, names ...string) []byte {
names:
	for _, n := range names {
		n = strings.TrimSuffix(n, ".")
		start := len(b)
		for l := range strings.SplitSeq(n, ".") {
			if l == "" || len(l) > 63 {
				b = b[:start]
				continue names
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
		b = append(b, 0)
	}
	return b
}

// AppendMessage appends the DHCPv6 message of r to b.
func (r *Answer) AppendMessage(b []byte) []byte {
	b = append(b, byte(r.Type), byte(r.XID>>16), byte(r.XID>>8), byte(r.XID))
	for _, o := range r.Options {
		b = binary.BigEndian.AppendUint16(b, o.Code)
		b = binary.BigEndian.AppendUint16(b, uint16(len(o.Data)))
		b = append(b, o.Data...)
	}
	return b
}

// hopLimit is the hop limit of the server's replies (Linux's default for unicast).
const hopLimit = 64

// AppendFrame appends the untagged Ethernet frame of f (IPv6, UDP 547 -> 546) to b, its UDP
// checksum filled in.
func (f *Frame) AppendFrame(b []byte) []byte {
	b, ipStart := appendHeaders(b, f.DstMAC, f.SrcMAC, f.SrcIP, f.DstIP, ServerPort, ClientPort)
	return finishUDP(f.Answer.AppendMessage(b), ipStart)
}

// appendHeaders appends the Ethernet, IPv6 and UDP headers of an untagged frame to b, its
// lengths and checksum left for finishUDP, and returns where the IPv6 header starts.
func appendHeaders(b []byte, dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16) ([]byte, int) {
	b = append(b, dstMAC...)
	b = append(b, srcMAC...)
	b = binary.BigEndian.AppendUint16(b, 0x86dd)
	ipStart := len(b)
	b = append(b, 0x60, 0, 0, 0, 0, 0, 17, hopLimit)
	s, d := src.As16(), dst.As16()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	return append(b, 0, 0, 0, 0), ipStart
}

// finishUDP fills in the lengths and the UDP checksum of the packet at b[ipStart:], whose
// payload has been appended.
func finishUDP(b []byte, ipStart int) []byte {
	udpStart := ipStart + ipv6Header
	n := len(b) - udpStart
	binary.BigEndian.PutUint16(b[ipStart+4:], uint16(n))
	binary.BigEndian.PutUint16(b[udpStart+4:], uint16(n))
	binary.BigEndian.PutUint16(b[udpStart+6:], 0)
	c := udpChecksum(b[ipStart:])
	if c == 0 {
		c = 0xffff // 0 is no checksum, which IPv6 forbids
	}
	binary.BigEndian.PutUint16(b[udpStart+6:], c)
	return b
}

// udpChecksum is the checksum of the UDP datagram of IPv6 packet ip (no extension header):
// 0 when the checksum in it is right.
func udpChecksum(ip []byte) uint16 {
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	return ofproto.IPv6Checksum(src, dst, 17, ip[ipv6Header:])
}
