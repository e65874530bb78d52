package db_test

import (
	"context"
	"testing"

	"github.com/dvrflow/dvrflow/db"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p1", Name: ptr("net1")}))(t)
	sn := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p1", NetworkID: n.ID, CIDR: ptr("10.0.1.0/24")}))(t)
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p1", NetworkID: n.ID}))(t)
	t.Logf("net %+v\nsubnet %+v\nport %+v", n, sn, p)
	ext := ok(s.CreateNetwork(ctx, db.NetworkSpec{Name: ptr("ext"), External: ptr(true), NetworkType: ptr("flat"), PhysicalNetwork: ptr("physnet1")}))(t)
	ok(s.CreateSubnet(ctx, db.SubnetSpec{NetworkID: ext.ID, CIDR: ptr("172.24.4.0/24")}))(t)
	gs := &db.GatewaySpec{NetworkID: ext.ID}
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p1", Gateway: &gs}))(t)
	ri := ok(s.AddRouterInterface(ctx, r.ID, sn.ID, ""))(t)
	t.Logf("router %+v gw %+v iface %+v", r, r.Gateway, ri)
	p = ok(s.UpdatePort(ctx, p.ID, db.PortSpec{HostID: ptr("compute1")}))(t)
	f := ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p1", FloatingNetworkID: ext.ID, PortID: &p.ID}))(t)
	t.Logf("fip %+v", f)
	topo, rev, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range topo.Ports {
		t.Logf("port %s %s %v host=%s", p.DeviceOwner, p.MACAddress, p.FixedIPs, p.HostID)
	}
	cs := ok(s.ChangesSince(ctx, 0, 0))(t)
	t.Logf("rev %d, %d changes", rev, len(cs))
}
