package apps

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/topology"
	"go.uber.org/zap"
)

// The firewall's flows run through the simulated switch (ofsim models conntrack and
// conjunctions as Open vSwitch does): each case sends one frame into compute1's br-int of
// the seed scenario, with VM5 (10.0.1.7, default group) added next to VM1 on Net1.

const (
	vm1IP, vm3IP, vm5IP = "10.0.1.5", "10.0.2.3", "10.0.1.7"
	vm5ID               = "vm5-000000000000"
)

var (
	vm1MAC = mustMAC("fa:16:3e:00:01:05")
	vm3MAC = mustMAC("fa:16:3e:00:02:03")
	vm5MAC = mustMAC("fa:16:3e:00:01:07")
	gw1MAC = mustMAC("fa:16:3e:00:01:01")
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func firewallTopology() *topology.Topology {
	t := seedTopology()
	t.Ports = append(t.Ports, topology.Port{ID: vm5ID, NetworkID: "net1-000000000000", MACAddress: vm5MAC.String(),
		DeviceOwner: "compute:nova", DeviceID: "vm5", HostID: "compute1", PortSecurityEnabled: true,
		SecurityGroups: []string{"sgdef-0000000000"},
		FixedIPs:       []topology.FixedIP{{SubnetID: "sub1-000000000000", IPAddress: vm5IP}}})
	return withVLANs(t)
}

// l4Frame is an Ethernet frame (802.1Q-tagged when vlan > 0) carrying IPv4 with a TCP or
// UDP header (proto 6 or 17) or an ICMP echo request (proto 1, sport as its identifier).
func l4Frame(dst, src net.HardwareAddr, vlan uint16, ipSrc, ipDst string, proto uint8, sport, dport uint16) []byte {
	b := append(append([]byte{}, dst...), src...)
	if vlan > 0 {
		b = binary.BigEndian.AppendUint16(b, ofproto.EthTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, vlan)
	}
	b = binary.BigEndian.AppendUint16(b, ofproto.EthTypeIPv4)
	var l4 []byte
	switch proto {
	case 1:
		l4 = []byte{8, 0, 0, 0, byte(sport >> 8), byte(sport), 0, 1}
	case 6:
		l4 = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sport), dport)
		l4 = append(l4, make([]byte, 16)...)
	default:
		l4 = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sport), dport)
		l4 = append(l4, 0, 8, 0, 0)
	}
	ip := []byte{0x45, 0, 0, byte(20 + len(l4)), 0, 1, 0, 0, 64, proto, 0, 0}
	ip = append(ip, netip.MustParseAddr(ipSrc).AsSlice()...)
	ip = append(ip, netip.MustParseAddr(ipDst).AsSlice()...)
	return append(append(b, ip...), l4...)
}

func arpFrame(src net.HardwareAddr, spa, tpa string) []byte {
	return ofproto.AppendARPRequest(nil, 0, src, netip.MustParseAddr(spa), netip.MustParseAddr(tpa))
}

type fwBridge struct {
	t  *testing.T
	sw *ofsim.Switch
	st *BridgeState
}

func newFWBridge(t *testing.T, v *topology.View, host string) *fwBridge {
	st := seedBridge(v, host, topology.BrInt)
	var ports []ofsim.Port
	for name, no := range st.Ports {
		ports = append(ports, ofsim.Port{No: no, Name: name})
	}
	b := &fwBridge{t: t, sw: ofsim.New(zap.NewNop(), ofsim.Config{Ports: ports}), st: st}
	b.load(v)
	return b
}

// load installs the flows of View v, keeping the tracked connections.
func (b *fwBridge) load(v *topology.View) {
	b.t.Helper()
	if err := b.sw.ReplaceFlows(Flows(v, b.st)); err != nil {
		b.t.Fatal(err)
	}
}

func (b *fwBridge) port(id string) uint32 { return b.st.Ports[VMPortName(id)] }

// send executes frame from inPort and returns the ports it left by.
func (b *fwBridge) send(inPort uint32, frame []byte) []uint32 {
	b.t.Helper()
	outs, err := b.sw.Execute(inPort, frame)
	if err != nil {
		b.t.Fatal(err)
	}
	var ports []uint32
	for _, o := range outs {
		ports = append(ports, o.Port)
	}
	return ports
}

