package apps

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/dhcp6"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

const (
	sub16 = "sub16-00000000000" // Net1's IPv6 subnet in withIPv6 (slaac)
	sub26 = "sub26-00000000000" // Net2's (dhcpv6-stateful, no ra mode)
)

var (
	dhcp2MAC = mustMAC("fa:16:3e:00:02:04")
	vm3v6    = netip.MustParseAddr("2001:db8:2::3")
	vm2v6    = netip.MustParseAddr("2001:db8:2::5")
)

// dhcp6View is withIPv6's scenario with Net2's stateful subnet given DNS servers and, with
// stateless, Net1's SLAAC subnet made dhcpv6-stateless (both modes) with DNS servers of its
// own and the DHCP port's address on it (as the store gives it one); edit changes it more.
func dhcp6View(t *testing.T, stateless bool, edit func(*topology.Topology)) *topology.View {
	t.Helper()
	top := withIPv6(seedTopology())
	for i := range top.Subnets {
		s := &top.Subnets[i]
		switch {
		case s.ID == sub26:
			s.DNSNameservers = []string{"2001:db8::53", "8.8.8.8", "::", "2001:db8::54", "2001:db8::53"}
		case s.ID == sub16 && stateless:
			s.IPv6RAMode, s.IPv6AddressMode = topology.IPv6DHCPStateless, topology.IPv6DHCPStateless
			s.DNSNameservers = []string{"2001:db8:1::53"}
		}
	}
	if stateless {
		for i := range top.Ports {
			if top.Ports[i].ID == "dhcp1-00000000000" {
				top.Ports[i].FixedIPs = append(top.Ports[i].FixedIPs,
					topology.FixedIP{SubnetID: sub16, IPAddress: "2001:db8:1::f816:3eff:fe00:103"})
			}
		}
	}
	if edit != nil {
		edit(top)
	}
	return topology.NewView(withVLANs(top), 7)
}

// dhcp6Flows renders the flows of host's br-int part that send DHCPv6 somewhere.
func dhcp6Flows(v *topology.View, host, part string) []string {
	var out []string
	for _, f := range flowsOf(v, host, part, AppDHCP) {
		if strings.Contains(f, "udp6") {
			out = append(out, f)
		}
	}
	return out
}

