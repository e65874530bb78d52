package ofsim

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/ofproto"
)

func arpRequest(src net.HardwareAddr, spa, tpa netip.Addr) []byte {
	b := append(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src...)
	b = binary.BigEndian.AppendUint16(b, ethTypeARP)
	b = append(b, 0, 1, 8, 0, 6, 4, 0, 1)
	b = append(b, src...)
	b = append(b, spa.AsSlice()...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, tpa.AsSlice()...)
}

func icmpEcho(dst, src net.HardwareAddr, ipSrc, ipDst netip.Addr, ttl byte) []byte {
	b := append(append(net.HardwareAddr{}, dst...), src...)
	b = binary.BigEndian.AppendUint16(b, ethTypeIPv4)
	ip := []byte{0x45, 0, 0, 28, 0, 1, 0, 0, ttl, 1, 0, 0}
	ip = append(ip, ipSrc.AsSlice()...)
	ip = append(ip, ipDst.AsSlice()...)
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	b = append(b, ip...)
	return append(b, 8, 0, 0xf7, 0xfe, 0, 1, 0, 0) // echo request
}

func TestExecuteARPResponder(t *testing.T) {
	gw := mac(0xfe)
	gwIP := netip.MustParseAddr("10.0.0.1")
	vm := mac(2)
	vmIP := netip.MustParseAddr("10.0.0.5")
	s := sim(t, Config{Ports: []Port{{No: 1}, {No: 2}, {No: 3}}})
	// The Neutron-style in-switch ARP responder: turn the request into a reply.
	add(t, s, ofproto.Flow{Table: 0, Priority: 1, HasGoto: true, Goto: 2})
	add(t, s, ofproto.Flow{Table: 2, Priority: 100, Cookie: 0xa,
		Match: ofproto.Match{ofproto.EthType(0x0806), ofproto.ARPOp(1), ofproto.ARPTPA(gwIP)},
		Actions: []ofproto.Action{
			ofproto.RegMove{Src: ofproto.RefEthSrc, Dst: ofproto.RefEthDst, NBits: 48},
			ofproto.SetEthSrc(gw),
			ofproto.SetARPOp(2),
			ofproto.RegMove{Src: ofproto.RefARPSHA, Dst: ofproto.RefARPTHA, NBits: 48},
			ofproto.RegMove{Src: ofproto.RefARPSPA, Dst: ofproto.RefARPTPA, NBits: 32},
			ofproto.SetARPSHA(gw),
			ofproto.SetARPSPA(gwIP),
			ofproto.Output{Port: ofproto.PortInPort},
		}})
	add(t, s, ofproto.Flow{Table: 2, Priority: 0, Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortNormal}}})

	outs, err := s.Execute(1, arpRequest(vm, vmIP, gwIP))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Port != 1 {
		t.Fatalf("outputs %+v", outs)
	}
	want := append(append(append(net.HardwareAddr{}, vm...), gw...), 8, 6, 0, 1, 8, 0, 6, 4, 0, 2)
	want = append(want, gw...)
	want = append(want, gwIP.AsSlice()...)
	want = append(want, vm...)
	want = append(want, vmIP.AsSlice()...)
	if !bytes.Equal(outs[0].Frame, want) {
		t.Fatalf("reply\n got %x\nwant %x", outs[0].Frame, want)
	}
	// Another target is flooded by NORMAL to every port but the ingress.
	outs, err = s.Execute(1, arpRequest(vm, vmIP, netip.MustParseAddr("10.0.0.9")))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Port != 2 || outs[1].Port != 3 {
		t.Fatalf("flood %+v", outs)
	}
}

func TestExecuteVLANTunnelTTLAndMiss(t *testing.T) {
	s := sim(t, Config{Ports: []Port{{No: 1}, {No: 5}}})
	dst := mac(9)
	// br-tun style: from the patch port with VLAN 3, strip the VLAN, set tunnel id and dst.
	add(t, s, ofproto.Flow{Table: 0, Priority: 1, Match: ofproto.Match{ofproto.InPort(1)},
		Actions: []ofproto.Action{ofproto.PushVLAN{EtherType: 0x8100}, ofproto.SetVLANVID(3)}, HasGoto: true, Goto: 1,
		HasMetadata: true, Metadata: 0x30, MetadataMask: 0xf0})
	add(t, s, ofproto.Flow{Table: 1, Priority: 5, Match: ofproto.Match{ofproto.VLANVID(3), ofproto.MetadataMasked(0x30, 0xf0), ofproto.EthDst(dst)},
		Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.DecNwTTL{}, ofproto.SetTunnelID(0x3eb),
			ofproto.SetTunDst(netip.MustParseAddr("192.168.248.4")), ofproto.Output{Port: 5}}})
	frame := icmpEcho(dst, mac(2), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.1.5"), 64)
	outs, err := s.Execute(1, frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Port != 5 || outs[0].TunID != 0x3eb || outs[0].TunDst != netip.MustParseAddr("192.168.248.4") {
		t.Fatalf("outputs %+v", outs)
	}
	got := outs[0].Frame
	if len(got) != len(frame) || got[14+8] != 63 || !bytes.Equal(got[:12], frame[:12]) {
		t.Fatalf("frame %x (want TTL 63, no VLAN)", got)
	}
	if ipChecksum(got[14:34]) != 0 {
		t.Fatal("IPv4 checksum not updated")
	}
	// Another destination misses table 1: dropped, nothing out.
	outs, err = s.Execute(1, icmpEcho(mac(8), mac(2), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.1.5"), 64))
	if err != nil || len(outs) != 0 {
		t.Fatalf("miss: %+v %v", outs, err)
	}
	if _, err := s.Execute(1, []byte{1, 2, 3}); err == nil {
		t.Fatal("runt frame accepted")
	}
	// Counters of the matched flow.
	st, err := s.flows.stats(1, 0, 0, time.Unix(0, s.flows[firstKey(s, 1)].added))
	if err != nil || len(st) != 1 || st[0].PacketCount != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func firstKey(s *Switch, table uint8) ofproto.FlowKey {
	for k, e := range s.flows {
		if e.table == table {
			return k
		}
	}
	return ofproto.FlowKey{}
}

func TestExecuteHighestPriorityWinsAndController(t *testing.T) {
	s := sim(t, Config{Ports: []Port{{No: 1}, {No: 2}}})
	add(t, s, ofproto.Flow{Priority: 1, Actions: []ofproto.Action{ofproto.Output{Port: 2}}})
	add(t, s, ofproto.Flow{Priority: 9, Cookie: 0x5, Match: ofproto.Match{ofproto.EthType(0x0806)},
		Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}})
	outs, err := s.Execute(1, arpRequest(mac(1), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")))
	if err != nil || len(outs) != 1 || outs[0].Port != ofproto.PortController {
		t.Fatalf("%+v %v", outs, err)
	}
	outs, err = s.Execute(1, icmpEcho(mac(3), mac(1), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), 3))
	if err != nil || len(outs) != 1 || outs[0].Port != 2 {
		t.Fatalf("%+v %v", outs, err)
	}
}
