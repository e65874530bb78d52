package apps

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

var (
	dhcp1MAC = mustMAC("fa:16:3e:00:01:03")
	dhcp1IP  = netip.MustParseAddr("10.0.1.3")
	vm4MAC   = mustMAC("fa:16:3e:00:01:06")
)

func discover(mac net.HardwareAddr) []byte {
	return dhcp4.AppendRequest(nil, &dhcp4.Message{Type: dhcp4.Discover, XID: 1, CHAddr: mac}, nil)
}

// TestDHCPFlows runs DHCP client packets through br-int of the seed scenario: a local
// port's go to the controller from DHCP_IPV4, a spoofed one of a firewalled port is
// dropped, and none of them is ever flooded into the tunnel.
func TestDHCPFlows(t *testing.T) {
	v := topology.NewView(firewallTopology(), 7)
	c1 := newFWBridge(t, v, "compute1")
	c1.expect("VM5 DISCOVER (port security)", c1.port(vm5ID), discover(vm5MAC), ofproto.PortController)
	c1.expect("VM5 DISCOVER with another MAC", c1.port(vm5ID), discover(mustMAC("fa:16:3e:00:01:99")))
	c1.expect("VM5 ARP for the DHCP server", c1.port(vm5ID), arpFrame(vm5MAC, vm5IP, dhcp1IP.String()), ofproto.PortController)
	c2 := newFWBridge(t, v, "compute2")
	vm4 := c2.port("vm4-000000000000")
	c2.expect("VM4 DISCOVER (port security off)", vm4, discover(vm4MAC), ofproto.PortController)
	c2.expect("VM4 DISCOVER with another MAC (port security off)", vm4, discover(mustMAC("fa:16:3e:00:01:98")), ofproto.PortController)

	// Net1 without a DHCP server: the firewalled port's DHCP is dropped, the unfiltered
	// port's is switched like any broadcast (a DHCP server in a VM is its own business).
	srv := *v.Port("dhcp1-00000000000").Port
	if _, err := v.Apply([]topology.Change{{Revision: 8, Kind: topology.KindPort, ID: srv.ID, Op: topology.OpDelete, Object: &srv}}); err != nil {
		t.Fatal(err)
	}
	c1.load(v)
	c2.load(v)
	c1.expect("VM5 DISCOVER, no DHCP server", c1.port(vm5ID), discover(vm5MAC))
	got := c2.send(vm4, discover(vm4MAC))
	if slices.Contains(got, ofproto.PortController) || !slices.Contains(got, c2.st.Ports[PortPatchTun]) {
		t.Errorf("VM4 DISCOVER, no DHCP server: left by %v, want flooded like a broadcast", got)
	}
	if _, ok := ResolveARP(v, "compute1", ofproto.ARPRequest{VLAN: 1, SHA: vm5MAC, SPA: netip.MustParseAddr(vm5IP), TPA: dhcp1IP}); ok {
		t.Error("ARP for a deleted DHCP server answered")
	}
}

func TestResolveARPForDHCPServer(t *testing.T) {
	v := topology.NewView(firewallTopology(), 7)
	vlan, _ := v.LocalVLAN("compute1", "net1-000000000000")
	mac, ok := ResolveARP(v, "compute1", ofproto.ARPRequest{VLAN: vlan, SHA: vm5MAC, SPA: netip.MustParseAddr(vm5IP), TPA: dhcp1IP})
	if !ok || !bytes.Equal(mac, dhcp1MAC) {
		t.Errorf("ARP for the DHCP server: %s %v, want %s", mac, ok, dhcp1MAC)
	}
}