// TestDHCPv6Flows: a local port's DHCPv6 goes from LOCAL_SWITCHING to DHCP_IPV6 (only from
// its own MAC when firewalled) on a network where DHCPv6 is answered, and nowhere else;
// DHCP_IPV6 sends it to the controller through the meter.
func TestDHCPv6Flows(t *testing.T) {
	v := dhcp6View(t, false, nil)
	const toTable = " actions=goto_table:78"
	port := func(st *BridgeState, id string) string { return fmt.Sprint(st.Ports[VMPortName(id)]) }
	c1, c2 := seedBridge(v, "compute1", topology.BrInt), seedBridge(v, "compute2", topology.BrInt)
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// Net2 (stateful): VM3 on compute1, firewalled; VM2 on compute2, firewalled too.
	check("compute1 Net2", dhcp6Flows(v, "compute1", net2), []string{
		"cookie=0xd706000000000000, table=LOCAL_SWITCHING, priority=25,udp6,in_port=" + port(c1, "vm3-000000000000") +
			",vlan_tci=0x0000/0x1fff,dl_src=fa:16:3e:00:02:03,tp_src=546,tp_dst=547" + toTable})
	check("compute2 Net2", dhcp6Flows(v, "compute2", net2), []string{
		"cookie=0xd706000000000000, table=LOCAL_SWITCHING, priority=25,udp6,in_port=" + port(c2, "vm2-000000000000") +
			",vlan_tci=0x0000/0x1fff,dl_src=fa:16:3e:00:02:05,tp_src=546,tp_dst=547" + toTable})
	// Net1's subnet is slaac: dnsmasq would answer nothing there, DHCPv6 is switched.
	check("compute1 Net1 (slaac)", dhcp6Flows(v, "compute1", net1), nil)
	// The bridge part: the unknown ports' catch-all and DHCP_IPV6 itself.
	check("compute1 bridge", dhcp6Flows(v, "compute1", topology.PartBridge), []string{
		"cookie=0xd706000000000000, table=LOCAL_SWITCHING, priority=2,udp6,vlan_tci=0x0000/0x1fff,tp_src=546,tp_dst=547" + toTable,
		"cookie=0xd706000000000000, table=DHCP_IPV6, priority=1,udp6,tp_src=546,tp_dst=547 actions=meter:1,CONTROLLER:65535"})
	for _, f := range Flows(v, c1) {
		if err := Check(topology.BrInt, &f); err != nil {
			t.Error(err)
		}
	}

	// Net1 stateless: VM1 (firewalled, its own MAC only) and VM4 (port security off: any).
	v = dhcp6View(t, true, nil)
	c1, c2 = seedBridge(v, "compute1", topology.BrInt), seedBridge(v, "compute2", topology.BrInt)
	check("compute1 Net1 (stateless)", dhcp6Flows(v, "compute1", net1), []string{
		"cookie=0xd706000000000000, table=LOCAL_SWITCHING, priority=25,udp6,in_port=" + port(c1, "vm1-000000000000") +
			",vlan_tci=0x0000/0x1fff,dl_src=fa:16:3e:00:01:05,tp_src=546,tp_dst=547" + toTable})
	check("compute2 Net1 (stateless)", dhcp6Flows(v, "compute2", net1), []string{
		"cookie=0xd706000000000000, table=LOCAL_SWITCHING, priority=25,udp6,in_port=" + port(c2, "vm4-000000000000") +
			",vlan_tci=0x0000/0x1fff,tp_src=546,tp_dst=547" + toTable})

	// DHCP off on Net2's IPv6 subnet, or the DHCP port without an address on it: nothing.
	v = dhcp6View(t, false, func(top *topology.Topology) {
		for i := range top.Subnets {
			if top.Subnets[i].ID == sub26 {
				top.Subnets[i].EnableDHCP = false
			}
		}
	})
	check("compute1 Net2, DHCP off", dhcp6Flows(v, "compute1", net2), nil)
	v = dhcp6View(t, false, func(top *topology.Topology) {
		for i := range top.Ports {
			if top.Ports[i].ID == "dhcp2-00000000000" {
				top.Ports[i].FixedIPs = top.Ports[i].FixedIPs[:1]
			}
		}
	})
	check("compute1 Net2, no server address", dhcp6Flows(v, "compute1", net2), nil)
}

// dhcp6Case is one client message and the answer due to it.
type dhcp6Case struct {
	name    string
	m       dhcp6.Message
	outcome string
	typ     dhcp6.MessageType // 0: no answer
	opts    []dhcp6.Option    // after the client's and the server's IDs
}

var (
	v6ClientID = dhcp6.DUIDLL(mustMAC("fa:16:3e:00:02:03"))
	dnsDomain  = dhcp6.AppendDomains(nil, "example.org")
)

func ia6(iaid, t1, t2 uint32, status *dhcp6.Status, addrs ...dhcp6.IAAddr) dhcp6.Option {
	return dhcp6.Option{Code: dhcp6.OptIANA, Data: dhcp6.AppendIA(nil, &dhcp6.IA{IAID: iaid, T1: t1, T2: t2, Addrs: addrs, Status: status})}
}

func status6(code dhcp6.StatusCode, msg string) dhcp6.Option {
	return dhcp6.Option{Code: dhcp6.OptStatusCode, Data: dhcp6.AppendStatus(nil, code, msg)}
}

func addrs6(as ...string) []byte {
	var b []byte
	for _, a := range as {
		b = dhcp6.AppendAddrs(b, netip.MustParseAddr(a))
	}
	return b
}

