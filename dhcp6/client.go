// The client's side, for the simulated clients of tests and benchmarks: a request frame
// built, a server's reply read back.

package dhcp6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// MulticastMAC is the Ethernet address of AllServers (RFC 2464 7).
var MulticastMAC = net.HardwareAddr{0x33, 0x33, 0, 1, 0, 2}

// AppendRequest appends the untagged frame of client message m, from m.SrcMAC and m.SrcIP
// to m.DstIP (AllServers when unset) at dstMAC (AllServers' when nil). Only the fields
// Parse reads are encoded; each IA_NA's addresses go with the lifetimes they hold.
func AppendRequest(b []byte, m *Message, dstMAC net.HardwareAddr) []byte {
	dst := m.DstIP
	if !dst.IsValid() {
		dst = AllServers
	}
	if dstMAC == nil {
		dstMAC = MulticastMAC
	}
	b, ipStart := appendHeaders(b, dstMAC, m.SrcMAC, m.SrcIP, dst, ClientPort, ServerPort)
	b = append(b, byte(m.Type), byte(m.XID>>16), byte(m.XID>>8), byte(m.XID))
	opt := func(code uint16, v []byte) {
		b = binary.BigEndian.AppendUint16(b, code)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	if m.ClientID != nil {
		opt(OptClientID, m.ClientID)
	}
	if m.ServerID != nil {
		opt(OptServerID, m.ServerID)
	}
	for i := range m.IANA {
		opt(OptIANA, AppendIA(nil, &m.IANA[i]))
	}
	if m.ORO != nil {
		opt(OptORO, m.ORO)
	}
	opt(OptElapsedTime, binary.BigEndian.AppendUint16(nil, m.ElapsedTime))
	if m.RapidCommit {
		opt(OptRapidCommit, nil)
	}
	return finishUDP(b, ipStart)
}

// ParseReply reads a server's reply frame back: its addresses, type, transaction ID and
// options (values copied out of frame), each option checked for its length.
func ParseReply(frame []byte) (*Frame, error) {
	h, b, err := udpPayload(frame, ServerPort, ClientPort)
	if err != nil {
		return nil, err
	}
	if len(b) < msgHeader {
		return nil, fmt.Errorf("message of %d bytes: %w", len(b), ErrNotDHCP)
	}
	r := &Answer{Type: MessageType(b[0]), XID: uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])}
	if r.Type != Advertise && r.Type != Reply {
		return nil, fmt.Errorf("message type %s: %w", r.Type, ErrNotDHCP)
	}
	err = walkOptions(b[msgHeader:], func(code uint16, v []byte) error {
		r.Options = append(r.Options, Option{Code: code, Data: append([]byte(nil), v...)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Frame{SrcMAC: h.srcMAC, DstMAC: h.dstMAC, SrcIP: h.srcIP, DstIP: h.dstIP, Answer: r}, nil
}

// ParseIA reads the value of an IA_NA option of a reply.
func ParseIA(v []byte) (IA, error) {
	ia, err := parseIA(v)
	if err != nil && !errors.Is(err, ErrNotDHCP) {
		err = fmt.Errorf("%w: %w", err, ErrNotDHCP)
	}
	return ia, err
}

// ParseStatus reads the value of a Status Code option.
func ParseStatus(v []byte) (Status, error) {
	s, err := parseStatus(v)
	if err != nil {
		return s, fmt.Errorf("%w: %w", err, ErrNotDHCP)
	}
	return s, nil
}
