package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/ofproto"
)

// fakeDHCPServer answers client messages as a DHCP server of one network would: the
// address of the client's MAC, its identifier, a dhcpLease lease, out on the port the
// message came in by, to the broadcast address when asked for; mutate may change an answer
// (frame its addresses), or drop it by returning false.
type fakeDHCPServer struct {
	t      *testing.T
	ips    map[string]netip.Addr // by MAC
	server netip.Addr
	mutate func(m *dhcp4.Message, fr *dhcp4.Frame, port *uint32) bool
	seen   []*dhcp4.Message
	out    []fakeAnswer
}

type fakeAnswer struct {
	port  uint32
	frame []byte
}

func (f *fakeDHCPServer) send(msgs []dhcpMsg) error {
	for _, m := range msgs {
		msg, err := dhcp4.Parse(m.frame) // as dvrflow reads a client's frame
		if err != nil {
			f.t.Fatalf("client frame: %v", err)
		}
		f.seen = append(f.seen, msg)
		r := &dhcp4.Reply{XID: msg.XID, CHAddr: msg.CHAddr, ServerID: f.server, YIAddr: f.ips[msg.CHAddr.String()], MaxSize: 1500}
		switch {
		case msg.Type == dhcp4.Discover:
			r.Type = dhcp4.Offer
		case msg.Type == dhcp4.Request && msg.ServerID == f.server && msg.RequestedIP == r.YIAddr:
			r.Type = dhcp4.Ack
		default:
			r.Type, r.YIAddr = dhcp4.Nak, netip.Addr{}
		}
		r.Options.Set(dhcp4.OptLeaseTime, dhcp4.U32(uint32(dhcpLease/time.Second)))
		fr := &dhcp4.Frame{SrcMAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 2}, DstMAC: msg.CHAddr, SrcIP: f.server, DstIP: r.YIAddr, Reply: r}
		if msg.Broadcast() || r.Type == dhcp4.Nak {
			fr.DstMAC, fr.DstIP = dhcp4.BroadcastMAC, dhcp4.BroadcastIP
		}
		port := m.inPort
		if f.mutate != nil && !f.mutate(msg, fr, &port) {
			continue
		}
		f.out = append(f.out, fakeAnswer{port: port, frame: fr.AppendFrame(nil)})
	}
	return nil
}

// deliver hands the answers sent so far to h, as PACKET_OUTs through the switch's tap
// when asPacketOut.
func (f *fakeDHCPServer) deliver(h *dhcpHost, asPacketOut bool) {
	out := f.out
	f.out = nil
	for _, a := range out {
		if asPacketOut {
			if !h.take(packetOut(a.port, a.frame)) {
				f.t.Fatal("a PACKET_OUT was left to the switch")
			}
			continue
		}
		fr, err := dhcp4.ParseReply(a.frame)
		if err != nil {
			f.t.Fatal(err)
		}
		h.reply(fr, a.port, time.Now())
	}
}

// newTestDHCPHost returns host 0 of a two-host network with two VMs per host, measuring,
// its clients answered by a fake server.
func newTestDHCPHost(t *testing.T, ofPorts bool) (*dhcpHost, *fakeDHCPServer) {
	topo := newSimTopology(simConfig{Switches: 2, HostsPerNet: 2, VMsPerHost: 2}, "test")
	srv := netip.MustParseAddr("10.100.0.2")
	topo.DHCPPorts = []simDHCPPort{{ID: "dhcp-port", MAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 2}, IP: srv}}
	g := &loadGen{log: zap.NewNop()}
	g.running.Store(true)
	g.measuring.Store(true)
	h := newDHCPHosts(g, topo, ofPorts)[0]
	f := &fakeDHCPServer{t: t, ips: map[string]netip.Addr{}, server: srv}
	for _, vm := range topo.vmsOf(0) {
		f.ips[vm.MAC.String()] = vm.IP
	}
	h.wire = f
	h.setWindow(4, true)
	return h, f
}

func counts(h *dhcpHost) loadCounts {
	var c loadCounts
	h.collect(&c, false)
	return c
}