func (b *fwBridge) expect(what string, inPort uint32, frame []byte, want ...uint32) {
	b.t.Helper()
	got := b.send(inPort, frame)
	if len(got) != len(want) || (len(want) == 1 && got[0] != want[0]) {
		b.t.Errorf("%s: left by %v, want %v", what, got, want)
	}
}

func TestFirewallFlows(t *testing.T) {
	v := topology.NewView(firewallTopology(), 7)
	b := newFWBridge(t, v, "compute1")
	vm1, vm3, vm5 := b.port("vm1-000000000000"), b.port("vm3-000000000000"), b.port(vm5ID)
	tun := b.st.Ports[PortPatchTun]
	qr1 := b.st.Ports[OVSPortName(v.Port("qr1-000000000000").Port)]
	net1VLAN, _ := v.LocalVLAN("compute1", "net1-000000000000")
	net2VLAN, _ := v.LocalVLAN("compute1", "net2-000000000000")
	const tcp, udp, icmp = 6, 17, 1

	// The default group: its members reach each other, replies pass.
	b.expect("VM5 -> VM1 tcp/80 (same group)", vm5, l4Frame(vm1MAC, vm5MAC, 0, vm5IP, vm1IP, tcp, 40000, 80), vm1)
	b.expect("VM1 -> VM5 reply", vm1, l4Frame(vm5MAC, vm1MAC, 0, vm1IP, vm5IP, tcp, 80, 40000), vm5)
	b.expect("VM5 -> VM1 again (established)", vm5, l4Frame(vm1MAC, vm5MAC, 0, vm5IP, vm1IP, tcp, 40000, 80), vm1)
	// From outside the group (a routed or floating IP source, through the tunnel).
	outside := "172.24.4.100"
	b.expect("outside -> VM1 tcp/80 refused", tun, l4Frame(vm1MAC, gw1MAC, 0x1000|net1VLAN, outside, vm1IP, tcp, 40001, 80))
	b.expect("outside -> VM1 tcp/22 (ssh group)", tun, l4Frame(vm1MAC, gw1MAC, 0x1000|net1VLAN, outside, vm1IP, tcp, 40002, 22), vm1)
	b.expect("outside -> VM1 ping (ssh group)", tun, l4Frame(vm1MAC, gw1MAC, 0x1000|net1VLAN, outside, vm1IP, icmp, 7, 0), vm1)
	b.expect("outside -> VM5 tcp/22 refused (default group only)", tun, l4Frame(vm5MAC, gw1MAC, 0x1000|net1VLAN, outside, vm5IP, tcp, 40003, 22))
	// Egress is open in the default group, and its replies come back with no ingress rule.
	b.expect("VM5 -> outside tcp/443", vm5, l4Frame(gw1MAC, vm5MAC, 0, vm5IP, outside, tcp, 40004, 443), qr1)
	b.expect("outside -> VM5 reply", tun, l4Frame(vm5MAC, gw1MAC, 0x1000|net1VLAN, outside, vm5IP, tcp, 443, 40004), vm5)

	// Anti-spoofing.
	b.expect("VM5 with another IP", vm5, l4Frame(vm1MAC, vm5MAC, 0, "10.0.1.99", vm1IP, tcp, 40005, 80))
	b.expect("VM5 with another MAC", vm5, l4Frame(vm1MAC, mustMAC("fa:16:3e:00:01:99"), 0, vm5IP, vm1IP, tcp, 40006, 80))
	b.expect("VM5 ARP with another sender address", vm5, arpFrame(vm5MAC, "10.0.1.99", vm1IP))
	b.expect("VM5 ARP for VM1 (to the controller)", vm5, arpFrame(vm5MAC, vm5IP, vm1IP), ofproto.PortController)
	b.expect("VM5 as a DHCP server", vm5, l4Frame(vm1MAC, vm5MAC, 0, vm5IP, vm1IP, udp, 67, 68))

	// VM3's stateless group: udp 5000-5010 from 10.0.0.0/16 only, and no replies for free.
	b.expect("udp/5005 to VM3", tun, l4Frame(vm3MAC, gw1MAC, 0x1000|net2VLAN, "10.0.1.6", vm3IP, udp, 999, 5005), vm3)
	b.expect("udp/5011 to VM3 refused", tun, l4Frame(vm3MAC, gw1MAC, 0x1000|net2VLAN, "10.0.1.6", vm3IP, udp, 999, 5011))
	b.expect("udp/5005 from outside 10.0/16 refused", tun, l4Frame(vm3MAC, gw1MAC, 0x1000|net2VLAN, "10.1.0.1", vm3IP, udp, 999, 5005))
	if n := b.sw.Connections(); n == 0 {
		t.Fatal("no connection tracked")
	}

	// VM5 leaves the default group: its established connection to VM1 is cut both ways,
	// and it cannot open a new one.
	before := b.sw.Connections()
	var p5 topology.Port
	for _, p := range firewallTopology().Ports {
		if p.ID == vm5ID {
			p5 = p
		}
	}
	p5.SecurityGroups = []string{"sgssh-0000000000"}
	if _, err := v.Apply([]topology.Change{{Revision: 8, Kind: topology.KindPort, ID: vm5ID, Op: topology.OpUpdate, Object: &p5}}); err != nil {
		t.Fatal(err)
	}
	b.load(v)
	b.expect("VM5 -> VM1 established, after the cut", vm5, l4Frame(vm1MAC, vm5MAC, 0, vm5IP, vm1IP, tcp, 40000, 80))
	b.expect("VM1 -> VM5 reply, after the cut", vm1, l4Frame(vm5MAC, vm1MAC, 0, vm1IP, vm5IP, tcp, 80, 40000))
	b.expect("VM5 -> VM1 new connection", vm5, l4Frame(vm1MAC, vm5MAC, 0, vm5IP, vm1IP, tcp, 40007, 80))
	if b.sw.Connections() < before {
		t.Errorf("connections %d, were %d: the cut marks, it does not forget", b.sw.Connections(), before)
	}

	// The ssh rule is removed: the established ssh connection from outside is cut.
	b.expect("outside -> VM1 tcp/22 established", tun, l4Frame(vm1MAC, gw1MAC, 0x1000|net1VLAN, outside, vm1IP, tcp, 40002, 22), vm1)
	var ssh topology.SecurityGroupRule
	for _, r := range firewallTopology().SecurityGroupRules {
		if r.ID == "rssh1" {
			ssh = r
		}
	}
	if _, err := v.Apply([]topology.Change{{Revision: 9, Kind: topology.KindSecurityGroupRule, ID: ssh.ID, Op: topology.OpDelete, Object: &ssh}}); err != nil {
		t.Fatal(err)
	}
	b.load(v)
	b.expect("outside -> VM1 tcp/22 established, rule removed", tun, l4Frame(vm1MAC, gw1MAC, 0x1000|net1VLAN, outside, vm1IP, tcp, 40002, 22))
	b.expect("VM1 -> outside reply, rule removed", vm1, l4Frame(gw1MAC, vm1MAC, 0, vm1IP, outside, tcp, 22, 40002))
	b.expect("outside -> VM1 ping still allowed", tun, l4Frame(vm1MAC, gw1MAC, 0x1000|net1VLAN, outside, vm1IP, icmp, 8, 0), vm1)
}