// runDHCPv6 answers each case from port portID (its MAC unless the case sets another) and
// checks the answer byte for byte: type, transaction ID, options in order, and the frame's
// addresses (from the DHCP port's MAC and link-local address to the client's).
func runDHCPv6(t *testing.T, v *topology.View, portID string, srvMAC net.HardwareAddr, cases []dhcp6Case) {
	t.Helper()
	p := v.Port(portID)
	clientLL := ofproto.LinkLocal(p.MAC)
	for _, c := range cases {
		m := c.m
		m.XID, m.SrcIP = 0x123456, clientLL
		if m.SrcMAC == nil {
			m.SrcMAC = p.MAC
		}
		// Through the wire format, as the controller receives it.
		parsed, err := dhcp6.Parse(dhcp6.AppendRequest(nil, &m, nil))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f, outcome := AnswerDHCPv6(v, DHCPConfig{LeaseTime: time.Hour, Domain: "example.org"}, p, parsed)
		if outcome != c.outcome {
			t.Errorf("%s: outcome %s, want %s", c.name, outcome, c.outcome)
		}
		if c.typ == 0 {
			if f != nil {
				t.Errorf("%s: answered %s", c.name, f.Answer.Type)
			}
			continue
		}
		if f == nil {
			t.Errorf("%s: no answer, want %s", c.name, c.typ)
			continue
		}
		back, err := dhcp6.ParseReply(f.AppendFrame(nil))
		if err != nil {
			t.Fatalf("%s: reply does not read back: %v", c.name, err)
		}
		if !bytes.Equal(back.SrcMAC, srvMAC) || back.SrcIP != ofproto.LinkLocal(srvMAC) || !bytes.Equal(back.DstMAC, p.MAC) || back.DstIP != clientLL {
			t.Errorf("%s: from %s %s to %s %s", c.name, back.SrcMAC, back.SrcIP, back.DstMAC, back.DstIP)
		}
		var opts []dhcp6.Option
		if m.ClientID != nil {
			opts = append(opts, dhcp6.Option{Code: dhcp6.OptClientID, Data: m.ClientID})
		}
		opts = append(opts, dhcp6.Option{Code: dhcp6.OptServerID, Data: dhcp6.DUIDLL(srvMAC)})
		want := (&dhcp6.Answer{Type: c.typ, XID: 0x123456, Options: append(opts, c.opts...)}).AppendMessage(nil)
		if got := back.Answer.AppendMessage(nil); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, describe6(back.Answer), describe6(&dhcp6.Answer{Type: c.typ, XID: 0x123456, Options: append(opts, c.opts...)}))
		}
	}
}

// describe6 renders an answer's options, for failures.
func describe6(a *dhcp6.Answer) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s", a.Type)
	for _, o := range a.Options {
		fmt.Fprintf(&sb, " [%d %x]", o.Code, o.Data)
	}
	return sb.String()
}

