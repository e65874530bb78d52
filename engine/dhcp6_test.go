package engine

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/dhcp6"
	"github.com/dvrflow/dvrflow/engine/enginetest"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/topology"
)

// A DHCPv6 SOLICIT that DHCP_IPV6 sends up is answered with an ADVERTISE of the port's
// fixed IP on a dhcpv6-stateful subnet, out of the port it came in by; a malformed one is
// counted; one from a port the switch has not announced yet (its port-status on the way)
// is held and answered once it is.
func TestDHCPv6FrameToPacketOut(t *testing.T) {
	f, ctx := newConverged(t)
	c := seed.NewClient(f.api.URL, token)
	dns := []string{"2001:db8::53"}
	sub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: f.topo.Net1.ID, CIDR: "2001:db8:1::/64",
		IPVersion: gophercloud.IPv6, IPv6RAMode: topology.IPv6DHCPStateful, IPv6AddressMode: topology.IPv6DHCPStateful,
		DNSNameservers: dns}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	newVM := func(name string) (ports.Port, net.HardwareAddr) {
		p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{CreateOptsBuilder: ports.CreateOpts{NetworkID: f.topo.Net1.ID,
			Name: name, DeviceOwner: "compute:nova", DeviceID: name, FixedIPs: []ports.IP{{SubnetID: sub.ID}}}, HostID: "compute1"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		mac, err := net.ParseMAC(p.MACAddress)
		if err != nil {
			t.Fatal(err)
		}
		return *p, mac
	}
	vm8, vm8MAC := newVM("VM8")
	vm9, vm9MAC := newVM("VM9")
	var vm8v6, vm9v6 netip.Addr
	enginetest.Eventually(t, "the view with VM8's and VM9's addresses on the stateful subnet, served", func() (bool, string) {
		served := false
		f.eng.ReadView(func(v *topology.View) {
			for id, a := range map[string]*netip.Addr{vm8.ID: &vm8v6, vm9.ID: &vm9v6} {
				*a = netip.Addr{}
				if p := v.Port(id); p != nil {
					for _, ip := range p.IPs {
						if ip.SubnetID == sub.ID {
							*a = ip.Addr
						}
					}
				}
			}
			for _, ip := range v.DHCPServer(f.topo.Net1.ID).IPs {
				served = served || ip.SubnetID == sub.ID
			}
		})
		return vm8v6.IsValid() && vm9v6.IsValid() && served, fmt.Sprintf("VM8 %s, VM9 %s, DHCP port on the subnet %v", vm8v6, vm9v6, served)
	})
	sw := f.switches["compute1/br-int"]
	// VM8's tap plugged, announced by its port-status.
	const vm8Port, vm9Port = 76, 77
	if err := sw.AddPort(ofsim.Port{No: vm8Port, Name: apps.VMPortName(vm8.ID)}); err != nil {
		t.Fatal(err)
	}
	solicit := func(mac []byte) []byte {
		return dhcp6.AppendRequest(nil, &dhcp6.Message{Type: dhcp6.Solicit, XID: 0x0a0b0c, SrcMAC: mac,
			SrcIP: ofproto.LinkLocal(mac), ClientID: dhcp6.DUIDLL(mac), IANA: []dhcp6.IA{{IAID: 1}}, ORO: []byte{0, 23}}, nil)
	}
	var srvMAC []byte
	f.eng.ReadView(func(v *topology.View) { srvMAC = v.DHCPServer(f.topo.Net1.ID).MAC })

	checkAdvertise := func(po ofsim.PacketOut, mac []byte, addr netip.Addr) string {
		r, err := dhcp6.ParseReply(po.Data)
		if err != nil {
			return err.Error()
		}
		v, _ := r.Answer.Get(dhcp6.OptIANA)
		ia, err := dhcp6.ParseIA(v)
		d, _ := r.Answer.Get(dhcp6.OptDNSServers)
		if err != nil || r.Answer.Type != dhcp6.Advertise || r.Answer.XID != 0x0a0b0c || len(ia.Addrs) != 1 || ia.Addrs[0].Addr != addr ||
			ia.Addrs[0].Valid != 86400 || !bytes.Equal(d, dhcp6.AppendAddrs(nil, netip.MustParseAddr("2001:db8::53"))) ||
			!bytes.Equal(r.SrcMAC, srvMAC) || r.SrcIP != ofproto.LinkLocal(srvMAC) || !bytes.Equal(r.DstMAC, mac) || r.DstIP != ofproto.LinkLocal(mac) {
			return fmt.Sprintf("%s %+v IA %+v from %s %s to %s %s", r.Answer.Type, r.Answer, ia, r.SrcMAC, r.SrcIP, r.DstMAC, r.DstIP)
		}
		return ""
	}
	take := func(what string, port uint32, mac []byte, addr netip.Addr) {
		t.Helper()
		var seen []ofsim.PacketOut
		enginetest.Eventually(t, what, func() (bool, string) {
			seen = append(seen, sw.TakePacketOuts()...)
			why := "no packet-out"
			for _, po := range seen {
				if len(po.Actions) != 1 || po.Actions[0].String() != fmt.Sprintf("output:%d", port) {
					continue
				}
				if why = checkAdvertise(po, mac, addr); why == "" {
					return true, ""
				}
			}
			return false, why
		})
	}

	enginetest.Eventually(t, "VM8's tap known", func() (bool, string) {
		return f.eng.portName(sw.DPID(), vm8Port) != "", "not yet"
	})
	sw.TakePacketOuts()
	if err := sw.SendPacketIn(apps.IntDHCPv6, apps.Cookie(apps.AppDHCP), vm8Port, solicit(vm8MAC)); err != nil {
		t.Fatal(err)
	}
	take("VM8's ADVERTISE out of its port", vm8Port, vm8MAC, vm8v6)

	// Not DHCPv6: counted, not answered.
	if err := sw.SendPacketIn(apps.IntDHCPv6, apps.Cookie(apps.AppDHCP), vm8Port, solicit(vm8MAC)[:70]); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "a malformed DHCPv6 message counted", func() (bool, string) {
		st := f.eng.Stats().DHCPv6
		return st[apps.DHCPv6Advertised] == 1 && st[dhcpMalformed] == 1, fmt.Sprint(st)
	})

	// VM9 asks before its tap's port-status reached the controller: held, then answered.
	if err := sw.SendPacketIn(apps.IntDHCPv6, apps.Cookie(apps.AppDHCP), vm9Port, solicit(vm9MAC)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if pos := sw.TakePacketOuts(); len(pos) != 0 {
		t.Fatalf("answered before the port was known: %+v", pos)
	}
	if err := sw.AddPort(ofsim.Port{No: vm9Port, Name: apps.VMPortName(vm9.ID)}); err != nil {
		t.Fatal(err)
	}
	take("VM9's held SOLICIT answered once its port is known", vm9Port, vm9MAC, vm9v6)
}
