package ofsim

import (
	"net"
	"net/netip"

	"github.com/dvrflow/dvrflow/ofproto"
)

// GenerateFlows returns n distinct flows spread over four tables (0..3), shaped like a DVR
// pipeline's (port classification, VLAN to local port, routed IPv4 with TTL decrement,
// ARP responder and flow-based tunnel output), all with the given cookie. They are written
// in the normal form Open vSwitch dumps them in, so a dump of a switch holding them diffs
// to nothing. For load tests, benchmarks and simulations.
func GenerateFlows(n int, cookie uint64) []ofproto.Flow {
	flows := make([]ofproto.Flow, 0, n)
	for i := range n {
		u := uint32(i)
		m := net.HardwareAddr{0xfa, 0x16, 0x3e, byte(u >> 16), byte(u >> 8), byte(u)}
		port := u%60 + 1
		ip := netip.AddrFrom4([4]byte{10, byte(u >> 16), byte(u >> 8), byte(u)})
		var f ofproto.Flow
		switch i % 4 {
		case 0:
			f = ofproto.Flow{Table: 0, Priority: 100,
				Match:   ofproto.Match{ofproto.InPort(port), ofproto.EthSrc(m)},
				HasGoto: true, Goto: 1}
		case 1:
			f = ofproto.Flow{Table: 1, Priority: 50,
				Match:   ofproto.Match{ofproto.EthDst(m), ofproto.VLANVID(uint16(u%4000 + 1))},
				Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.Output{Port: port}}}
		case 2:
			f = ofproto.Flow{Table: 2, Priority: 40,
				Match: ofproto.Match{ofproto.EthType(0x0800), ofproto.IPv4Dst(ip)},
				Actions: []ofproto.Action{ofproto.SetEthSrc(net.HardwareAddr{0xfa, 0x16, 0x3f, 0, 0, 1}),
					ofproto.SetEthDst(m), ofproto.DecNwTTL{}, ofproto.Output{Port: port}}}
		default:
			f = ofproto.Flow{Table: 3, Priority: 30,
				Match: ofproto.Match{ofproto.EthType(0x0806), ofproto.ARPTPA(ip)},
				Actions: []ofproto.Action{ofproto.SetTunnelID(uint64(u%5000 + 1)),
					ofproto.SetTunDst(netip.AddrFrom4([4]byte{192, 168, byte(u >> 8), byte(u)})),
					ofproto.Output{Port: 61}}}
		}
		f.Cookie = cookie
		f.Match = f.Match.Canonical()
		flows = append(flows, f)
	}
	return flows
}
