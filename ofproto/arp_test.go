package ofproto

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestARPCodec(t *testing.T) {
	sha := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	spa, tpa := netip.MustParseAddr("10.0.1.5"), netip.MustParseAddr("10.0.1.6")
	for _, vlan := range []uint16{0, 7} {
		frame := AppendARPRequest(nil, vlan, sha, spa, tpa)
		req, err := ParseARPRequest(frame)
		if err != nil || req.VLAN != vlan || req.SHA.String() != sha.String() || req.SPA != spa || req.TPA != tpa {
			t.Fatalf("vlan %d: parsed %+v, %v", vlan, req, err)
		}
		// Every truncation is refused as not ARP, never a panic.
		for n := range len(frame) {
			if _, err := ParseARPRequest(frame[:n]); !errors.Is(err, ErrNotARP) {
				t.Fatalf("vlan %d: %d of %d bytes: %v", vlan, n, len(frame), err)
			}
		}
	}
	mac := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 2}
	req, _ := ParseARPRequest(AppendARPRequest(nil, 0, sha, spa, tpa))
	reply := ARPReply(req, mac)
	if len(reply) != 42 || net.HardwareAddr(reply[0:6]).String() != sha.String() || net.HardwareAddr(reply[6:12]).String() != mac.String() ||
		reply[21] != ARPOpReply || netip.AddrFrom4([4]byte(reply[28:32])) != tpa || netip.AddrFrom4([4]byte(reply[38:42])) != spa {
		t.Fatalf("reply %x", reply)
	}
	// A reply is not a request; nor is IPv4.
	if _, err := ParseARPRequest(reply); !errors.Is(err, ErrNotARP) {
		t.Errorf("a reply parsed as a request: %v", err)
	}
	ip := append(AppendARPRequest(nil, 0, sha, spa, tpa)[:12], 0x08, 0x00)
	if _, err := ParseARPRequest(append(ip, make([]byte, 28)...)); !errors.Is(err, ErrNotARP) {
		t.Errorf("IPv4 parsed as ARP: %v", err)
	}
}