// dhcpView is the seed scenario with Net1's subnet given DNS servers and a host route, VM5
// with extra DHCP options, and a second subnet on Net1.
func dhcpView(t *testing.T, edit func(*topology.Topology)) *topology.View {
	t.Helper()
	top := firewallTopology()
	for i := range top.Subnets {
		if top.Subnets[i].ID == "sub1-000000000000" {
			top.Subnets[i].DNSNameservers = []string{"8.8.8.8", "2001:db8::53", "8.8.4.4"}
			top.Subnets[i].HostRoutes = []topology.HostRoute{{Destination: "192.168.50.0/24", NextHop: "10.0.1.254"}}
		}
	}
	top.Subnets = append(top.Subnets, topology.Subnet{ID: "sub1b-00000000000", NetworkID: "net1-000000000000",
		IPVersion: 4, CIDR: "10.0.3.0/24", GatewayIP: "10.0.3.1", EnableDHCP: true})
	if edit != nil {
		edit(top)
	}
	return topology.NewView(top, 7)
}

func answer(t *testing.T, v *topology.View, portID string, m *dhcp4.Message) (*dhcp4.Frame, string) {
	t.Helper()
	p := v.Port(portID)
	// Through the wire format, as the controller receives it.
	parsed, err := dhcp4.Parse(dhcp4.AppendRequest(nil, m, nil))
	if err != nil {
		t.Fatal(err)
	}
	parsed.DstIP = m.DstIP
	f, outcome := AnswerDHCP(v, DHCPConfig{LeaseTime: time.Hour, Domain: "example.org"}, p, parsed)
	if f == nil {
		return nil, outcome
	}
	back, err := dhcp4.ParseReply(f.AppendFrame(nil))
	if err != nil {
		t.Fatalf("reply does not read back: %v", err)
	}
	return back, outcome
}