func TestDHCPExchanges(t *testing.T) {
	for _, asPacketOut := range []bool{false, true} {
		h, srv := newTestDHCPHost(t, asPacketOut)
		// Round 1: four DISCOVERs, their OFFERs; round 2: the four REQUESTs, their ACKs.
		for range 10 {
			h.fill()
			srv.deliver(h, asPacketOut)
		}
		c := counts(h)
		if c.answered != 20 || c.wrong != 0 || c.unmatched != 0 || c.lost != 0 || len(c.lat) != 20 {
			t.Fatalf("packet-out %v: %+v, want 20 exchanges answered and nothing else", asPacketOut, c)
		}
		if len(srv.seen) != 40 {
			t.Fatalf("%d client messages, want 40", len(srv.seen))
		}
		// Each exchange: a DISCOVER, then a REQUEST with its xid selecting the offer.
		discovers := map[uint32]*dhcp4.Message{}
		for _, m := range srv.seen {
			if !m.Broadcast() {
				t.Fatalf("%s without the broadcast flag", m.Type)
			}
			switch m.Type {
			case dhcp4.Discover:
				discovers[m.XID] = m
			case dhcp4.Request:
				d := discovers[m.XID]
				if d == nil || d.CHAddr.String() != m.CHAddr.String() || m.RequestedIP != srv.ips[m.CHAddr.String()] || m.ServerID != srv.server {
					t.Fatalf("REQUEST %+v does not select the offer of a DISCOVER", m)
				}
				delete(discovers, m.XID)
			default:
				t.Fatalf("client sent a %s", m.Type)
			}
		}
		// Both clients of the host took turns.
		macs := map[string]bool{}
		for _, m := range srv.seen {
			macs[m.CHAddr.String()] = true
		}
		if len(macs) != 2 {
			t.Fatalf("clients %v, want the host's two", macs)
		}
	}
}