// TestFirewallAffected checks that a member joining a group touches, on other hosts, only
// the group's part on the hosts whose ports use it as remote group (and its own network).
func TestFirewallAffected(t *testing.T) {
	v := topology.NewView(firewallTopology(), 7)
	var p5 topology.Port
	for _, p := range firewallTopology().Ports {
		if p.ID == vm5ID {
			p5 = p
		}
	}
	p5.AllowedAddressPairs = []topology.AddressPair{{IPAddress: "10.0.1.200", MACAddress: p5.MACAddress}}
	aff, err := v.Apply([]topology.Change{{Revision: 8, Kind: topology.KindPort, ID: vm5ID, Op: topology.OpUpdate, Object: &p5}})
	if err != nil {
		t.Fatal(err)
	}
	// VM2 on compute2 is in the default group, whose ingress rule names the default group.
	part := topology.RemoteGroupPart(topology.DirectionIngress, "sgdef-0000000000")
	if !aff.Parts["compute2"][part] {
		t.Errorf("compute2 parts %v: want %s", aff.Parts["compute2"], part)
	}
	for p := range aff.Parts["network"] {
		if Shared(p) {
			t.Errorf("network (no firewalled port) had remote group part %s touched", p)
		}
	}
	if aff.Hosts["network"] {
		t.Error("network (no firewalled port) touched whole")
	}
	c2 := seedBridge(v, "compute2", topology.BrInt)
	want := ofproto.Flow{Table: IntRulesIngress, Priority: prioFWConj, Cookie: Cookie(AppFirewall),
		Match:   ofproto.Match{ofproto.EthType(ofproto.EthTypeIPv4), ofproto.IPv4Src(netip.MustParseAddr("10.0.1.200"))}.Canonical(),
		Actions: []ofproto.Action{ofproto.Conjunction{ID: 3, Clause: 0, NClauses: 2}}}
	var found bool
	for _, f := range FlowsOf(v, c2, part) {
		found = found || f.String() == want.String()
	}
	if !found {
		t.Errorf("compute2's remote group flows lack %s:\n%v", want.String(), FlowsOf(v, c2, part))
	}
}