func TestAnswerDHCP(t *testing.T) {
	v := dhcpView(t, nil)
	vm5 := netip.MustParseAddr(vm5IP)

	f, outcome := answer(t, v, vm5ID, &dhcp4.Message{Type: dhcp4.Discover, XID: 42, CHAddr: vm5MAC, MaxSize: 1500})
	if outcome != DHCPOffered || f == nil {
		t.Fatalf("DISCOVER: %s", outcome)
	}
	r := f.Reply
	if r.Type != dhcp4.Offer || r.XID != 42 || r.YIAddr != vm5 || r.ServerID != dhcp1IP || !bytes.Equal(f.SrcMAC, dhcp1MAC) ||
		f.SrcIP != dhcp1IP || f.DstIP != vm5 || !bytes.Equal(f.DstMAC, vm5MAC) {
		t.Errorf("OFFER: %+v in %+v", r, f)
	}
	want := map[uint8][]byte{
		dhcp4.OptLeaseTime:     dhcp4.U32(3600),
		dhcp4.OptRenewalTime:   dhcp4.U32(1800),
		dhcp4.OptRebindingTime: dhcp4.U32(3150),
		dhcp4.OptSubnetMask:    {255, 255, 255, 0},
		dhcp4.OptBroadcast:     {10, 0, 1, 255},
		dhcp4.OptRouter:        {10, 0, 1, 1},
		dhcp4.OptDNSServers:    {8, 8, 8, 8, 8, 8, 4, 4},
		dhcp4.OptMTU:           dhcp4.U16(1450),
		dhcp4.OptHostname:      []byte("host-10-0-1-7"),
		dhcp4.OptDomainName:    []byte("example.org"),
		dhcp4.OptClasslessRoutes: dhcp4.ClasslessRoutes([]dhcp4.Route{
			{Dest: netip.MustParsePrefix("192.168.50.0/24"), Router: netip.MustParseAddr("10.0.1.254")},
			{Dest: netip.MustParsePrefix("169.254.169.254/32"), Router: dhcp1IP},
			{Dest: netip.MustParsePrefix("10.0.3.0/24")},
			{Dest: netip.MustParsePrefix("0.0.0.0/0"), Router: netip.MustParseAddr("10.0.1.1")}}),
	}
	for code, w := range want {
		if got, ok := r.Options.Get(code); !ok || !bytes.Equal(got, w) {
			t.Errorf("option %d = %v, want %v", code, got, w)
		}
	}

	cases := []struct {
		name    string
		m       dhcp4.Message
		outcome string
		typ     dhcp4.MessageType
		dstIP   string
	}{
		{"REQUEST selecting", dhcp4.Message{Type: dhcp4.Request, ServerID: dhcp1IP, RequestedIP: vm5}, DHCPAcked, dhcp4.Ack, vm5IP},
		{"REQUEST selecting, broadcast flag", dhcp4.Message{Type: dhcp4.Request, Flags: 0x8000, ServerID: dhcp1IP, RequestedIP: vm5}, DHCPAcked, dhcp4.Ack, "255.255.255.255"},
		{"REQUEST for another server's offer", dhcp4.Message{Type: dhcp4.Request, ServerID: netip.MustParseAddr("10.0.1.99"), RequestedIP: vm5}, DHCPOtherSrv, 0, ""},
		{"REQUEST init-reboot, its address", dhcp4.Message{Type: dhcp4.Request, RequestedIP: vm5}, DHCPAcked, dhcp4.Ack, vm5IP},
		{"REQUEST init-reboot, another port's address", dhcp4.Message{Type: dhcp4.Request, RequestedIP: netip.MustParseAddr(vm1IP)}, DHCPNaked, dhcp4.Nak, "255.255.255.255"},
		{"REQUEST renewing", dhcp4.Message{Type: dhcp4.Request, CIAddr: vm5, DstIP: dhcp1IP}, DHCPAcked, dhcp4.Ack, vm5IP},
		{"REQUEST renewing an old address", dhcp4.Message{Type: dhcp4.Request, CIAddr: netip.MustParseAddr("10.0.1.50"), DstIP: dhcp1IP}, DHCPNaked, dhcp4.Nak, "255.255.255.255"},
		{"INFORM", dhcp4.Message{Type: dhcp4.Inform, CIAddr: vm5}, DHCPInformed, dhcp4.Ack, vm5IP},
		{"RELEASE", dhcp4.Message{Type: dhcp4.Release, CIAddr: vm5, ServerID: dhcp1IP}, DHCPReleased, 0, ""},
		{"DECLINE", dhcp4.Message{Type: dhcp4.Decline, RequestedIP: vm5, ServerID: dhcp1IP}, DHCPDeclined, 0, ""},
		{"OFFER from a client", dhcp4.Message{Type: dhcp4.Offer}, DHCPBadType, 0, ""},
	}
	for _, c := range cases {
		m := c.m
		m.XID, m.CHAddr = 7, vm5MAC
		f, outcome := answer(t, v, vm5ID, &m)
		if outcome != c.outcome {
			t.Errorf("%s: outcome %s, want %s", c.name, outcome, c.outcome)
			continue
		}
		if c.typ == 0 {
			if f != nil {
				t.Errorf("%s: answered %v", c.name, f.Reply.Type)
			}
			continue
		}
		if f.Reply.Type != c.typ || f.DstIP.String() != c.dstIP || f.Reply.XID != 7 {
			t.Errorf("%s: %v to %s, want %v to %s", c.name, f.Reply.Type, f.DstIP, c.typ, c.dstIP)
		}
		_, hasLease := f.Reply.Options.Get(dhcp4.OptLeaseTime)
		switch f.Reply.Type {
		case dhcp4.Ack:
			if m.Type == dhcp4.Inform && (hasLease || f.Reply.YIAddr != netip.IPv4Unspecified()) {
				t.Errorf("%s: INFORM's ACK gives a lease or an address", c.name)
			}
			if m.Type == dhcp4.Request && (!hasLease || f.Reply.YIAddr != vm5) {
				t.Errorf("%s: ACK without lease or address", c.name)
			}
		case dhcp4.Nak:
			if hasLease || f.Reply.YIAddr != netip.IPv4Unspecified() {
				t.Errorf("%s: NAK with a lease or an address", c.name)
			}
		}
	}

	// A port's own MAC only.
	if _, outcome := answer(t, v, vm5ID, &dhcp4.Message{Type: dhcp4.Discover, CHAddr: vm1MAC}); outcome != DHCPNotPort {
		t.Errorf("DISCOVER with VM1's MAC on VM5's port: %s", outcome)
	}
}