func TestDHCPWrongAnswers(t *testing.T) {
	other := netip.MustParseAddr("10.100.0.99")
	// Each mutate spoils the answer it is given, or leaves it and returns false.
	for _, tc := range []struct {
		name   string
		of     bool
		mutate func(fr *dhcp4.Frame, r *dhcp4.Reply, port *uint32) bool
		why    string
	}{
		{"yiaddr", false, func(_ *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool { r.YIAddr = other; return true }, "yiaddr 10.100.0.99"},
		{"yiaddr of the ACK", false, func(_ *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool {
			if r.Type != dhcp4.Ack {
				return false
			}
			r.YIAddr = other
			return true
		}, "ACK for"},
		{"xid", false, func(_ *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool { r.XID ^= 0xff000000; return true }, "no exchange"},
		{"type", false, func(_ *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool {
			if r.Type != dhcp4.Ack {
				return false
			}
			r.Type = dhcp4.Nak
			return true
		}, "NAK for"},
		{"server id", false, func(_ *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool { r.ServerID = other; return true }, "server identifier"},
		{"lease", false, func(_ *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool {
			r.Options.Set(dhcp4.OptLeaseTime, dhcp4.U32(120))
			return true
		}, "lease time"},
		{"chaddr of another switch", false, func(_ *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool {
			r.CHAddr = net.HardwareAddr{2, 0, 0, 0, 0, 1}
			return true
		}, "no exchange"},
		{"unicast", false, func(fr *dhcp4.Frame, r *dhcp4.Reply, _ *uint32) bool {
			fr.DstMAC, fr.DstIP = r.CHAddr, r.YIAddr
			return true
		}, "want the broadcast address"},
		{"out port", true, func(_ *dhcp4.Frame, _ *dhcp4.Reply, port *uint32) bool { *port = 7; return true }, "out on port 7"},
	} {
		h, srv := newTestDHCPHost(t, tc.of)
		done := false
		srv.mutate = func(_ *dhcp4.Message, fr *dhcp4.Frame, port *uint32) bool {
			if !done {
				done = tc.mutate(fr, fr.Reply, port)
			}
			return true
		}
		for range 6 {
			h.fill()
			srv.deliver(h, tc.of)
		}
		c := counts(h)
		if !done || c.wrong != 1 || !strings.Contains(c.firstWrong, tc.why) || c.answered == 0 {
			t.Errorf("%s: %d wrong (%q), %d answered; want 1 wrong for %q and the others answered", tc.name, c.wrong, c.firstWrong, c.answered, tc.why)
		}
	}
}

func TestDHCPLateAnswerIsStray(t *testing.T) {
	h, srv := newTestDHCPHost(t, false)
	h.fill()
	h.expire(time.Now().Add(lostAfter + time.Second))
	if c := counts(h); c.lost != 4 {
		t.Fatalf("%d lost, want the 4 DISCOVERs", c.lost)
	}
	srv.deliver(h, false)
	if c := counts(h); c.unmatched != 4 || c.wrong != 0 {
		t.Fatalf("late OFFERs: %d stray, %d wrong; want 4 stray", c.unmatched, c.wrong)
	}
	// A PACKET_OUT that carries no DHCP answer is stray too; other messages are the switch's.
	if !h.take(packetOut(1, []byte{1, 2, 3})) {
		t.Fatal("PACKET_OUT left to the switch")
	}
	if c := counts(h); c.unmatched != 5 {
		t.Fatalf("%d stray, want 5", c.unmatched)
	}
	echo := ofproto.AppendHeader(nil, ofproto.Header{Version: ofproto.Version, Type: ofproto.TypeEchoRequest, Length: 8})
	if h.take(echo) {
		t.Fatal("an echo request was taken from the switch")
	}
}

func TestDnsmasqAgentFiles(t *testing.T) {
	topo := newSimTopology(simConfig{Switches: 3, HostsPerNet: 2, VMsPerHost: 2}, "test")
	topo.Sub = []string{"sub-0", "sub-1"}
	topo.MTU = []int{1450, 1450}
	topo.Gateway = []netip.Addr{netip.MustParseAddr("10.100.0.1"), netip.MustParseAddr("10.100.1.1")}
	dir := t.TempDir()
	if err := writeAgentFiles(dir, topo, 1); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Network 1 holds host 2 only: its two VMs.
	if got, want := read("host"), "fa:16:3e:00:02:00,host-10-100-1-10.openstacklocal,10.100.1.10\n"+
		"fa:16:3e:00:02:01,host-10-100-1-11.openstacklocal,10.100.1.11\n"; got != want {
		t.Errorf("host file:\n%s\nwant\n%s", got, want)
	}
	if got, want := read("opts"), "tag:subnet-sub-1,option:router,10.100.1.1"; got != want {
		t.Errorf("opts file %q, want %q", got, want)
	}
	if got := read("addn_hosts"); !strings.HasPrefix(got, "10.100.1.10\thost-10-100-1-10.openstacklocal host-10-100-1-10\n") {
		t.Errorf("addn_hosts file %q", got)
	}
	if f := strings.Fields(read("leases")); len(f) != 10 || f[1] != "fa:16:3e:00:02:00" || f[2] != "10.100.1.10" || f[3] != "*" {
		t.Errorf("leases file %q", f)
	}
	args := dnsmasqArgs(dir, topo, 1)
	for _, want := range []string{"--dhcp-range=set:subnet-sub-1,10.100.1.0,static,255.255.255.0,86400s",
		"--dhcp-option-force=option:mtu,1450", "--dhcp-lease-max=256", "--domain=openstacklocal", "--no-hosts", "--no-resolv",
		"--dhcp-hostsfile=" + filepath.Join(dir, "host"), "--dhcp-leasefile=" + filepath.Join(dir, "leases")} {
		if !slices.Contains(args, want) {
			t.Errorf("dnsmasq arguments lack %s: %q", want, args)
		}
	}
}

func TestListensOn(t *testing.T) {
	udp := []byte(`   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
  124: 0264640A:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
`)
	for port, want := range map[uint16]bool{67: true, 53: true, 68: false, 0x4300: false} {
		if listensOn(udp, port) != want {
			t.Errorf("listensOn(%d) = %v", port, !want)
		}
	}
}