func TestAnswerDHCPv6Stateful(t *testing.T) {
	v := dhcp6View(t, false, nil)
	srvID := dhcp6.DUIDLL(dhcp2MAC)
	other := dhcp6.DUIDLL(mustMAC("fa:16:3e:00:09:09"))
	asked := func(as ...netip.Addr) []dhcp6.IA {
		ia := dhcp6.IA{IAID: 1}
		for _, a := range as {
			ia.Addrs = append(ia.Addrs, dhcp6.IAAddr{Addr: a, Preferred: 100, Valid: 200})
		}
		return []dhcp6.IA{ia}
	}
	oro := []byte{0, 23, 0, 24}
	// An hour's lease: renew at 1800 s, rebind at 3150 s, addresses valid and preferred 3600 s.
	vm3 := ia6(1, 1800, 3150, nil, dhcp6.IAAddr{Addr: vm3v6, Preferred: 3600, Valid: 3600})
	dns := dhcp6.Option{Code: dhcp6.OptDNSServers, Data: addrs6("2001:db8::53", "2001:db8::54")}
	domain := dhcp6.Option{Code: dhcp6.OptDomainSearch, Data: dnsDomain}
	success := status6(dhcp6.StatusSuccess, "success")
	noAddrs := &dhcp6.Status{Code: dhcp6.StatusNoAddrsAvail, Message: "no addresses available"}
	runDHCPv6(t, v, "vm3-000000000000", dhcp2MAC, []dhcp6Case{
		{"SOLICIT", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: asked(), ORO: oro}, DHCPv6Advertised, dhcp6.Advertise,
			[]dhcp6.Option{vm3, success, {Code: dhcp6.OptPreference, Data: []byte{255}}, dns, domain}},
		{"SOLICIT with rapid commit", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: asked(), ORO: oro, RapidCommit: true},
			DHCPv6Replied, dhcp6.Reply, []dhcp6.Option{vm3, success, {Code: dhcp6.OptRapidCommit, Data: []byte{}}, dns, domain}},
		{"SOLICIT asking for DNS only", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: asked(), ORO: []byte{0, 23}},
			DHCPv6Advertised, dhcp6.Advertise, []dhcp6.Option{vm3, success, {Code: dhcp6.OptPreference, Data: []byte{255}}, dns}},
		{"SOLICIT without option request", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: asked()},
			DHCPv6Advertised, dhcp6.Advertise, []dhcp6.Option{vm3, success, {Code: dhcp6.OptPreference, Data: []byte{255}}, dns, domain}},
		{"SOLICIT with two IA_NAs", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: []dhcp6.IA{{IAID: 1}, {IAID: 2}}, ORO: []byte{}},
			DHCPv6Advertised, dhcp6.Advertise, []dhcp6.Option{vm3, ia6(2, 0, 0, noAddrs), success, {Code: dhcp6.OptPreference, Data: []byte{255}}}},
		{"SOLICIT asking for another address", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: asked(vm2v6), ORO: []byte{}},
			DHCPv6Advertised, dhcp6.Advertise, []dhcp6.Option{vm3, success, {Code: dhcp6.OptPreference, Data: []byte{255}}}},
		{"SOLICIT without IA_NA", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, ORO: oro}, DHCPv6NoAddrs, dhcp6.Advertise,
			[]dhcp6.Option{status6(dhcp6.StatusNoAddrsAvail, "no addresses available")}},
		{"SOLICIT with a server ID", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, ServerID: srvID, IANA: asked()}, DHCPv6Invalid, 0, nil},
		{"SOLICIT without client ID", dhcp6.Message{Type: dhcp6.Solicit, IANA: asked()}, DHCPv6Invalid, 0, nil},
		{"SOLICIT from another MAC", dhcp6.Message{Type: dhcp6.Solicit, SrcMAC: vm1MAC, ClientID: v6ClientID, IANA: asked()}, DHCPv6NotPort, 0, nil},

		{"REQUEST", dhcp6.Message{Type: dhcp6.Request, ClientID: v6ClientID, ServerID: srvID, IANA: asked(vm3v6), ORO: oro},
			DHCPv6Replied, dhcp6.Reply, []dhcp6.Option{vm3, dns, domain}},
		{"REQUEST of another port's address", dhcp6.Message{Type: dhcp6.Request, ClientID: v6ClientID, ServerID: srvID, IANA: asked(vm2v6), ORO: oro},
			DHCPv6Replied, dhcp6.Reply, []dhcp6.Option{vm3, dns, domain}},
		{"REQUEST of an address off the link", dhcp6.Message{Type: dhcp6.Request, ClientID: v6ClientID, ServerID: srvID,
			IANA: asked(netip.MustParseAddr("2001:db8:99::3")), ORO: oro}, DHCPv6NotOnLink, dhcp6.Reply,
			[]dhcp6.Option{ia6(1, 0, 0, &dhcp6.Status{Code: dhcp6.StatusNotOnLink, Message: "not on link"}), dns, domain}},
		{"REQUEST for another server", dhcp6.Message{Type: dhcp6.Request, ClientID: v6ClientID, ServerID: other, IANA: asked(vm3v6)}, DHCPv6OtherSrv, 0, nil},
		{"REQUEST without server ID", dhcp6.Message{Type: dhcp6.Request, ClientID: v6ClientID, IANA: asked(vm3v6)}, DHCPv6Invalid, 0, nil},

		{"RENEW", dhcp6.Message{Type: dhcp6.Renew, ClientID: v6ClientID, ServerID: srvID, IANA: asked(vm3v6), ORO: oro},
			DHCPv6Replied, dhcp6.Reply, []dhcp6.Option{vm3, dns, domain}},
		{"RENEW of its address and an old one", dhcp6.Message{Type: dhcp6.Renew, ClientID: v6ClientID, ServerID: srvID,
			IANA: asked(vm3v6, netip.MustParseAddr("2001:db8:2::50")), ORO: []byte{}}, DHCPv6Replied, dhcp6.Reply,
			[]dhcp6.Option{ia6(1, 1800, 3150, nil, dhcp6.IAAddr{Addr: vm3v6, Preferred: 3600, Valid: 3600},
				dhcp6.IAAddr{Addr: netip.MustParseAddr("2001:db8:2::50")})}},
		{"REBIND", dhcp6.Message{Type: dhcp6.Rebind, ClientID: v6ClientID, IANA: asked(vm3v6), ORO: oro},
			DHCPv6Replied, dhcp6.Reply, []dhcp6.Option{vm3, dns, domain}},
		{"REBIND with a server ID", dhcp6.Message{Type: dhcp6.Rebind, ClientID: v6ClientID, ServerID: srvID, IANA: asked(vm3v6)}, DHCPv6Invalid, 0, nil},

		{"CONFIRM", dhcp6.Message{Type: dhcp6.Confirm, ClientID: v6ClientID, IANA: asked(vm3v6)}, DHCPv6Confirmed, dhcp6.Reply,
			[]dhcp6.Option{status6(dhcp6.StatusSuccess, "all addresses still on link")}},
		{"CONFIRM of another port's address", dhcp6.Message{Type: dhcp6.Confirm, ClientID: v6ClientID, IANA: asked(vm2v6)}, DHCPv6NotOnLink, dhcp6.Reply,
			[]dhcp6.Option{status6(dhcp6.StatusNotOnLink, "not on link")}},
		{"CONFIRM of nothing", dhcp6.Message{Type: dhcp6.Confirm, ClientID: v6ClientID, IANA: asked()}, DHCPv6Invalid, 0, nil},

		{"RELEASE", dhcp6.Message{Type: dhcp6.Release, ClientID: v6ClientID, ServerID: srvID, IANA: asked(vm3v6)}, DHCPv6Released, dhcp6.Reply,
			[]dhcp6.Option{status6(dhcp6.StatusSuccess, "release received")}},
		{"DECLINE", dhcp6.Message{Type: dhcp6.Decline, ClientID: v6ClientID, ServerID: srvID, IANA: asked(vm3v6)}, DHCPv6Declined, dhcp6.Reply,
			[]dhcp6.Option{status6(dhcp6.StatusSuccess, "release received")}},
		{"RELEASE for another server", dhcp6.Message{Type: dhcp6.Release, ClientID: v6ClientID, ServerID: other, IANA: asked(vm3v6)}, DHCPv6OtherSrv, 0, nil},

		{"INFORMATION-REQUEST", dhcp6.Message{Type: dhcp6.InformationRequest, ORO: oro}, DHCPv6Informed, dhcp6.Reply, []dhcp6.Option{dns, domain}},
		{"INFORMATION-REQUEST with client and server ID", dhcp6.Message{Type: dhcp6.InformationRequest, ClientID: v6ClientID, ServerID: srvID, ORO: oro},
			DHCPv6Informed, dhcp6.Reply, []dhcp6.Option{dns, domain}},
		{"INFORMATION-REQUEST for another server", dhcp6.Message{Type: dhcp6.InformationRequest, ServerID: other}, DHCPv6OtherSrv, 0, nil},
		{"INFORMATION-REQUEST with an IA_NA", dhcp6.Message{Type: dhcp6.InformationRequest, IANA: asked()}, DHCPv6Invalid, 0, nil},
	})
}