func TestCoverPrefixes(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, c := range []struct{ in, want []netip.Prefix }{
		{pfx("10.0.0.2/32", "10.0.0.3/32", "10.0.0.4/32", "10.0.0.5/32", "10.0.0.6/32", "10.0.0.7/32", "10.0.0.8/32"),
			pfx("10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/32")},
		{pfx("10.0.0.1/32", "10.0.0.2/32"), pfx("10.0.0.1/32", "10.0.0.2/32")}, // not siblings
		{pfx("10.0.0.0/24", "10.0.0.7/32", "10.0.1.0/32"), pfx("10.0.0.0/24", "10.0.1.0/32")},
		{pfx("10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"), pfx("10.0.0.0/30")},
		{nil, nil},
	} {
		if got := topology.CoverPrefixes(c.in); !slices.Equal(got, c.want) {
			t.Errorf("CoverPrefixes(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestFirewallPortWithoutAddress checks a firewalled port with groups and no fixed IP (a
// port on a network without a subnet, as Neutron allows): it may send only from its
// allowed address pairs, and its groups' members see it by those alone.
func TestFirewallPortWithoutAddress(t *testing.T) {
	const vm6ID, pairIP = "vm6-000000000000", "10.0.1.210"
	vm6MAC := mustMAC("fa:16:3e:00:01:10")
	topo := firewallTopology()
	topo.Ports = append(topo.Ports, topology.Port{ID: vm6ID, NetworkID: "net1-000000000000", MACAddress: vm6MAC.String(),
		DeviceOwner: "compute:nova", DeviceID: "vm6", HostID: "compute1", PortSecurityEnabled: true,
		SecurityGroups: []string{"sgdef-0000000000"}, FixedIPs: []topology.FixedIP{},
		AllowedAddressPairs: []topology.AddressPair{{IPAddress: pairIP, MACAddress: vm6MAC.String()}}})
	v := topology.NewView(topo, 7)
	b := newFWBridge(t, v, "compute1")
	vm1, vm6 := b.port("vm1-000000000000"), b.port(vm6ID)
	if vm6 == 0 {
		t.Fatal("VM6 is not plugged on compute1")
	}
	const tcp = 6
	b.expect("VM6 from its pair -> VM1 tcp/80 (same group)", vm6, l4Frame(vm1MAC, vm6MAC, 0, pairIP, vm1IP, tcp, 40000, 80), vm1)
	b.expect("VM1 -> VM6's pair tcp/80 (same group)", vm1, l4Frame(vm6MAC, vm1MAC, 0, vm1IP, pairIP, tcp, 40001, 80), vm6)
	b.expect("VM6 from another address", vm6, l4Frame(vm1MAC, vm6MAC, 0, "10.0.1.99", vm1IP, tcp, 40002, 80))
	b.expect("VM6 from VM5's address", vm6, l4Frame(vm1MAC, vm6MAC, 0, vm5IP, vm1IP, tcp, 40003, 80))
	b.expect("VM6 ARP with another sender address", vm6, arpFrame(vm6MAC, "10.0.1.99", vm1IP))

	// Its only sources are the pair's: one ARP and one IPv4 flow.
	var sources []string
	reg := ofproto.Reg(RegPort, vm6)
	for _, f := range Flows(v, b.st) {
		if f.Table == IntBaseEgress && slices.ContainsFunc(f.Match, reg.Equal) {
			sources = append(sources, f.String())
		}
	}
	if len(sources) != 2 {
		t.Fatalf("VM6's BASE_EGRESS flows %v, want its pair's ARP and IPv4 flows only", sources)
	}
	want := netip.MustParsePrefix(pairIP + "/32")
	if got := v.GroupPrefixes("sgdef-0000000000"); !slices.ContainsFunc(got, func(p netip.Prefix) bool { return p.Contains(want.Addr()) }) {
		t.Fatalf("default group prefixes %v lack VM6's pair %s", got, want)
	}
}

// l6Frame is l4Frame for IPv6: TCP or UDP (proto 6 or 17) with ports, or an ICMPv6 echo
// request (proto 58, sport as its identifier; dport 129 makes it a reply).
func l6Frame(dst, src net.HardwareAddr, vlan uint16, ipSrc, ipDst string, proto uint8, sport, dport uint16) []byte {
	b := append(append([]byte{}, dst...), src...)
	if vlan > 0 {
		b = binary.BigEndian.AppendUint16(b, ofproto.EthTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, vlan)
	}
	b = binary.BigEndian.AppendUint16(b, ofproto.EthTypeIPv6)
	var l4 []byte
	switch proto {
	case ofproto.IPProtoICMPv6:
		typ := byte(128)
		if dport == 129 {
			typ = 129
		}
		l4 = []byte{typ, 0, 0, 0, byte(sport >> 8), byte(sport), 0, 1}
	case 6:
		l4 = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sport), dport)
		l4 = append(l4, make([]byte, 16)...)
	default:
		l4 = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sport), dport)
		l4 = append(l4, 0, 8, 0, 0)
	}
	ip := []byte{0x60, 0, 0, 0, 0, byte(len(l4)), proto, 64}
	ip = append(ip, netip.MustParseAddr(ipSrc).AsSlice()...)
	ip = append(ip, netip.MustParseAddr(ipDst).AsSlice()...)
	return append(append(b, ip...), l4...)
}

