package db_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

// TestRouterInterfaceReaddress: a router interface port's fixed_ips may be updated within
// its subnet, as Neutron takes it (tempest's test_router_interface_port_update_with_fixed_ip
// sends [{"subnet_id"}], which keeps the address); the router's view, from a snapshot or
// from the change log, routes the subnet through the new address, and the router's
// revision advances. Leaving the subnet, or one address, is 400 and changes nothing.
func TestRouterInterfaceReaddress(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	f := build(t, s)
	_, rev0 := ok2(s.Snapshot(ctx))(t)
	topo, _ := ok2(s.Snapshot(ctx))(t)
	view := topology.NewView(topo, rev0)
	var iface *topology.Port
	for _, p := range ok(s.ListPorts(ctx))(t) {
		if p.DeviceOwner == topology.OwnerRouterInterfaceDistributed && p.FixedIPs[0].SubnetID == f.sub1.ID {
			iface = &p
		}
	}
	if iface == nil || iface.FixedIPs[0].IPAddress != "10.0.1.1" {
		t.Fatalf("interface port on sub1: %+v", iface)
	}
	routerRev := ok(s.GetRouter(ctx, f.router.ID))(t).RevisionNumber

	same := ok(s.UpdatePort(ctx, iface.ID, db.PortSpec{FixedIPs: &[]db.FixedIPSpec{{SubnetID: f.sub1.ID}}}))(t)
	if len(same.FixedIPs) != 1 || same.FixedIPs[0].IPAddress != "10.0.1.1" {
		t.Fatalf("subnet-only fixed_ips moved the address: %v", same.FixedIPs)
	}
	moved := ok(s.UpdatePort(ctx, iface.ID, db.PortSpec{FixedIPs: &[]db.FixedIPSpec{{SubnetID: f.sub1.ID, IPAddress: "10.0.1.50"}}}))(t)
	if len(moved.FixedIPs) != 1 || moved.FixedIPs[0].IPAddress != "10.0.1.50" {
		t.Fatalf("readdressed interface: %v", moved.FixedIPs)
	}
	if got := ok(s.GetRouter(ctx, f.router.ID))(t).RevisionNumber; got <= routerRev {
		t.Fatalf("router revision %d, was %d", got, routerRev)
	}
	if _, err := view.Apply(ok(s.ChangesSince(ctx, rev0, 0))(t)); err != nil {
		t.Fatal(err)
	}
	topo, rev := ok2(s.Snapshot(ctx))(t)
	want := netip.MustParseAddr("10.0.1.50")
	for name, v := range map[string]*topology.View{"change log": view, "snapshot": topology.NewView(topo, rev)} {
		var addr netip.Addr
		for _, sn := range v.Router(f.router.ID).Interfaces {
			if sn.ID == f.sub1.ID && sn.RouterIf != nil && len(sn.RouterIf.IPs) == 1 {
				addr = sn.RouterIf.IPs[0].Addr
			}
		}
		if addr != want {
			t.Errorf("%s: the router's address on sub1 is %v, want %v", name, addr, want)
		}
	}

	vm := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net1.ID}))(t)
	other := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: f.net1.ID, CIDR: ptr("10.0.3.0/24")}))(t)
	rev = revision(t, s)
	for _, c := range []struct {
		name string
		ips  []db.FixedIPSpec
		typ  string
	}{
		{"another subnet", []db.FixedIPSpec{{SubnetID: other.ID}}, "BadRequest"},
		{"both subnets", []db.FixedIPSpec{{SubnetID: f.sub1.ID}, {SubnetID: other.ID}}, "BadRequest"},
		{"another network's subnet", []db.FixedIPSpec{{SubnetID: f.sub2.ID}}, "InvalidInput"},
		{"no address", []db.FixedIPSpec{}, "BadRequest"},
		{"two addresses", []db.FixedIPSpec{{SubnetID: f.sub1.ID}, {SubnetID: f.sub1.ID, IPAddress: "10.0.1.60"}}, "BadRequest"},
		{"an address in use", []db.FixedIPSpec{{SubnetID: f.sub1.ID, IPAddress: vm.FixedIPs[0].IPAddress}}, "IpAddressAlreadyAllocated"},
	} {
		_, err := s.UpdatePort(ctx, iface.ID, db.PortSpec{FixedIPs: &c.ips})
		wantErrType(t, err, c.typ)
		if got := revision(t, s); got != rev {
			t.Fatalf("%s: revision %d, want %d", c.name, got, rev)
		}
	}
	_, err := s.UpdatePort(ctx, iface.ID, db.PortSpec{MACAddress: ptr("fa:16:3e:00:00:99")})
	wantErrType(t, err, "L3PortInUse")
	// 10.0.1.50 is free again once the interface is back on the gateway address.
	back := ok(s.UpdatePort(ctx, iface.ID, db.PortSpec{FixedIPs: &[]db.FixedIPSpec{{SubnetID: f.sub1.ID, IPAddress: "10.0.1.1"}}}))(t)
	if back.FixedIPs[0].IPAddress != "10.0.1.1" {
		t.Fatalf("interface back on the gateway: %v", back.FixedIPs)
	}
	ok(s.UpdatePort(ctx, vm.ID, db.PortSpec{FixedIPs: &[]db.FixedIPSpec{{SubnetID: f.sub1.ID, IPAddress: "10.0.1.50"}}}))(t)
}