func TestAnswerDHCPv6Stateless(t *testing.T) {
	v := dhcp6View(t, true, nil)
	dhcp1ID := dhcp6.DUIDLL(dhcp1MAC)
	vm1ID := dhcp6.DUIDLL(vm1MAC)
	oro := []byte{0, 23, 0, 24}
	runDHCPv6(t, v, "vm1-000000000000", dhcp1MAC, []dhcp6Case{
		{"INFORMATION-REQUEST", dhcp6.Message{Type: dhcp6.InformationRequest, ClientID: vm1ID, ORO: oro}, DHCPv6Informed, dhcp6.Reply,
			[]dhcp6.Option{{Code: dhcp6.OptDNSServers, Data: addrs6("2001:db8:1::53")}, {Code: dhcp6.OptDomainSearch, Data: dnsDomain}}},
		// dnsmasq's answer in static mode to a client it has no address for.
		{"SOLICIT", dhcp6.Message{Type: dhcp6.Solicit, ClientID: vm1ID, IANA: []dhcp6.IA{{IAID: 5}}, ORO: oro}, DHCPv6NoAddrs, dhcp6.Advertise,
			[]dhcp6.Option{status6(dhcp6.StatusNoAddrsAvail, "no addresses available")}},
		{"SOLICIT with rapid commit", dhcp6.Message{Type: dhcp6.Solicit, ClientID: vm1ID, IANA: []dhcp6.IA{{IAID: 5}}, RapidCommit: true},
			DHCPv6NoAddrs, dhcp6.Reply, []dhcp6.Option{{Code: dhcp6.OptRapidCommit, Data: []byte{}}, status6(dhcp6.StatusNoAddrsAvail, "no addresses available")}},
		{"REQUEST", dhcp6.Message{Type: dhcp6.Request, ClientID: vm1ID, ServerID: dhcp1ID, IANA: []dhcp6.IA{{IAID: 5}}, ORO: []byte{}}, DHCPv6NoAddrs, dhcp6.Reply,
			[]dhcp6.Option{ia6(5, 0, 0, &dhcp6.Status{Code: dhcp6.StatusNoAddrsAvail, Message: "no addresses available"})}},
		{"RENEW", dhcp6.Message{Type: dhcp6.Renew, ClientID: vm1ID, ServerID: dhcp1ID, ORO: []byte{},
			IANA: []dhcp6.IA{{IAID: 5, Addrs: []dhcp6.IAAddr{{Addr: vm1v6}}}}}, DHCPv6NoAddrs, dhcp6.Reply,
			[]dhcp6.Option{ia6(5, 0, 0, &dhcp6.Status{Code: dhcp6.StatusNoBinding, Message: "no binding"})}},
		{"CONFIRM of its SLAAC address", dhcp6.Message{Type: dhcp6.Confirm, ClientID: vm1ID, IANA: []dhcp6.IA{{IAID: 5, Addrs: []dhcp6.IAAddr{{Addr: vm1v6}}}}},
			DHCPv6NotOnLink, dhcp6.Reply, []dhcp6.Option{status6(dhcp6.StatusNotOnLink, "not on link")}},
	})
}

