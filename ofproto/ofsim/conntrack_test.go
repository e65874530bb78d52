package ofsim

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"
)

// The fake switch stores and dumps the connection tracking, conjunction and register
// flows of a stateful firewall exactly as Open vSwitch does: the ct/conjunction lines of
// ofproto's fixtures (cookies 0x30-0x3f), installed here, dump as OVS 3.1 printed them.
func TestStoresAndDumpsFirewallFlowsLikeOVS(t *testing.T) {
	read := func(name string) []string {
		b, err := os.ReadFile("../testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "cookie=0x3") {
				out = append(out, l)
			}
		}
		return out
	}
	in, want := read("flows.txt"), read("dump-flows.txt")
	if len(in) < 7 || len(in) != len(want) {
		t.Fatalf("fixtures: %d flows, %d dumped", len(in), len(want))
	}
	s := sim(t, Config{NumTables: 20})
	for _, l := range in {
		f, err := ofproto.ParseFlow(l)
		if err != nil {
			t.Fatal(err)
		}
		add(t, s, f)
	}
	if got := flowsText(t, s); sortedLines(got) != sortedLines(strings.Join(want, "\n")) {
		t.Fatalf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// ip6Frame is an untagged Ethernet frame of IPv6 from src to dst carrying proto (6 TCP,
// 17 UDP: the two ports; 58 ICMPv6: type sport, code 0, identifier dport, and for
// neighbour discovery the target dst), after a hop-by-hop header when hbh is set.
func ip6Frame(src, dst string, proto uint8, sport, dport uint16, hbh bool) []byte {
	b := append(append(net.HardwareAddr{}, mac(1)...), mac(2)...)
	b = binary.BigEndian.AppendUint16(b, ethTypeIPv6)
	var l4 []byte
	switch proto {
	case 58:
		l4 = []byte{byte(sport), 0, 0, 0, byte(dport >> 8), byte(dport), 0, 1}
		if sport == ofproto.ICMPv6NeighborSolicitation || sport == ofproto.ICMPv6NeighborAdvertisement {
			l4 = append(l4[:8:8], netip.MustParseAddr(dst).AsSlice()...)
		}
	default:
		l4 = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sport), dport)
		l4 = append(l4, make([]byte, 16)...)
	}
	next := proto
	var ext []byte
	if hbh {
		next, ext = 0, []byte{proto, 0, 5, 2, 0, 0, 1, 0} // router alert
	}
	ip := []byte{0x60, 0, 0, 0, byte((len(ext) + len(l4)) >> 8), byte(len(ext) + len(l4)), next, 64}
	ip = append(ip, netip.MustParseAddr(src).AsSlice()...)
	ip = append(ip, netip.MustParseAddr(dst).AsSlice()...)
	return append(append(append(b, ip...), ext...), l4...)
}

