package ofproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
)

var (
	vmMAC     = net.HardwareAddr{0xfa, 0x16, 0x3e, 0x00, 0x01, 0x05}
	targetMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0x00, 0x01, 0x06}
)

// icmp6 decodes an untagged Ethernet frame of ICMPv6 by hand, checking what every ND
// message must hold (IPv6, next header 58, hop limit 255, a payload length that fits, a
// checksum that sums, with the pseudo-header, to all ones), and returns its addresses and
// the ICMPv6 message.
func icmp6(t *testing.T, frame []byte) (dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, msg []byte) {
	t.Helper()
	if len(frame) < 14+40+8 || binary.BigEndian.Uint16(frame[12:]) != 0x86dd {
		t.Fatalf("not an untagged IPv6 frame: % x", frame)
	}
	ip := frame[14:]
	if ip[0] != 0x60 || ip[6] != 58 || ip[7] != 255 {
		t.Fatalf("IPv6 header: version %d, next header %d, hop limit %d", ip[0]>>4, ip[6], ip[7])
	}
	if n := int(binary.BigEndian.Uint16(ip[4:])); n != len(ip)-40 {
		t.Fatalf("payload length %d, %d bytes follow", n, len(ip)-40)
	}
	msg = ip[40:]
	// The pseudo-header (RFC 8200 8.1) and the message, summed as 16-bit words.
	pseudo := append(append([]byte{}, ip[8:40]...), 0, 0, byte(len(msg)>>8), byte(len(msg)), 0, 0, 0, 58)
	var sum uint64
	for _, part := range [][]byte{pseudo, msg} {
		for i := 0; i < len(part); i += 2 {
			w := uint64(part[i]) << 8
			if i+1 < len(part) {
				w |= uint64(part[i+1])
			}
			sum += w
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Errorf("ICMPv6 checksum %#04x does not sum to all ones (%#x)", binary.BigEndian.Uint16(msg[2:]), sum)
	}
	return frame[0:6], frame[6:12], netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])), msg
}

func TestNeighborSolicitParsesAndIsAnswered(t *testing.T) {
	src := netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:105")
	target := netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:106")
	frame := AppendNeighborSolicit(nil, 5, vmMAC, src, target)
	ns, err := ParseND(frame)
	if err != nil {
		t.Fatal(err)
	}
	want := NDMessage{VLAN: 5, Type: ICMPv6NeighborSolicitation, EthSrc: vmMAC, Src: src,
		Dst: netip.MustParseAddr("ff02::1:ff00:106"), Target: target, SLL: vmMAC}
	if ns.VLAN != want.VLAN || ns.Type != want.Type || !bytes.Equal(ns.EthSrc, want.EthSrc) || ns.Src != want.Src ||
		ns.Dst != want.Dst || ns.Target != want.Target || !bytes.Equal(ns.SLL, want.SLL) {
		t.Errorf("parsed %+v, want %+v", ns, want)
	}
	if !bytes.Equal(frame[:6], []byte{0x33, 0x33, 0xff, 0x00, 0x01, 0x06}) {
		t.Errorf("solicitation to %s", net.HardwareAddr(frame[:6]))
	}

	na := NeighborAdvert(ns, targetMAC, NASolicited|NAOverride|NARouter)
	dstMAC, srcMAC, s, d, msg := icmp6(t, na)
	if !bytes.Equal(dstMAC, vmMAC) || !bytes.Equal(srcMAC, targetMAC) || s != target || d != src {
		t.Errorf("advertisement %s -> %s, %s -> %s", srcMAC, dstMAC, s, d)
	}
	if len(msg) != 32 || msg[0] != 136 || msg[1] != 0 {
		t.Fatalf("advertisement message % x", msg)
	}
	if msg[4] != 0xe0 {
		t.Errorf("flags %#02x, want R, S and O (0xe0)", msg[4])
	}
	if got := netip.AddrFrom16([16]byte(msg[8:24])); got != target {
		t.Errorf("target %s", got)
	}
	if msg[24] != 2 || msg[25] != 1 || !bytes.Equal(msg[26:32], targetMAC) {
		t.Errorf("target link-layer address option % x", msg[24:])
	}

	// Duplicate address detection (from ::) is answered to all nodes, not solicited.
	dad, err := ParseND(AppendNeighborSolicit(nil, 0, vmMAC, netip.IPv6Unspecified(), target))
	if err != nil {
		t.Fatal(err)
	}
	if dad.SLL != nil || !dad.Src.IsUnspecified() {
		t.Errorf("DAD parsed as %+v", dad)
	}
	dstMAC, _, _, d, msg = icmp6(t, NeighborAdvert(dad, targetMAC, NASolicited|NAOverride))
	if d != netip.MustParseAddr("ff02::1") || !bytes.Equal(dstMAC, []byte{0x33, 0x33, 0, 0, 0, 1}) || msg[4] != 0x20 {
		t.Errorf("answer to DAD: to %s %s, flags %#02x", dstMAC, d, msg[4])
	}
}