// Where dnsmasq would have no --dhcp-range: nothing is answered.
func TestAnswerDHCPv6NotServed(t *testing.T) {
	solicit := dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: []dhcp6.IA{{IAID: 1}}}
	inform := dhcp6.Message{Type: dhcp6.InformationRequest}
	for name, v := range map[string]*topology.View{
		"slaac subnet": dhcp6View(t, false, nil),
		"ipv6_ra_mode only": dhcp6View(t, true, func(top *topology.Topology) {
			for i := range top.Subnets {
				if top.Subnets[i].ID == sub16 {
					top.Subnets[i].IPv6AddressMode = ""
				}
			}
		}),
		"DHCP off": dhcp6View(t, true, func(top *topology.Topology) {
			for i := range top.Subnets {
				if top.Subnets[i].ID == sub16 {
					top.Subnets[i].EnableDHCP = false
				}
			}
		}),
		"prefix shorter than /64": dhcp6View(t, true, func(top *topology.Topology) {
			for i := range top.Subnets {
				if top.Subnets[i].ID == sub16 {
					top.Subnets[i].CIDR = "2001:db8::/48"
				}
			}
		}),
	} {
		t.Run(name, func(t *testing.T) {
			runDHCPv6(t, v, "vm1-000000000000", dhcp1MAC, []dhcp6Case{
				{"SOLICIT", solicit, DHCPv6NoServer, 0, nil},
				{"INFORMATION-REQUEST", inform, DHCPv6NoServer, 0, nil},
			})
		})
	}
	// A subnet with neither mode set is served as dnsmasq's static range: addresses.
	v := dhcp6View(t, false, func(top *topology.Topology) {
		for i := range top.Subnets {
			if top.Subnets[i].ID == sub26 {
				top.Subnets[i].IPv6AddressMode = ""
			}
		}
	})
	runDHCPv6(t, v, "vm3-000000000000", dhcp2MAC, []dhcp6Case{
		{"SOLICIT, no mode", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: []dhcp6.IA{{IAID: 1}}, ORO: []byte{}}, DHCPv6Advertised, dhcp6.Advertise,
			[]dhcp6.Option{ia6(1, 1800, 3150, nil, dhcp6.IAAddr{Addr: vm3v6, Preferred: 3600, Valid: 3600}), status6(dhcp6.StatusSuccess, "success"),
				{Code: dhcp6.OptPreference, Data: []byte{255}}}},
	})
}

