package engine

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/engine/enginetest"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/topology"
)

// An IPv6 SLAAC subnet attached to the router: its VM ports hear router advertisements at
// once, router solicitations are answered with one, and neighbour solicitations for
// known addresses with an advertisement, each on the asking port.
func TestIPv6NDAndRA(t *testing.T) {
	f, ctx := newConverged(t)
	c := seed.NewClient(f.api.URL, token)
	sub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: f.topo.Net1.ID, CIDR: "2001:db8:1::/64",
		IPVersion: gophercloud.IPv6, IPv6RAMode: topology.IPv6SLAAC, IPv6AddressMode: topology.IPv6SLAAC}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := routers.AddInterface(ctx, c, f.topo.Router.ID, routers.AddInterfaceOpts{SubnetID: sub.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	var vlan uint16
	var vm1v6 netip.Addr
	var ras []ofproto.RouterAdvert
	enginetest.Eventually(t, "the view with the advertised subnet and VM1's SLAAC address", func() (bool, string) {
		ok := false
		f.eng.ReadView(func(v *topology.View) {
			vlan, _ = v.LocalVLAN("compute1", f.topo.Net1.ID)
			ras = apps.RouterAdverts(v, f.topo.Net1.ID)
			for _, ip := range v.Port(f.topo.VMs["VM1"].ID).IPs {
				if ip.Addr.Is6() {
					vm1v6 = ip.Addr
				}
			}
			ok = len(ras) == 1 && vm1v6.IsValid()
		})
		return ok, fmt.Sprintf("%d advertisements, VM1 at %s", len(ras), vm1v6)
	})
	vm1, vm4 := f.port("VM1"), f.port("VM4")
	sw := f.switches["compute1/br-int"]
	const vm1Port = 10 // VM1's tap on compute1 (the ARP test's)
	wantRA := ofproto.AppendRouterAdvert(nil, &ras[0])
	if want := ofproto.EUI64(netip.MustParsePrefix("2001:db8:1::/64"), vm1.MAC); vm1v6 != want {
		t.Errorf("VM1's SLAAC address %s, want %s", vm1v6, want)
	}

	// Unsolicited, as the subnet became advertised (not waiting for the next round).
	var seen []ofsim.PacketOut
	enginetest.Eventually(t, "an unsolicited router advertisement to VM1", func() (bool, string) {
		seen = append(seen, sw.TakePacketOuts()...)
		return slices.ContainsFunc(seen, func(po ofsim.PacketOut) bool { return isOut(po, wantRA, vm1Port) }), fmt.Sprintf("%d packet-outs", len(seen))
	})

	// A second subnet attached changes the network's advertisements: heard at once again,
	// not at the next round (10-30 s). It joins the router's port on the network, as
	// Neutron attaches a second IPv6 subnet: one advertisement, with both prefixes.
	sub2, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: f.topo.Net1.ID, CIDR: "2001:db8:11::/64",
		IPVersion: gophercloud.IPv6, IPv6RAMode: topology.IPv6DHCPStateless, IPv6AddressMode: topology.IPv6DHCPStateless}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	attached := time.Now()
	if _, err := routers.AddInterface(ctx, c, f.topo.Router.ID, routers.AddInterfaceOpts{SubnetID: sub2.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	var both ofproto.RouterAdvert // the network's advertisement with both subnets
	for {
		var ras2 []ofproto.RouterAdvert
		f.eng.ReadView(func(v *topology.View) { ras2 = apps.RouterAdverts(v, f.topo.Net1.ID) })
		got := false
		if len(ras2) == 1 && len(ras2[0].Prefixes) == 2 {
			both = ras2[0]
			want2 := ofproto.AppendRouterAdvert(nil, &ras2[0])
			for _, po := range sw.TakePacketOuts() {
				got = got || isOut(po, want2, vm1Port)
			}
		}
		if got {
			t.Logf("the new subnet's advertisement reached VM1 %v after the interface was added", time.Since(attached).Round(time.Millisecond))
			break
		}
		if time.Since(attached) > 3*time.Second {
			t.Fatalf("no advertisement with the second subnet to VM1 within 3 s (%d advertisements: %+v)", len(ras2), ras2)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Solicited: to the asker.
	src := ofproto.LinkLocal(vm1.MAC)
	rs := ofproto.AppendRouterSolicit(nil, vlan, vm1.MAC, src)
	ra := both
	ra.EthDst, ra.Dst = vm1.MAC, src
	answer(t, sw, apps.AppRA, vm1Port, rs, ofproto.AppendRouterAdvert(nil, &ra), "the answer to a router solicitation")

	// A neighbour solicitation for VM4's address, then for the router's link-local one.
	for _, c := range []struct {
		target netip.Addr
		mac    []byte
		flags  ofproto.NAFlags
	}{
		{ofproto.EUI64(netip.MustParsePrefix("2001:db8:1::/64"), vm4.MAC), vm4.MAC, ofproto.NASolicited | ofproto.NAOverride},
		{ras[0].Src, ras[0].EthSrc, ofproto.NARouter | ofproto.NASolicited | ofproto.NAOverride},
	} {
		frame := ofproto.AppendNeighborSolicit(nil, vlan, vm1.MAC, vm1v6, c.target)
		ns, err := ofproto.ParseND(frame)
		if err != nil {
			t.Fatal(err)
		}
		answer(t, sw, apps.AppND, vm1Port, frame, ofproto.NeighborAdvert(ns, c.mac, c.flags), "the advertisement of "+c.target.String())
	}
	if st := f.eng.Stats(); st.NDAnswered != 2 || st.RASent < 2 {
		t.Errorf("stats: %d solicitations answered, %d advertisements sent", st.NDAnswered, st.RASent)
	}

	// Unsolicited ones again every round (here every 50-100 ms).
	f.stopController()
	f.cfg = Config{RAMinInterval: 50 * time.Millisecond, RAMaxInterval: 100 * time.Millisecond}
	f.startController()
	for k := range f.switches {
		f.swCancel[k]()
		f.runSwitch(k)
	}
	n, wantBoth := 0, ofproto.AppendRouterAdvert(nil, &both)
	enginetest.Eventually(t, "router advertisements to VM1 round after round", func() (bool, string) {
		for _, po := range sw.TakePacketOuts() {
			if isOut(po, wantBoth, vm1Port) {
				n++
			}
		}
		return n >= 5, fmt.Sprintf("%d advertisements", n)
	})
}

// answer sends frame to the controller as app's flow in ARP_RESPONDER would, from inPort,
// and waits for want to be sent out of inPort.
func answer(t *testing.T, sw *ofsim.Switch, app apps.App, inPort uint32, frame, want []byte, what string) {
	t.Helper()
	sw.TakePacketOuts()
	if err := sw.SendPacketIn(apps.IntARPResponder, apps.Cookie(app), inPort, frame); err != nil {
		t.Fatal(err)
	}
	var seen []ofsim.PacketOut
	enginetest.Eventually(t, what, func() (bool, string) {
		seen = append(seen, sw.TakePacketOuts()...)
		return slices.ContainsFunc(seen, func(po ofsim.PacketOut) bool { return isOut(po, want, inPort) }), fmt.Sprintf("%d packet-outs", len(seen))
	})
}

// isOut reports whether po sends data out of port.
func isOut(po ofsim.PacketOut, data []byte, port uint32) bool {
	return bytes.Equal(po.Data, data) && len(po.Actions) == 1 && po.Actions[0].String() == fmt.Sprintf("output:%d", port)
}