func TestParseNDRefuses(t *testing.T) {
	src := netip.MustParseAddr("fe80::f816:3eff:fe00:105")
	ns := AppendNeighborSolicit(nil, 0, vmMAC, src, netip.MustParseAddr("fe80::1"))
	hop := bytes.Clone(ns)
	hop[14+7] = 64 // forwarded by a router: not ND
	ra := AppendRouterAdvert(nil, &RouterAdvert{EthSrc: vmMAC, EthDst: MulticastMAC(AllNodes()), Src: src, Dst: AllNodes()})
	arp := AppendARPRequest(nil, 0, vmMAC, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
	for name, f := range map[string][]byte{"hop limit": hop, "RA": ra, "ARP": arp, "short": ns[:60]} {
		if _, err := ParseND(f); !errors.Is(err, ErrNotND) {
			t.Errorf("%s: %v", name, err)
		}
	}
	rs, err := ParseND(AppendRouterSolicit(nil, 7, vmMAC, src))
	if err != nil || rs.Type != ICMPv6RouterSolicitation || rs.VLAN != 7 || rs.Src != src || !bytes.Equal(rs.SLL, vmMAC) {
		t.Errorf("router solicitation parsed as %+v, %v", rs, err)
	}
}

func TestRouterAdvertEncoding(t *testing.T) {
	gwMAC := net.HardwareAddr{0xfa, 0x16, 0x3e, 0x00, 0x16, 0x01}
	ll := LinkLocal(gwMAC)
	if ll != netip.MustParseAddr("fe80::f816:3eff:fe00:1601") {
		t.Errorf("link-local of %s: %s", gwMAC, ll)
	}
	ra := &RouterAdvert{EthSrc: gwMAC, EthDst: MulticastMAC(AllNodes()), Src: ll, Dst: AllNodes(), CurHopLimit: 64,
		Managed: false, Other: true, RouterLifetime: 1800, MTU: 1450,
		Prefixes: []RAPrefix{{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), OnLink: true, Autonomous: true, Valid: 86400, Preferred: 14400}}}
	dstMAC, srcMAC, s, d, msg := icmp6(t, AppendRouterAdvert(nil, ra))
	if !bytes.Equal(dstMAC, []byte{0x33, 0x33, 0, 0, 0, 1}) || !bytes.Equal(srcMAC, gwMAC) || s != ll || d != AllNodes() {
		t.Errorf("advertisement %s -> %s, %s -> %s", srcMAC, dstMAC, s, d)
	}
	if len(msg) != 16+8+8+32 || msg[0] != 134 || msg[1] != 0 || msg[4] != 64 || msg[5] != 0x40 ||
		binary.BigEndian.Uint16(msg[6:]) != 1800 {
		t.Fatalf("advertisement header % x", msg[:16])
	}
	opts := msg[16:]
	if opts[0] != 1 || opts[1] != 1 || !bytes.Equal(opts[2:8], gwMAC) {
		t.Errorf("source link-layer address option % x", opts[:8])
	}
	if opts[8] != 5 || opts[9] != 1 || binary.BigEndian.Uint32(opts[12:]) != 1450 {
		t.Errorf("MTU option % x", opts[8:16])
	}
	pi := opts[16:]
	if pi[0] != 3 || pi[1] != 4 || pi[2] != 64 || pi[3] != 0xc0 || binary.BigEndian.Uint32(pi[4:]) != 86400 ||
		binary.BigEndian.Uint32(pi[8:]) != 14400 || netip.AddrFrom16([16]byte(pi[16:32])) != netip.MustParseAddr("2001:db8:1::") {
		t.Errorf("prefix information option % x", pi)
	}
	// M for stateful DHCPv6, no prefix to autoconfigure.
	ra.Managed, ra.Other, ra.Prefixes[0].Autonomous = true, false, false
	_, _, _, _, msg = icmp6(t, AppendRouterAdvert(nil, ra))
	if msg[5] != 0x80 || msg[16+16+3] != 0x80 {
		t.Errorf("stateful: flags %#02x, prefix flags %#02x", msg[5], msg[16+16+3])
	}
}

func TestEUI64(t *testing.T) {
	// As Neutron's ipv6_utils.get_ipv6_addr_by_EUI64 (the API's SLAAC addresses).
	got := EUI64(netip.MustParsePrefix("2001:db8:1::/64"), vmMAC)
	if want := netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:105"); got != want {
		t.Errorf("EUI-64 of %s: %s, want %s", vmMAC, got, want)
	}
}

// FuzzParseND: ParseND never panics, and what it accepts is a solicitation.
func FuzzParseND(f *testing.F) {
	src := netip.MustParseAddr("fe80::f816:3eff:fe00:105")
	f.Add(AppendNeighborSolicit(nil, 5, vmMAC, src, netip.MustParseAddr("fe80::1")))
	f.Add(AppendRouterSolicit(nil, 0, vmMAC, src))
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := ParseND(frame)
		if err == nil && m.Type != ICMPv6NeighborSolicitation && m.Type != ICMPv6RouterSolicitation {
			t.Errorf("accepted type %d", m.Type)
		}
	})
}