// A port without an address on the stateful subnet (it asked for none) is told the link's
// DNS servers, and has no address to get.
func TestAnswerDHCPv6PortWithoutAddress(t *testing.T) {
	v := dhcp6View(t, false, func(top *topology.Topology) {
		for i := range top.Ports {
			if top.Ports[i].ID == "vm3-000000000000" {
				top.Ports[i].FixedIPs = top.Ports[i].FixedIPs[:1]
			}
		}
	})
	runDHCPv6(t, v, "vm3-000000000000", dhcp2MAC, []dhcp6Case{
		{"INFORMATION-REQUEST", dhcp6.Message{Type: dhcp6.InformationRequest}, DHCPv6Informed, dhcp6.Reply,
			[]dhcp6.Option{{Code: dhcp6.OptDNSServers, Data: addrs6("2001:db8::53", "2001:db8::54")}, {Code: dhcp6.OptDomainSearch, Data: dnsDomain}}},
		{"SOLICIT", dhcp6.Message{Type: dhcp6.Solicit, ClientID: v6ClientID, IANA: []dhcp6.IA{{IAID: 1}}}, DHCPv6NoAddrs, dhcp6.Advertise,
			[]dhcp6.Option{status6(dhcp6.StatusNoAddrsAvail, "no addresses available")}},
	})
}

// BenchmarkAnswerDHCPv6 is the controller's work for one DHCPv6 message past the switch:
// parse, decide, encode (the ADVERTISE of a SOLICIT, as BenchmarkAnswerDHCP's OFFER).
func BenchmarkAnswerDHCPv6(b *testing.B) {
	v := dhcp6View(&testing.T{}, false, nil)
	p := v.Port("vm3-000000000000")
	frame := dhcp6.AppendRequest(nil, &dhcp6.Message{Type: dhcp6.Solicit, XID: 1, SrcMAC: p.MAC, SrcIP: ofproto.LinkLocal(p.MAC),
		ClientID: dhcp6.DUIDLL(p.MAC), IANA: []dhcp6.IA{{IAID: 1}}, ORO: []byte{0, 23, 0, 24}}, nil)
	cfg := DefaultDHCPConfig()
	out := make([]byte, 0, 600)
	b.ReportAllocs()
	for b.Loop() {
		m, err := dhcp6.Parse(frame)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := AnswerDHCPv6(v, cfg, p, m)
		out = f.AppendFrame(out[:0])
	}
}
