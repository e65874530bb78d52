package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

func TestARPRequestFrameParsesAsDvrflowSeesIt(t *testing.T) {
	sha := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	spa, tpa := netip.MustParseAddr("10.100.0.10"), netip.MustParseAddr("10.100.0.11")
	req, err := ofproto.ParseARPRequest(ofproto.AppendARPRequest(nil, 7, sha, spa, tpa))
	if err != nil {
		t.Fatal(err)
	}
	if req.VLAN != 7 || req.SHA.String() != sha.String() || req.SPA != spa || req.TPA != tpa {
		t.Fatalf("parsed %+v", req)
	}
}

// packetOut builds a PACKET_OUT with one output action, as dvrflow, os-ken and
// ovs-testcontroller send them.
func packetOut(port uint32, data []byte) []byte {
	b := ofproto.AppendHeader(nil, ofproto.Header{Version: ofproto.Version, Type: ofproto.TypePacketOut, Xid: 1})
	b = binary.BigEndian.AppendUint32(b, ofproto.NoBuffer)
	b = binary.BigEndian.AppendUint32(b, ofproto.PortController)
	b = binary.BigEndian.AppendUint16(b, 16)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, 0, 0, 0, 16)
	b = binary.BigEndian.AppendUint32(b, port)
	b = append(b, 0xff, 0xff, 0, 0, 0, 0, 0, 0)
	b = append(b, data...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func TestParseARPPacketOut(t *testing.T) {
	sha := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	mac := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 2}
	spa, tpa := netip.MustParseAddr("10.100.0.10"), netip.MustParseAddr("10.100.0.11")
	reqFrame := ofproto.AppendARPRequest(nil, 7, sha, spa, tpa)
	req, err := ofproto.ParseARPRequest(reqFrame)
	if err != nil {
		t.Fatal(err)
	}
	var want arpKey
	copy(want.sha[:], sha)
	want.spa, want.tpa = spa.As4(), tpa.As4()

	// dvrflow's reply, built by the code dvrflow answers with.
	k, port, flood, ok := parseARPPacketOut(packetOut(3, ofproto.ARPReply(req, mac)))
	if !ok || flood || port != 3 || k.key != want || net.HardwareAddr(k.sha[:]).String() != mac.String() {
		t.Fatalf("reply: key %+v port %d flood %v ok %v", k, port, flood, ok)
	}
	// A learning switch floods the request itself.
	k, port, flood, ok = parseARPPacketOut(packetOut(ofproto.PortFlood, reqFrame))
	if !ok || !flood || port != ofproto.PortFlood || k.key != want {
		t.Fatalf("flood: key %+v port %d flood %v ok %v", k, port, flood, ok)
	}
	// A reply whose Ethernet header disagrees with its ARP payload is not an answer.
	bad := ofproto.ARPReply(req, mac)
	bad[0] ^= 1
	if _, _, _, ok := parseARPPacketOut(packetOut(3, bad)); ok {
		t.Fatal("a reply to another Ethernet address was accepted")
	}
	for _, m := range [][]byte{nil, packetOut(3, nil), packetOut(3, []byte{1, 2, 3})} {
		if _, _, _, ok := parseARPPacketOut(m); ok {
			t.Fatalf("%x accepted", m)
		}
	}
}

func TestParseControllers(t *testing.T) {
	got, err := parseControllers("osken, dvrflow")
	if err != nil || len(got) != 2 || got[0] != ctlOsken || got[1] != ctlDvrflow {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "ryu", "osken,osken"} {
		if _, err := parseControllers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestARPTopologyCombos(t *testing.T) {
	cfg := simConfig{Switches: 25, HostsPerNet: 10, VMsPerHost: 2}
	topo := newSimTopology(cfg, "arpbench")
	if topo.Nets != 3 || len(topo.VMs) != 50 {
		t.Fatalf("%d networks, %d VMs", topo.Nets, len(topo.VMs))
	}
	g := &arpGen{loadGen: loadGen{log: zap.NewNop()}}
	g.init(topo)
	// Host 3 of a 10-host network: 2 local VMs, each asking for the 19 other addresses.
	if n := len(g.sims[3].combos); n != 38 {
		t.Fatalf("host 3 sends %d different requests, want 38", n)
	}
	// Host 22 of the last, 5-host network.
	if n := len(g.sims[22].combos); n != 18 {
		t.Fatalf("host 22 sends %d different requests, want 18", n)
	}
	seen := map[arpKey]bool{}
	for _, c := range g.sims[3].combos {
		if seen[c.key] || c.key.spa == c.key.tpa {
			t.Fatalf("request %+v twice or for itself", c.key)
		}
		seen[c.key] = true
	}
}