// TestFirewallIPv6 runs IPv6 through compute1's br-int of the seed with withIPv6's
// subnets (VM5 on Net1 with its SLAAC address too): security group rules of ethertype
// IPv6 apply as IPv4 ones do, statefully or not, and IPv6 anti-spoofing holds.
func TestFirewallIPv6(t *testing.T) {
	const (
		vm1   = "2001:db8:1::f816:3eff:fe00:105"
		vm5   = "2001:db8:1::f816:3eff:fe00:107"
		vm3   = "2001:db8:2::3"
		out   = "2001:db8:9::1" // outside Net1's subnets
		tcp   = 6
		udp   = 17
		icmp6 = ofproto.IPProtoICMPv6
	)
	topo := withIPv6(firewallTopology())
	for i := range topo.Ports {
		if topo.Ports[i].ID == vm5ID {
			topo.Ports[i].FixedIPs = append(topo.Ports[i].FixedIPs, topology.FixedIP{SubnetID: "sub16-00000000000", IPAddress: vm5})
		}
	}
	v := topology.NewView(topo, 7)
	b := newFWBridge(t, v, "compute1")
	p1, p3, p5 := b.port("vm1-000000000000"), b.port("vm3-000000000000"), b.port(vm5ID)
	tun := b.st.Ports[PortPatchTun]
	qr1 := b.st.Ports[OVSPortName(v.Port("qr1-000000000000").Port)]
	net1VLAN, _ := v.LocalVLAN("compute1", "net1-000000000000")
	net2VLAN, _ := v.LocalVLAN("compute1", "net2-000000000000")
	fromTun := func(dst net.HardwareAddr, vlan uint16, src, dstIP string, proto uint8, sport, dport uint16) []byte {
		return l6Frame(dst, gw1MAC, 0x1000|vlan, src, dstIP, proto, sport, dport)
	}
	apply := func(rev int64, op topology.Op, r topology.SecurityGroupRule) {
		t.Helper()
		if _, err := v.Apply([]topology.Change{{Revision: rev, Kind: topology.KindSecurityGroupRule, ID: r.ID, Op: op, Object: &r}}); err != nil {
			t.Fatal(err)
		}
		b.load(v)
	}

	// The default group's IPv6 rules: its members reach each other, replies pass.
	b.expect("VM5 -> VM1 tcp6/80 (same group)", p5, l6Frame(vm1MAC, vm5MAC, 0, vm5, vm1, tcp, 40000, 80), p1)
	b.expect("VM1 -> VM5 reply", p1, l6Frame(vm5MAC, vm1MAC, 0, vm1, vm5, tcp, 80, 40000), p5)
	b.expect("VM5 -> VM1 again (established)", p5, l6Frame(vm1MAC, vm5MAC, 0, vm5, vm1, tcp, 40000, 80), p1)
	b.expect("VM5 ping6 VM1 (same group)", p5, l6Frame(vm1MAC, vm5MAC, 0, vm5, vm1, icmp6, 9, 0), p1)
	b.expect("VM1 echo reply", p1, l6Frame(vm5MAC, vm1MAC, 0, vm1, vm5, icmp6, 9, 129), p5)
	b.expect("outside -> VM1 tcp6/80 refused", tun, fromTun(vm1MAC, net1VLAN, out, vm1, tcp, 40001, 80))
	b.expect("outside -> VM5 ping6 refused", tun, fromTun(vm5MAC, net1VLAN, out, vm5, icmp6, 10, 0))
	b.expect("VM5's link-local -> VM1 refused (not a member address)", p5,
		l6Frame(vm1MAC, vm5MAC, 0, ofproto.LinkLocal(vm5MAC).String(), vm1, tcp, 40002, 80))
	// The default group's IPv6 egress rule: out to anywhere, replies come back.
	b.expect("VM5 -> outside tcp6/443", p5, l6Frame(gw1MAC, vm5MAC, 0, vm5, out, tcp, 40003, 443), qr1)
	b.expect("outside -> VM5 reply", tun, fromTun(vm5MAC, net1VLAN, out, vm5, tcp, 443, 40003), p5)
	b.expect("VM5's link-local -> outside", p5, l6Frame(gw1MAC, vm5MAC, 0, ofproto.LinkLocal(vm5MAC).String(), out, tcp, 40004, 443), qr1)

	// IPv6 anti-spoofing.
	b.expect("VM5 from VM1's address", p5, l6Frame(gw1MAC, vm5MAC, 0, vm1, out, tcp, 40005, 443))
	b.expect("VM5 from another address of the subnet", p5, l6Frame(gw1MAC, vm5MAC, 0, "2001:db8:1::99", out, tcp, 40006, 443))
	b.expect("VM5 from its address with another MAC", p5, l6Frame(gw1MAC, mustMAC("fa:16:3e:00:01:99"), 0, vm5, out, tcp, 40007, 443))
	b.expect("VM5 as a DHCPv6 server", p5, l6Frame(vm1MAC, vm5MAC, 0, ofproto.LinkLocal(vm5MAC).String(), ofproto.LinkLocal(vm1MAC).String(), udp, 547, 546))
	b.expect("VM5's DHCPv6 request reaching the firewall (no DHCP_IPV6 flow took it)", p5,
		l6Frame(mustMAC("33:33:00:01:00:02"), vm5MAC, 0, ofproto.LinkLocal(vm5MAC).String(), "ff02::1:2", udp, 546, 547))

	// A rule of ethertype IPv6 from a prefix, tcp/22: allowed from inside it, refused from
	// outside; removing it cuts the established connection, both ways.
	n := func(v int) *int { return &v }
	ssh := topology.SecurityGroupRule{ID: "rssh6", SecurityGroupID: "sgssh-0000000000", Direction: topology.DirectionIngress,
		EtherType: topology.EtherTypeIPv6, Protocol: "tcp", PortRangeMin: n(22), PortRangeMax: n(22), RemoteIPPrefix: "2001:db8:9::/48"}
	b.expect("outside -> VM1 tcp6/22 before the rule", tun, fromTun(vm1MAC, net1VLAN, out, vm1, tcp, 40010, 22))
	apply(8, topology.OpCreate, ssh)
	b.expect("2001:db8:9::1 -> VM1 tcp6/22", tun, fromTun(vm1MAC, net1VLAN, out, vm1, tcp, 40011, 22), p1)
	b.expect("VM1 -> 2001:db8:9::1 reply", p1, l6Frame(gw1MAC, vm1MAC, 0, vm1, out, tcp, 22, 40011), qr1)
	b.expect("2001:db8:8::1 -> VM1 tcp6/22 (outside the prefix)", tun, fromTun(vm1MAC, net1VLAN, "2001:db8:8::1", vm1, tcp, 40012, 22))
	b.expect("2001:db8:9::1 -> VM1 tcp6/23", tun, fromTun(vm1MAC, net1VLAN, out, vm1, tcp, 40013, 23))
	b.expect("2001:db8:9::1 -> VM5 tcp6/22 (not in ssh)", tun, fromTun(vm5MAC, net1VLAN, out, vm5, tcp, 40014, 22))
	b.expect("established tcp6/22", tun, fromTun(vm1MAC, net1VLAN, out, vm1, tcp, 40011, 22), p1)
	apply(9, topology.OpDelete, ssh)
	b.expect("established tcp6/22, rule removed", tun, fromTun(vm1MAC, net1VLAN, out, vm1, tcp, 40011, 22))
	b.expect("VM1's reply, rule removed", p1, l6Frame(gw1MAC, vm1MAC, 0, vm1, out, tcp, 22, 40011))

	// "icmp" in an IPv6 rule is ICMPv6 (as Neutron's driver reads it), type 128 echo requests.
	echo := topology.SecurityGroupRule{ID: "rssh7", SecurityGroupID: "sgssh-0000000000", Direction: topology.DirectionIngress,
		EtherType: topology.EtherTypeIPv6, Protocol: "icmp", PortRangeMin: n(128)}
	apply(10, topology.OpCreate, echo)
	b.expect("outside ping6 VM1 (icmp, type 128)", tun, fromTun(vm1MAC, net1VLAN, out, vm1, icmp6, 11, 0), p1)
	b.expect("outside ping6 VM5 (not in ssh)", tun, fromTun(vm5MAC, net1VLAN, out, vm5, icmp6, 12, 0))

	// A stateless group's IPv6 rule: udp 5000-5010 from 2001:db8::/32 in, and no reply
	// for free (its only egress rule is IPv4).
	udp6 := topology.SecurityGroupRule{ID: "rudp6", SecurityGroupID: "sgudp-0000000000", Direction: topology.DirectionIngress,
		EtherType: topology.EtherTypeIPv6, Protocol: "udp", PortRangeMin: n(5000), PortRangeMax: n(5010), RemoteIPPrefix: "2001:db8::/32"}
	apply(11, topology.OpCreate, udp6)
	b.expect("udp6/5005 to VM3", tun, fromTun(vm3MAC, net2VLAN, "2001:db8:1::6", vm3, udp, 999, 5005), p3)
	b.expect("udp6/5011 to VM3", tun, fromTun(vm3MAC, net2VLAN, "2001:db8:1::6", vm3, udp, 999, 5011))
	b.expect("udp6/5005 from outside 2001:db8::/32", tun, fromTun(vm3MAC, net2VLAN, "2001:db9::6", vm3, udp, 999, 5005))
	b.expect("VM3's reply (stateless, no IPv6 egress rule)", p3, l6Frame(gw1MAC, vm3MAC, 0, vm3, "2001:db8:1::6", udp, 5005, 999))

	// An IPv6 allowed address pair (a prefix): VM5 may send from it, and as a member of
	// the default group it reaches VM1 from it.
	var port5 topology.Port
	for _, p := range topo.Ports {
		if p.ID == vm5ID {
			port5 = p
		}
	}
	const vip = "2001:db8:1:0:abcd::5"
	port5.AllowedAddressPairs = []topology.AddressPair{{IPAddress: "2001:db8:1:0:abcd::/80"}}
	if _, err := v.Apply([]topology.Change{{Revision: 12, Kind: topology.KindPort, ID: vm5ID, Op: topology.OpUpdate, Object: &port5}}); err != nil {
		t.Fatal(err)
	}
	b.load(v)
	b.expect("VM5 from its pair's prefix -> VM1 tcp6/80", p5, l6Frame(vm1MAC, vm5MAC, 0, vip, vm1, tcp, 40020, 80), p1)
	b.expect("VM1 -> VM5's pair tcp6/80", p1, l6Frame(vm5MAC, vm1MAC, 0, vm1, vip, tcp, 40021, 80), p5)
	b.expect("VM5 from just outside the pair's prefix", p5, l6Frame(vm1MAC, vm5MAC, 0, "2001:db8:1:0:abce::5", vm1, tcp, 40022, 80))

	// VM4 (compute2) has port security off: any IPv6 it sends leaves, untouched by the
	// firewall, to VM1's host.
	b2 := newFWBridge(t, v, "compute2")
	p4, tun2 := b2.port("vm4-000000000000"), b2.st.Ports[PortPatchTun]
	b2.expect("VM4 (port security off) from any address", p4, l6Frame(vm1MAC, vm4MAC, 0, "2001:db8:7::7", vm1, tcp, 40030, 9999), tun2)
}

