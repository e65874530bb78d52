// Package dhcp4 holds DHCPv4 (RFC 2131, 2132) as dvrflow's controller speaks it: a client's
// frame parsed as br-int sends it up (Ethernet, at most one 802.1Q tag, IPv4, UDP 68 -> 67,
// BOOTP, options), and the server's reply built as a whole frame for a packet-out. It knows
// nothing of the topology: what to answer is the apps' business.
package dhcp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/dvrflow/dvrflow/ofproto"
)

// MessageType is option 53.
type MessageType uint8

// Message types (RFC 2132 9.6).
const (
	Discover MessageType = 1
	Offer    MessageType = 2
	Request  MessageType = 3
	Decline  MessageType = 4
	Ack      MessageType = 5
	Nak      MessageType = 6
	Release  MessageType = 7
	Inform   MessageType = 8
)

func (t MessageType) String() string {
	switch t {
	case Discover:
		return "DISCOVER"
	case Offer:
		return "OFFER"
	case Request:
		return "REQUEST"
	case Decline:
		return "DECLINE"
	case Ack:
		return "ACK"
	case Nak:
		return "NAK"
	case Release:
		return "RELEASE"
	case Inform:
		return "INFORM"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Option codes the server reads or writes itself (RFC 2132, RFC 3442).
const (
	OptPad             uint8 = 0
	OptSubnetMask      uint8 = 1
	OptRouter          uint8 = 3
	OptDNSServers      uint8 = 6
	OptHostname        uint8 = 12
	OptDomainName      uint8 = 15
	OptMTU             uint8 = 26
	OptBroadcast       uint8 = 28
	OptRequestedIP     uint8 = 50
	OptLeaseTime       uint8 = 51
	OptOverload        uint8 = 52
	OptMessageType     uint8 = 53
	OptServerID        uint8 = 54
	OptParamRequest    uint8 = 55
	OptMessage         uint8 = 56
	OptMaxMessageSize  uint8 = 57
	OptRenewalTime     uint8 = 58
	OptRebindingTime   uint8 = 59
	OptClientID        uint8 = 61
	OptClasslessRoutes uint8 = 121
	OptEnd             uint8 = 255
)

// BOOTP fixed fields.
const (
	opBootRequest = 1
	opBootReply   = 2
	htypeEthernet = 1
	bootpLen      = 236 // op .. file, without the magic cookie
	flagBroadcast = 0x8000
	// MinMessage is the smallest DHCP message (BOOTP's 300 bytes) every client accepts.
	MinMessage = 300
	// minMaxSize is the smallest maximum datagram a client may announce (RFC 2132 9.10):
	// 576 bytes of IP, 548 of DHCP.
	minMaxSize = 576
)

var magicCookie = [4]byte{99, 130, 83, 99}

// Ports of DHCPv4.
const (
	ServerPort = 67
	ClientPort = 68
)

// ErrNotDHCP is returned for frames that are not a client's DHCPv4 message.
var ErrNotDHCP = errors.New("not a DHCPv4 client message")

// Message is a client's DHCP message as the controller reads it, with the frame's addresses.
type Message struct {
	VLAN   uint16           // the frame's 802.1Q VLAN, 0 when untagged
	SrcMAC net.HardwareAddr // Ethernet source
	DstIP  netip.Addr       // IPv4 destination (broadcast, or the server for a renewal)

	Type   MessageType
	XID    uint32
	Secs   uint16
	Flags  uint16
	CIAddr netip.Addr
	GIAddr netip.Addr
	CHAddr net.HardwareAddr // the client's hardware address (Ethernet only)

	RequestedIP  netip.Addr // option 50, invalid when absent
	ServerID     netip.Addr // option 54, invalid when absent
	ParamRequest []byte     // option 55
	ClientID     []byte     // option 61
	MaxSize      int        // option 57, 0 when absent
	Hostname     string     // option 12
}

// Broadcast reports whether the client asked for broadcast replies (the BOOTP flag).
func (m *Message) Broadcast() bool { return m.Flags&flagBroadcast != 0 }

// Parse reads a client's DHCPv4 message from an Ethernet frame: UDP from port 68 to 67 in an
// unfragmented IPv4 packet, BOOTREQUEST over Ethernet with the magic cookie and a message
// type. Options in the sname and file fields (option 52) are read too. Every length is
// checked: a malformed frame is an error, never a panic. The message's byte fields (MACs,
// parameter request list, client ID) are slices of frame, which the caller keeps as is.
func Parse(frame []byte) (*Message, error) {
	m := &Message{}
	hdr, payload, err := udpPayload(frame, ClientPort, ServerPort)
	if err != nil {
		return nil, err
	}
	m.VLAN, m.SrcMAC, m.DstIP = hdr.vlan, hdr.srcMAC, hdr.dstIP
	if err := m.parseBOOTP(payload); err != nil {
		return nil, err
	}
	return m, nil
}

// frameHeader is what Parse and ParseReply keep of the headers around a message.
type frameHeader struct {
	vlan   uint16
	srcMAC net.HardwareAddr
	dstMAC net.HardwareAddr
	srcIP  netip.Addr
	dstIP  netip.Addr
}

// udpPayload returns the payload of an Ethernet/IPv4/UDP frame from port sport to dport.
func udpPayload(frame []byte, sport, dport uint16) (frameHeader, []byte, error) {
	var h frameHeader
	vlan, et, ip, err := ofproto.EthPayload(frame)
	if err != nil {
		return h, nil, fmt.Errorf("%v: %w", err, ErrNotDHCP)
	}
	h.dstMAC = net.HardwareAddr(frame[0:6:6])
	h.srcMAC = net.HardwareAddr(frame[6:12:12])
	h.vlan = vlan
	if et != 0x0800 {
		return h, nil, fmt.Errorf("ethertype %#04x: %w", et, ErrNotDHCP)
	}
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return h, nil, fmt.Errorf("not IPv4: %w", ErrNotDHCP)
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < 20 || total < ihl+8 || total > len(ip) {
		return h, nil, fmt.Errorf("IPv4 header length %d, total %d of %d: %w", ihl, total, len(ip), ErrNotDHCP)
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return h, nil, fmt.Errorf("fragment: %w", ErrNotDHCP)
	}
	if ip[9] != 17 {
		return h, nil, fmt.Errorf("IP protocol %d: %w", ip[9], ErrNotDHCP)
	}
	h.srcIP = netip.AddrFrom4([4]byte(ip[12:16]))
	h.dstIP = netip.AddrFrom4([4]byte(ip[16:20]))
	udp := ip[ihl:total]
	if s, d := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:]); s != sport || d != dport {
		return h, nil, fmt.Errorf("UDP ports %d -> %d: %w", s, d, ErrNotDHCP)
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < 8 || ulen > len(udp) {
		return h, nil, fmt.Errorf("UDP length %d of %d: %w", ulen, len(udp), ErrNotDHCP)
	}
	return h, udp[8:ulen], nil
}

func (m *Message) parseBOOTP(b []byte) error {
	if len(b) < bootpLen+4 {
		return fmt.Errorf("BOOTP message of %d bytes: %w", len(b), ErrNotDHCP)
	}
	if b[0] != opBootRequest || b[1] != htypeEthernet || b[2] != 6 {
		return fmt.Errorf("op %d htype %d hlen %d: %w", b[0], b[1], b[2], ErrNotDHCP)
	}
	if [4]byte(b[bootpLen:bootpLen+4]) != magicCookie {
		return fmt.Errorf("no magic cookie: %w", ErrNotDHCP)
	}
	m.XID = binary.BigEndian.Uint32(b[4:])
	m.Secs = binary.BigEndian.Uint16(b[8:])
	m.Flags = binary.BigEndian.Uint16(b[10:])
	m.CIAddr = netip.AddrFrom4([4]byte(b[12:16]))
	m.GIAddr = netip.AddrFrom4([4]byte(b[24:28]))
	m.CHAddr = net.HardwareAddr(b[28:34:34])
	overload, err := m.parseOptions(b[bootpLen+4:])
	if err != nil {
		return err
	}
	if overload&1 != 0 {
		if _, err := m.parseOptions(b[108:236]); err != nil {
			return fmt.Errorf("options in file: %w", err)
		}
	}
	if overload&2 != 0 {
		if _, err := m.parseOptions(b[44:108]); err != nil {
			return fmt.Errorf("options in sname: %w", err)
		}
	}
	if m.Type == 0 {
		return fmt.Errorf("no message type: %w", ErrNotDHCP)
	}
	return nil
}

// concat returns the value of an option seen again (split, RFC 3396) as one: a new slice,
// never an append into the frame.
func concat(seen, v []byte) []byte {
	if seen == nil {
		return v[:len(v):len(v)]
	}
	return append(append(make([]byte, 0, len(seen)+len(v)), seen...), v...)
}

// parseOptions reads one options area and returns the value of option 52 in it.
func (m *Message) parseOptions(b []byte) (overload uint8, err error) {
	for i := 0; i < len(b); {
		code := b[i]
		if code == OptPad {
			i++
			continue
		}
		if code == OptEnd {
			return overload, nil
		}
		if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
			return 0, fmt.Errorf("option %d overruns its area: %w", code, ErrNotDHCP)
		}
		v := b[i+2 : i+2+int(b[i+1])]
		i += 2 + len(v)
		switch code {
		case OptMessageType:
			if len(v) != 1 {
				return 0, fmt.Errorf("message type of %d bytes: %w", len(v), ErrNotDHCP)
			}
			m.Type = MessageType(v[0])
		case OptRequestedIP:
			if len(v) == 4 {
				m.RequestedIP = netip.AddrFrom4([4]byte(v))
			}
		case OptServerID:
			if len(v) == 4 {
				m.ServerID = netip.AddrFrom4([4]byte(v))
			}
		case OptParamRequest:
			m.ParamRequest = concat(m.ParamRequest, v)
		case OptClientID:
			m.ClientID = concat(m.ClientID, v)
		case OptMaxMessageSize:
			if len(v) == 2 {
				m.MaxSize = int(binary.BigEndian.Uint16(v))
			}
		case OptHostname:
			m.Hostname = string(v)
		case OptOverload:
			if len(v) == 1 {
				overload = v[0]
			}
		}
	}
	return overload, nil
}