func TestAnswerDHCPOptionsAndDisabled(t *testing.T) {
	// The port's extra options override and add; a subnet without gateway gives no router
	// and no default route; enable_dhcp=false gets no answer.
	v := dhcpView(t, func(top *topology.Topology) {
		for i := range top.Ports {
			if top.Ports[i].ID == vm5ID {
				top.Ports[i].ExtraDHCPOpts = []topology.ExtraDHCPOpt{
					{OptName: "dns-server", OptValue: "1.1.1.1", IPVersion: 4},
					{OptName: "mtu", OptValue: "1400", IPVersion: 4},
					{OptName: "bootfile-name", OptValue: "pxelinux.0", IPVersion: 4},
					{OptName: "server-ip-address", OptValue: "10.0.1.40", IPVersion: 4},
					{OptName: "dns-server", OptValue: "2001:db8::1", IPVersion: 6},
					{OptName: "no-such-option", OptValue: "x", IPVersion: 4},
				}
			}
		}
		for i := range top.Subnets {
			if top.Subnets[i].ID == "sub2-000000000000" {
				top.Subnets[i].GatewayIP = ""
			}
		}
	})
	f, outcome := answer(t, v, vm5ID, &dhcp4.Message{Type: dhcp4.Discover, CHAddr: vm5MAC})
	if outcome != DHCPOffered {
		t.Fatalf("DISCOVER: %s", outcome)
	}
	for code, w := range map[uint8][]byte{dhcp4.OptDNSServers: {1, 1, 1, 1}, dhcp4.OptMTU: dhcp4.U16(1400), 67: []byte("pxelinux.0")} {
		if got, _ := f.Reply.Options.Get(code); !bytes.Equal(got, w) {
			t.Errorf("option %d = %v, want %v", code, got, w)
		}
	}
	if f.Reply.SIAddr != netip.MustParseAddr("10.0.1.40") {
		t.Errorf("siaddr %s, want server-ip-address 10.0.1.40", f.Reply.SIAddr)
	}
	f, outcome = answer(t, v, "vm3-000000000000", &dhcp4.Message{Type: dhcp4.Discover, CHAddr: vm3MAC})
	if outcome != DHCPOffered {
		t.Fatalf("VM3 DISCOVER: %s", outcome)
	}
	if _, ok := f.Reply.Options.Get(dhcp4.OptRouter); ok {
		t.Error("router option for a subnet without gateway")
	}
	// Without a gateway: the metadata route alone, no default route.
	want := dhcp4.ClasslessRoutes([]dhcp4.Route{{Dest: netip.MustParsePrefix("169.254.169.254/32"), Router: netip.MustParseAddr("10.0.2.4")}})
	if got, _ := f.Reply.Options.Get(dhcp4.OptClasslessRoutes); !bytes.Equal(got, want) {
		t.Errorf("static routes of a subnet without gateway %v, want the metadata route alone %v", got, want)
	}

	v = dhcpView(t, func(top *topology.Topology) {
		for i := range top.Subnets {
			if top.Subnets[i].ID == "sub1-000000000000" {
				top.Subnets[i].EnableDHCP = false
			}
		}
	})
	if f, outcome := answer(t, v, vm5ID, &dhcp4.Message{Type: dhcp4.Discover, CHAddr: vm5MAC}); f != nil || outcome != DHCPNoAddress {
		t.Errorf("DISCOVER on a subnet with DHCP off: %s", outcome)
	}
}

// BenchmarkAnswerDHCP is the controller's work for one DHCP message past the switch: parse,
// decide, encode (the OFFER of a DISCOVER).
func BenchmarkAnswerDHCP(b *testing.B) {
	v := dhcpView(&testing.T{}, nil)
	p := v.Port(vm5ID)
	frame := dhcp4.AppendRequest(nil, &dhcp4.Message{Type: dhcp4.Discover, XID: 1, CHAddr: vm5MAC}, nil)
	cfg := DefaultDHCPConfig()
	out := make([]byte, 0, 600)
	b.ReportAllocs()
	for b.Loop() {
		m, err := dhcp4.Parse(frame)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := AnswerDHCP(v, cfg, p, m)
		out = f.AppendFrame(out[:0])
	}
}