// IPv6 runs through the pipeline as IPv4 does: addresses by prefix, the upper-layer
// protocol past extension headers, TCP and UDP ports, ICMPv6 type and code, neighbour
// discovery targets by prefix, and conntrack (replies +est+rpl, ICMPv6 echo by identifier).
func TestExecuteIPv6(t *testing.T) {
	s := sim(t, Config{Ports: []Port{{No: 1}, {No: 2}, {No: 3}, {No: 4}, {No: 5}, {No: 6}}})
	v6 := ofproto.EthType(ofproto.EthTypeIPv6)
	zone := ofproto.CT{Zone: 5, HasTable: true, Table: 1}
	pfx := netip.MustParsePrefix
	add(t, s, ofproto.Flow{Priority: 10, Match: ofproto.Match{v6, ofproto.IPProto(58), ofproto.ICMPv6Type(136),
		ofproto.NDTargetMasked(pfx("2001:db8:1::/64"))}.Canonical(), Actions: []ofproto.Action{ofproto.Output{Port: 3}}})
	add(t, s, ofproto.Flow{Priority: 10, Match: ofproto.Match{v6, ofproto.IPProto(58), ofproto.ICMPv6Type(143)}.Canonical(),
		Actions: []ofproto.Action{ofproto.Output{Port: 4}}})
	add(t, s, ofproto.Flow{Priority: 5, Match: ofproto.Match{v6, ofproto.IPv6SrcMasked(pfx("2001:db8:1::/64"))}.Canonical(),
		Actions: []ofproto.Action{zone}})
	add(t, s, ofproto.Flow{Priority: 4, Match: ofproto.Match{v6}, Actions: []ofproto.Action{zone}})
	add(t, s, ofproto.Flow{Table: 1, Priority: 20, Match: ofproto.Match{ofproto.CTState(ofproto.CTEst|ofproto.CTRpl, ofproto.CTEst|ofproto.CTRpl)},
		Actions: []ofproto.Action{ofproto.Output{Port: 5}}})
	add(t, s, ofproto.Flow{Table: 1, Priority: 10, Match: ofproto.Match{ofproto.CTState(ofproto.CTNew, ofproto.CTNew), v6, ofproto.IPProto(6),
		ofproto.IPv6DstMasked(pfx("2001:db8:2::/64")), ofproto.TCPDstMasked(0x1388, 0xfff8)}.Canonical(),
		Actions: []ofproto.Action{ofproto.CT{Commit: true, Zone: 5}, ofproto.Output{Port: 2}}})
	add(t, s, ofproto.Flow{Table: 1, Priority: 10, Match: ofproto.Match{ofproto.CTState(ofproto.CTNew, ofproto.CTNew), v6, ofproto.IPProto(58),
		ofproto.ICMPv6Type(128), ofproto.ICMPv6Code(0)}.Canonical(),
		Actions: []ofproto.Action{ofproto.CT{Commit: true, Zone: 5}, ofproto.Output{Port: 2}}})
	add(t, s, ofproto.Flow{Table: 1, Priority: 1, Actions: []ofproto.Action{ofproto.Output{Port: 6}}})

	for _, c := range []struct {
		what  string
		frame []byte
		want  uint32 // 0: dropped
	}{
		{"NA for a target of the prefix", ip6Frame("fe80::1", "2001:db8:1::7", 58, 136, 0, false), 3},
		{"NA for another target", ip6Frame("fe80::1", "2001:db8:9::7", 58, 136, 0, false), 6},
		{"MLDv2 report past its hop-by-hop header", ip6Frame("fe80::1", "ff02::16", 58, 143, 0, true), 4},
		{"tcp/5003 to the prefix: new, committed", ip6Frame("2001:db8:1::5", "2001:db8:2::9", 6, 40000, 5003, false), 2},
		{"its reply: established", ip6Frame("2001:db8:2::9", "2001:db8:1::5", 6, 5003, 40000, false), 5},
		{"tcp/5008: no rule", ip6Frame("2001:db8:1::5", "2001:db8:2::9", 6, 40001, 5008, false), 6},
		{"tcp/5003 to another prefix", ip6Frame("2001:db8:1::5", "2001:db8:3::9", 6, 40002, 5003, false), 6},
		{"echo request, code 0", ip6Frame("2001:db8:1::5", "2001:db8:2::9", 58, 128, 77, false), 2},
		{"echo reply of that identifier", ip6Frame("2001:db8:2::9", "2001:db8:1::5", 58, 129, 77, false), 5},
		{"echo reply of another", ip6Frame("2001:db8:2::9", "2001:db8:1::5", 58, 129, 78, false), 6},
	} {
		outs, err := s.Execute(1, c.frame)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if len(outs) != 1 || outs[0].Port != c.want || !bytes.Equal(outs[0].Frame, c.frame) {
			t.Errorf("%s: %+v, want out by %d unchanged", c.what, outs, c.want)
		}
	}
	if n := s.Connections(); n != 2 {
		t.Errorf("%d connections, want the TCP one and the echo", n)
	}
	if _, err := s.Execute(1, ip6Frame("::1", "::2", 6, 1, 2, false)[:40]); err == nil {
		t.Error("truncated IPv6 header accepted")
	}
}