// TestRuleL4IPv6: what a rule's protocol and port range match, by IP version: "icmp" in
// an IPv6 rule is ICMPv6 (Neutron's driver normalizes it), ICMP type and code of the other
// version's protocol cannot be expressed (the rule allows nothing).
func TestRuleL4IPv6(t *testing.T) {
	n := func(v int) *int { return &v }
	for _, c := range []struct {
		eth, proto string
		lo, hi     *int
		want       string // the matches, "" for none (refused)
	}{
		{topology.EtherTypeIPv6, "icmp", n(128), n(0), "icmp6,icmp_type=128,icmp_code=0"},
		{topology.EtherTypeIPv6, "icmp", nil, nil, "icmp6"},
		{topology.EtherTypeIPv6, "ipv6-icmp", n(1), nil, "icmp6,icmp_type=1"},
		{topology.EtherTypeIPv6, "icmpv6", n(135), nil, "icmp6,icmp_type=135"},
		{topology.EtherTypeIPv6, "58", n(129), nil, "icmp6,icmp_type=129"},
		{topology.EtherTypeIPv6, "1", n(8), nil, ""},
		{topology.EtherTypeIPv6, "1", nil, nil, "ipv6,nw_proto=1"},
		{topology.EtherTypeIPv6, "tcp", n(5000), n(5010), "tcp6,tp_dst=0x1388/0xfff8 tcp6,tp_dst=0x1390/0xfffe tcp6,tp_dst=5010"},
		{topology.EtherTypeIPv6, "", nil, nil, "ipv6"},
		{topology.EtherTypeIPv4, "icmp", n(8), n(0), "icmp,icmp_type=8,icmp_code=0"},
		{topology.EtherTypeIPv4, "58", n(128), nil, ""},
	} {
		r := &topology.SecurityGroupRule{EtherType: c.eth, Protocol: c.proto, PortRangeMin: c.lo, PortRangeMax: c.hi}
		et := ofproto.EthType(ofproto.EthTypeIPv4)
		if c.eth == topology.EtherTypeIPv6 {
			et = ofproto.EthType(ofproto.EthTypeIPv6)
		}
		ms, ok := ruleL4(r)
		var got []string
		for _, m := range ms {
			f := ofproto.Flow{Priority: 1, Match: append(ofproto.Match{et}, m...).Canonical()}
			if err := f.Validate(); err != nil {
				t.Errorf("%s %q: %v", c.eth, c.proto, err)
			}
			_, s, _ := strings.Cut(f.String(), "priority=1,")
			got = append(got, strings.TrimSuffix(s, " actions=drop"))
		}
		if g := strings.Join(got, " "); ok != (c.want != "") || g != c.want {
			t.Errorf("%s rule %q (range %s): %q (%v), want %q", c.eth, c.proto, rangeText(c.lo, c.hi), g, ok, c.want)
		}
	}
}

func rangeText(lo, hi *int) string {
	s := func(p *int) string {
		if p == nil {
			return "-"
		}
		return strconv.Itoa(*p)
	}
	return s(lo) + ":" + s(hi)
}
