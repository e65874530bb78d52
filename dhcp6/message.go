// Package dhcp6 holds DHCPv6 (RFC 8415) as dvrflow's controller speaks it: a client's frame
// parsed as br-int sends it up (Ethernet, at most one 802.1Q tag, IPv6 without extension
// headers, UDP 546 -> 547, a client message and its options), and the server's reply built
// as a whole frame for a packet-out. The options are those a server answering from the
// topology needs: Client and Server Identifier, IA_NA with IA Address, Option Request,
// Elapsed Time, Rapid Commit, Status Code, Preference, DNS Recursive Name Server (RFC
// 3646) and Domain Search List. It knows nothing of the topology: what to answer is the
// apps' business.
package dhcp6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/dvrflow/dvrflow/ofproto"
)

// MessageType is the first byte of a DHCPv6 message.
type MessageType uint8

// Message types (RFC 8415 7.3).
const (
	Solicit            MessageType = 1
	Advertise          MessageType = 2
	Request            MessageType = 3
	Confirm            MessageType = 4
	Renew              MessageType = 5
	Rebind             MessageType = 6
	Reply              MessageType = 7
	Release            MessageType = 8
	Decline            MessageType = 9
	Reconfigure        MessageType = 10
	InformationRequest MessageType = 11
	RelayForw          MessageType = 12
	RelayRepl          MessageType = 13
)

