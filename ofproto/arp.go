// ARP frames: requests parsed as they reach the controller, replies and requests built.

package ofproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ARP operations.
const (
	ARPOpRequest = 1
	ARPOpReply   = 2
)

// ARPRequest is a parsed ARP request, as it reaches the controller from ARP_RESPONDER
// (tagged with the local VLAN of its network).
type ARPRequest struct {
	VLAN uint16
	SHA  net.HardwareAddr
	SPA  netip.Addr
	TPA  netip.Addr
}

// ErrNotARP is returned by ParseARPRequest for frames that are not IPv4-over-Ethernet ARP
// requests.
var ErrNotARP = errors.New("not an Ethernet/IPv4 ARP request")

// ParseARPRequest parses an Ethernet frame (with at most one 802.1Q tag) carrying an ARP
// request.
func ParseARPRequest(frame []byte) (ARPRequest, error) {
	var r ARPRequest
	vlan, et, a, err := EthPayload(frame)
	if err != nil {
		return r, fmt.Errorf("%w: %w", ErrNotARP, err)
	}
	r.VLAN = vlan
	if et != EthTypeARP || len(a) < 28 {
		return r, ErrNotARP
	}
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != 0x0800 || a[4] != 6 || a[5] != 4 ||
		binary.BigEndian.Uint16(a[6:]) != ARPOpRequest {
		return r, ErrNotARP
	}
	r.SHA = net.HardwareAddr(append([]byte(nil), a[8:14]...))
	r.SPA = netip.AddrFrom4([4]byte(a[14:18]))
	r.TPA = netip.AddrFrom4([4]byte(a[24:28]))
	return r, nil
}

// EthPayload splits an Ethernet frame with at most one 802.1Q tag into the tag's VLAN ID
// (0 without one), the ethertype and the payload.
func EthPayload(frame []byte) (vlan, ethType uint16, payload []byte, err error) {
	if len(frame) < 14 {
		return 0, 0, nil, fmt.Errorf("frame of %d bytes", len(frame))
	}
	ethType = binary.BigEndian.Uint16(frame[12:])
	if ethType != EthTypeVLAN {
		return 0, ethType, frame[14:], nil
	}
	if len(frame) < 18 {
		return 0, 0, nil, errors.New("truncated VLAN header")
	}
	return binary.BigEndian.Uint16(frame[14:]) & 0x0fff, binary.BigEndian.Uint16(frame[16:]), frame[18:], nil
}

// ARPReply builds the untagged Ethernet frame answering req with mac.
func ARPReply(req ARPRequest, mac net.HardwareAddr) []byte {
	b := make([]byte, 0, 42)
	b = append(b, req.SHA...)
	b = append(b, mac...)
	b = binary.BigEndian.AppendUint16(b, EthTypeARP)
	b = binary.BigEndian.AppendUint16(b, 1)      // htype Ethernet
	b = binary.BigEndian.AppendUint16(b, 0x0800) // ptype IPv4
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, ARPOpReply)
	b = append(b, mac...)
	spa := req.TPA.As4()
	b = append(b, spa[:]...)
	b = append(b, req.SHA...)
	tpa := req.SPA.As4()
	b = append(b, tpa[:]...)
	return b
}

// AppendARPRequest appends the broadcast Ethernet frame of an ARP request from sha/spa
// for tpa, tagged with vlan unless it is 0.
func AppendARPRequest(b []byte, vlan uint16, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, sha...)
	if vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, EthTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, vlan&0x0fff)
	}
	b = binary.BigEndian.AppendUint16(b, EthTypeARP)
	b = append(b, 0, 1, 8, 0, 6, 4)
	b = binary.BigEndian.AppendUint16(b, ARPOpRequest)
	b = append(b, sha...)
	s4, t4 := spa.As4(), tpa.As4()
	b = append(b, s4[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, t4[:]...)
}