func (t MessageType) String() string {
	switch t {
	case Solicit:
		return "SOLICIT"
	case Advertise:
		return "ADVERTISE"
	case Request:
		return "REQUEST"
	case Confirm:
		return "CONFIRM"
	case Renew:
		return "RENEW"
	case Rebind:
		return "REBIND"
	case Reply:
		return "REPLY"
	case Release:
		return "RELEASE"
	case Decline:
		return "DECLINE"
	case Reconfigure:
		return "RECONFIGURE"
	case InformationRequest:
		return "INFORMATION-REQUEST"
	case RelayForw:
		return "RELAY-FORW"
	case RelayRepl:
		return "RELAY-REPL"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Option codes the server reads or writes (RFC 8415 21, RFC 3646).
const (
	OptClientID     uint16 = 1
	OptServerID     uint16 = 2
	OptIANA         uint16 = 3
	OptIATA         uint16 = 4
	OptIAAddr       uint16 = 5
	OptORO          uint16 = 6
	OptPreference   uint16 = 7
	OptElapsedTime  uint16 = 8
	OptStatusCode   uint16 = 13
	OptRapidCommit  uint16 = 14
	OptDNSServers   uint16 = 23
	OptDomainSearch uint16 = 24
)

// StatusCode is the value of a Status Code option.
type StatusCode uint16

// Status codes (RFC 8415 21.13).
const (
	StatusSuccess      StatusCode = 0
	StatusUnspecFail   StatusCode = 1
	StatusNoAddrsAvail StatusCode = 2
	StatusNoBinding    StatusCode = 3
	StatusNotOnLink    StatusCode = 4
	StatusUseMulticast StatusCode = 5
)

// Ports of DHCPv6.
const (
	ClientPort = 546
	ServerPort = 547
)

// AllServers is ff02::1:2, All_DHCP_Relay_Agents_and_Servers, where clients send.
var AllServers = netip.AddrFrom16([16]byte{0xff, 0x02, 13: 1, 15: 2})

// Lengths of fixed parts.
const (
	ipv6Header = 40
	udpHeader  = 8
	msgHeader  = 4  // type and transaction ID
	iaNAFixed  = 12 // IAID, T1, T2
	iaAddrLen  = 24 // address, preferred and valid lifetimes
	// maxDUID is the longest DUID (RFC 8415 11.1: 128 octets after its 2-octet type).
	maxDUID = 130
)

// ErrNotDHCP is returned for frames that are not a client's DHCPv6 message.
var ErrNotDHCP = errors.New("not a DHCPv6 client message")

// IAAddr is an IA Address option: an address with its lifetimes in seconds.
type IAAddr struct {
	Addr             netip.Addr
	Preferred, Valid uint32
}

// IA is an IA_NA option: an identity association of non-temporary addresses, with its
// renewal (T1) and rebinding (T2) times in seconds, its addresses and, in a reply, a status.
type IA struct {
	IAID   uint32
	T1, T2 uint32
	Addrs  []IAAddr
	Status *Status // nil: none (success)
}

// Status is a Status Code option.
type Status struct {
	Code    StatusCode
	Message string
}

// Message is a client's DHCPv6 message as the controller reads it, with the frame's
// addresses.
type Message struct {
	VLAN   uint16           // the frame's 802.1Q VLAN, 0 when untagged
	SrcMAC net.HardwareAddr // Ethernet source
	SrcIP  netip.Addr       // the client's link-local address
	DstIP  netip.Addr       // AllServers, or a server's address

	Type MessageType
	XID  uint32 // the 24-bit transaction ID

	ClientID    []byte // option 1, nil when absent
	ServerID    []byte // option 2, nil when absent
	IANA        []IA   // option 3, each (addresses without lifetimes as the client sends them)
	ORO         []byte // option 6: the requested option codes, two bytes each
	RapidCommit bool   // option 14
	ElapsedTime uint16 // option 8, hundredths of a second
}

// Requested reports whether the client listed option code in its Option Request option.
func (m *Message) Requested(code uint16) bool {
	for i := 0; i+1 < len(m.ORO); i += 2 {
		if binary.BigEndian.Uint16(m.ORO[i:]) == code {
			return true
		}
	}
	return false
}

// Addrs yields every address of every IA_NA of the message.
func (m *Message) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, ia := range m.IANA {
		for _, a := range ia.Addrs {
			out = append(out, a.Addr)
		}
	}
	return out
}

// Parse reads a client's DHCPv6 message from an Ethernet frame: UDP from port 546 to 547
// straight after the IPv6 header (no extension header), a message type a client sends
// (not a relay's), options well formed. Every length is checked: a malformed frame is an
// error, never a panic. The UDP checksum is not checked: a VM's virtio interface may hand
// over a frame whose checksum its host was to fill in, and the switch matched the frame.
// The message's byte fields (MAC, DUIDs, option request) are slices of frame, which the
// caller keeps as is.
func Parse(frame []byte) (*Message, error) {
	h, payload, err := udpPayload(frame, ClientPort, ServerPort)
	if err != nil {
		return nil, err
	}
	m := &Message{VLAN: h.vlan, SrcMAC: h.srcMAC, SrcIP: h.srcIP, DstIP: h.dstIP}
	if len(payload) < msgHeader {
		return nil, fmt.Errorf("message of %d bytes: %w", len(payload), ErrNotDHCP)
	}
	m.Type = MessageType(payload[0])
	switch m.Type {
	case Solicit, Request, Confirm, Renew, Rebind, Release, Decline, InformationRequest:
	default:
		return nil, fmt.Errorf("message type %s: %w", m.Type, ErrNotDHCP)
	}
	m.XID = uint32(payload[1])<<16 | uint32(payload[2])<<8 | uint32(payload[3])
	err = walkOptions(payload[msgHeader:], func(code uint16, v []byte) error {
		switch code {
		case OptClientID:
			if len(v) < 2 || len(v) > maxDUID {
				return fmt.Errorf("client ID of %d bytes", len(v))
			}
			if m.ClientID == nil {
				m.ClientID = v
			}
		case OptServerID:
			if len(v) < 2 || len(v) > maxDUID {
				return fmt.Errorf("server ID of %d bytes", len(v))
			}
			if m.ServerID == nil {
				m.ServerID = v
			}
		case OptIANA:
			ia, err := parseIA(v)
			if err != nil {
				return err
			}
			m.IANA = append(m.IANA, ia)
		case OptORO:
			if len(v)%2 != 0 {
				return fmt.Errorf("option request of %d bytes", len(v))
			}
			m.ORO = v
		case OptRapidCommit:
			m.RapidCommit = true
		case OptElapsedTime:
			if len(v) != 2 {
				return fmt.Errorf("elapsed time of %d bytes", len(v))
			}
			m.ElapsedTime = binary.BigEndian.Uint16(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Type, err)
	}
	return m, nil
}

// walkOptions calls fn with each option of b, in order; it stops at the first error, and
// at an option that overruns b.
func walkOptions(b []byte, fn func(code uint16, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("%d bytes after the last option: %w", len(b), ErrNotDHCP)
		}
		code, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if 4+n > len(b) {
			return fmt.Errorf("option %d of %d bytes overruns its message: %w", code, n, ErrNotDHCP)
		}
		if err := fn(code, b[4:4+n:4+n]); err != nil {
			if !errors.Is(err, ErrNotDHCP) {
				err = fmt.Errorf("%w: %w", err, ErrNotDHCP)
			}
			return err
		}
		b = b[4+n:]
	}
	return nil
}

// parseIA reads the value of an IA_NA option: its fixed part, its IA Address options (their
// own options left aside) and its Status Code.
func parseIA(v []byte) (IA, error) {
	var ia IA
	if len(v) < iaNAFixed {
		return ia, fmt.Errorf("IA_NA of %d bytes", len(v))
	}
	ia.IAID = binary.BigEndian.Uint32(v)
	ia.T1 = binary.BigEndian.Uint32(v[4:])
	ia.T2 = binary.BigEndian.Uint32(v[8:])
	err := walkOptions(v[iaNAFixed:], func(code uint16, o []byte) error {
		switch code {
		case OptIAAddr:
			if len(o) < iaAddrLen {
				return fmt.Errorf("IA address of %d bytes", len(o))
			}
			ia.Addrs = append(ia.Addrs, IAAddr{Addr: netip.AddrFrom16([16]byte(o[:16])),
				Preferred: binary.BigEndian.Uint32(o[16:]), Valid: binary.BigEndian.Uint32(o[20:])})
			return walkOptions(o[iaAddrLen:], func(uint16, []byte) error { return nil })
		case OptStatusCode:
			s, err := parseStatus(o)
			if err != nil {
				return err
			}
			ia.Status = &s
		}
		return nil
	})
	if err != nil {
		return ia, fmt.Errorf("IA_NA %#x: %w", ia.IAID, err)
	}
	return ia, nil
}

func parseStatus(v []byte) (Status, error) {
	if len(v) < 2 {
		return Status{}, fmt.Errorf("status code of %d bytes", len(v))
	}
	return Status{Code: StatusCode(binary.BigEndian.Uint16(v)), Message: string(v[2:])}, nil
}

// frameHeader is what Parse and ParseReply keep of the headers around a message.
type frameHeader struct {
	vlan           uint16
	srcMAC, dstMAC net.HardwareAddr
	srcIP, dstIP   netip.Addr
}

// udpPayload returns the payload of an Ethernet/IPv6/UDP frame from port sport to dport.
func udpPayload(frame []byte, sport, dport uint16) (frameHeader, []byte, error) {
	var h frameHeader
	vlan, et, ip, err := ofproto.EthPayload(frame)
	if err != nil {
		return h, nil, fmt.Errorf("%v: %w", err, ErrNotDHCP)
	}
	h.dstMAC = net.HardwareAddr(frame[0:6:6])
	h.srcMAC = net.HardwareAddr(frame[6:12:12])
	h.vlan = vlan
	if et != 0x86dd {
		return h, nil, fmt.Errorf("ethertype %#04x: %w", et, ErrNotDHCP)
	}
	if len(ip) < ipv6Header || ip[0]>>4 != 6 {
		return h, nil, fmt.Errorf("not IPv6: %w", ErrNotDHCP)
	}
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	if plen < udpHeader || ipv6Header+plen > len(ip) {
		return h, nil, fmt.Errorf("IPv6 payload length %d of %d: %w", plen, len(ip)-ipv6Header, ErrNotDHCP)
	}
	if ip[6] != 17 {
		return h, nil, fmt.Errorf("IPv6 next header %d: %w", ip[6], ErrNotDHCP)
	}
	h.srcIP = netip.AddrFrom16([16]byte(ip[8:24]))
	h.dstIP = netip.AddrFrom16([16]byte(ip[24:40]))
	udp := ip[ipv6Header : ipv6Header+plen]
	if s, d := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:]); s != sport || d != dport {
		return h, nil, fmt.Errorf("UDP ports %d -> %d: %w", s, d, ErrNotDHCP)
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < udpHeader || ulen > len(udp) {
		return h, nil, fmt.Errorf("UDP length %d of %d: %w", ulen, len(udp), ErrNotDHCP)
	}
	return h, udp[udpHeader:ulen], nil
}
